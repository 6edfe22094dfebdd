"""Bad inputs and bad models fail at the start of an evaluation, with a message that says
what is wrong and what to do, instead of producing a wrong number at the end."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bastion import FGSM, ThreatModel, evaluate
from bastion.attacks.base import Attack, AttackResult
from bastion.errors import BastionWarning, InputError, ModelError
from bastion.evaluation.checks import check_inputs, check_model

LINF = ThreatModel(norm="Linf", eps=0.1)


class MustNotRun(Attack):
    """An attack that fails the test if the evaluation gets as far as attacking."""

    name = "must-not-run"

    def __init__(self) -> None:
        pass

    def _run(self, *args: Any) -> AttackResult:
        raise AssertionError("the attack ran although the checks should have stopped it")


class Wrap(nn.Module):
    """A model whose forward is ``fn(inner(x))``."""

    def __init__(self, inner: nn.Module, fn: Any) -> None:
        super().__init__()
        self.inner = inner
        self.fn = fn
        self.train(inner.training)

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(self.inner(x))


def run(model: Any, x: Any, y: Any) -> None:
    evaluate(model, (x, y), LINF, [MustNotRun()])


# ---------------------------------------------------------------- inputs


def test_nan_inputs_name_the_first_bad_sample(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    x[2, 0, 3, 3] = float("nan")
    x[5, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match=r"NaN or inf in 2 sample\(s\) \(first: index 2\)"):
        run(cnn, x, y)


def test_inf_inputs_are_refused(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    x[4, 0, 1, 1] = float("inf")
    with pytest.raises(InputError, match=r"NaN or inf in 1 sample\(s\) \(first: index 4\)"):
        run(cnn, x, y)


def test_0_255_pixels_are_told_to_divide_by_255(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    hint = r"range over \[0.*, 2\d\d\]\. They look like 0-255 pixels: divide by 255"
    with pytest.raises(InputError, match=hint):
        run(cnn, x * 255, y)


def test_8_bit_pixels_are_told_to_convert_and_divide(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"floating point.*torch.uint8.*x.float\(\) / 255"):
        run(cnn, (x * 255).to(torch.uint8), y)


def test_integer_inputs_are_refused(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"inputs must be floating point.*torch.int64"):
        run(cnn, (x > 0.5).long(), y)


def test_normalised_inputs_are_told_to_move_normalisation_into_the_model(
    cnn: nn.Module, batch: Any
) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"look normalised.*inside the model"):
        run(cnn, x - 0.5, y)


def test_mnist_normalised_inputs_get_the_normalisation_hint_not_divide_by_255(
    cnn: nn.Module, batch: Any
) -> None:
    # (x - 0.1307) / 0.3081 ranges over [-0.42, 2.82]: above 1.5 but not 0-255 pixels.
    x, y = batch
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    with pytest.raises(InputError, match="look normalised") as info:
        run(cnn, (x - 0.1307) / 0.3081, y)
    assert "255" not in str(info.value)


def test_inputs_may_use_other_bounds_when_the_threat_model_says_so(
    cnn: nn.Module, batch: Any
) -> None:
    x, y = batch
    check_inputs(x * 255, y, ThreatModel(norm="Linf", eps=8, bounds=(0.0, 255.0)))
    check_inputs(x, y, LINF)  # on the bounds is inside
    check_inputs(torch.zeros_like(x), y, LINF)
    check_inputs(torch.ones_like(x), y, LINF)


def test_unbatched_input_is_told_to_add_a_batch_dimension(cnn: nn.Module) -> None:
    with pytest.raises(InputError, match=r"must be batched.*got shape \(64,\).*unsqueeze\(0\)"):
        run(cnn, torch.rand(64), torch.tensor([3]))


def test_unbatched_image_with_a_scalar_label_is_refused(cnn: nn.Module) -> None:
    with pytest.raises(InputError, match=r"labels must have shape \(N,\) = \(1,\)"):
        run(cnn, torch.rand(1, 8, 8), torch.tensor(3))


def test_non_tensor_inputs_are_told_to_convert(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"must be torch tensors, got ndarray.*as_tensor"):
        run(cnn, x.numpy(), y)


def test_empty_batch_is_refused(cnn: nn.Module) -> None:
    with pytest.raises(InputError, match=r"no samples"):
        run(cnn, torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))


# ---------------------------------------------------------------- labels


def test_one_hot_labels_are_told_to_pass_class_indices(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    one_hot = nn.functional.one_hot(y, 10)
    with pytest.raises(InputError, match=r"got \(8, 10\).*class indices, not one-hot"):
        run(cnn, x, one_hot)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_float_or_bool_labels_are_refused(cnn: nn.Module, batch: Any, dtype: torch.dtype) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"integer class indices.*y.long\(\)"):
        run(cnn, x, (y % 2).to(dtype))


def test_label_count_must_match_inputs(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with pytest.raises(InputError, match=r"labels must have shape \(N,\) = \(8,\).*got \(7,\)"):
        run(cnn, x, y[:7])


def test_negative_labels_are_refused(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    y[3] = -1
    with pytest.raises(InputError, match="labels must be >= 0, found -1"):
        run(cnn, x, y)


def test_labels_beyond_the_model_outputs_are_refused(batch: Any) -> None:
    x, y = batch
    y[0] = 9
    three = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    with pytest.raises(ModelError, match="labels go up to 9 but the model has only 3 outputs"):
        run(three, x, y)


def test_int32_labels_are_evaluated_like_int64(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with torch.no_grad():
        y = cnn(x).argmax(1)
    want = evaluate(cnn, (x, y), LINF, [FGSM()])
    got = evaluate(cnn, (x, y.to(torch.int32)), LINF, [FGSM()])
    assert got.robust_accuracy == want.robust_accuracy
    assert got.clean_accuracy == want.clean_accuracy == 1.0


# ---------------------------------------------------------------- models


def test_model_that_crashes_on_the_input_shape(batch: Any) -> None:
    x, y = batch
    wants_mnist = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    with pytest.raises(ModelError, match=r"failed on inputs of shape \(8, 1, 8, 8\) "
                                         r"\(RuntimeError: .*\).*\(N, 1, 28, 28\)"):
        run(wants_mnist, x, y)


def test_model_returning_probabilities_is_refused(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    softmax = Wrap(cnn, lambda z: z.softmax(dim=1))
    with pytest.raises(ModelError, match=r"returns probabilities.*remove the final softmax"):
        run(softmax, x, y)


def test_model_returning_log_probabilities_is_accepted(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    log_softmax = Wrap(cnn, lambda z: z.log_softmax(dim=1))
    check_model(log_softmax, x, y)
    result = evaluate(log_softmax, (x, y), LINF, [FGSM()])
    plain = evaluate(cnn, (x, y), LINF, [FGSM()])  # the same argmax, the same numbers
    assert result.clean_accuracy == plain.clean_accuracy
    assert result.robust_accuracy == plain.robust_accuracy


def test_scores_in_0_1_that_do_not_sum_to_1_are_not_mistaken_for_probabilities(
    cnn: nn.Module, batch: Any
) -> None:
    x, y = batch
    check_model(Wrap(cnn, torch.sigmoid), x, y)


def test_model_with_a_single_output_is_told_how_to_make_two(batch: Any) -> None:
    x, y = batch
    one = nn.Sequential(nn.Flatten(), nn.Linear(64, 1)).eval()
    with pytest.raises(ModelError, match=r"returns 1 score per sample.*C >= 2.*torch.cat"):
        run(one, x, y % 1)


@pytest.mark.parametrize(
    ("fn", "shape"),
    [(lambda z: (z, z), "tuple"), (lambda z: z[:, :, None], r"\(8, 10, 1\)"),
     (lambda z: z[0], r"\(10,\)")],
    ids=["tuple", "3d", "unbatched"],
)
def test_model_must_return_one_logit_matrix(cnn: nn.Module, batch: Any, fn: Any,
                                            shape: str) -> None:
    x, y = batch
    with pytest.raises(ModelError, match=rf"logits of shape \(N, num_classes\).*got {shape}"):
        run(Wrap(cnn, fn), x, y)


def test_model_returning_nan_is_refused(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with pytest.raises(ModelError, match="NaN or inf on clean inputs"):
        run(Wrap(cnn, lambda z: z * float("nan")), x, y)


@pytest.mark.parametrize("model", [lambda x: x.flatten(1)[:, :10], "lenet", np.zeros(3)],
                         ids=["function", "string", "array"])
def test_model_that_is_not_a_module_is_refused(model: Any, batch: Any) -> None:
    x, y = batch
    with pytest.raises(ModelError, match=r"must be a torch.nn.Module"):
        run(model, x, y)


# ---------------------------------------------------------------- train mode


def dropout_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(32, 10))


def test_train_mode_warns_evaluates_in_eval_mode_and_restores_train_mode(batch: Any) -> None:
    x, y = batch
    model = dropout_model().eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    expected = evaluate(model, (x, y), LINF, [FGSM()])
    model.train()
    with pytest.warns(BastionWarning, match="train mode.*model.eval") as record:
        result = evaluate(model, (x, y), LINF, [FGSM()])
    assert model.training
    assert all(m.training for m in model.modules())
    # dropout was off during the run: the numbers equal the eval-mode numbers
    assert result.clean_accuracy == expected.clean_accuracy == 1.0
    assert result.robust_accuracy == expected.robust_accuracy
    assert record[0].filename == __file__  # the warning points at the caller's line


def test_train_mode_is_restored_when_a_check_fails(batch: Any) -> None:
    x, y = batch
    model = Wrap(dropout_model(), lambda z: z.softmax(dim=1)).train()
    with pytest.warns(BastionWarning, match="train mode"), \
            pytest.raises(ModelError, match="probabilities"):
        run(model, x, y)
    assert model.training


def test_eval_mode_model_gives_no_warning(cnn: nn.Module, batch: Any) -> None:
    x, y = batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(cnn, (x, y), LINF, [FGSM()])
    assert not cnn.training
