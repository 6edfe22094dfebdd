"""Conformance checks over every registered detector (bastion.ood.DETECTORS)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from bastion.errors import ConfigError, InputError, ModelError, StateError
from bastion.ood import DETECTORS, auroc, make

NAMES = sorted(DETECTORS)


@pytest.mark.parametrize("name", NAMES)
def test_constructor_is_keyword_only_and_get_params_rebuilds_it(name: str) -> None:
    cls = DETECTORS[name]
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items()
               if n != "self")
    det = make(name)
    assert det.name == name
    again = make(name, **det.get_params())
    assert again.get_params() == det.get_params()
    assert repr(det).startswith(cls.__name__ + "(")


@pytest.mark.parametrize("name", NAMES)
def test_scores_separate_far_gaussians(name: str, model: nn.Module, fit_data, id_test,
                                       ood_test) -> None:
    det = make(name).fit(model, fit_data)
    s_id, s_ood = det.score(id_test), det.score(ood_test)
    assert s_id.shape == (len(id_test),) and s_ood.shape == (len(ood_test),)
    assert s_id.dtype == torch.float32
    assert torch.isfinite(s_id).all() and torch.isfinite(s_ood).all()
    assert auroc(s_id, s_ood) > 0.95


@pytest.mark.parametrize("name", NAMES)
def test_scores_do_not_depend_on_batching_and_repeat(name: str, model, fit_data,
                                                     id_test) -> None:
    whole = make(name).fit(model, fit_data).score(id_test)
    small = make(name, batch_size=7).fit(model, fit_data)
    torch.testing.assert_close(small.score(id_test), whole, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(small.score(id_test), small.score(id_test))


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_detector_says_to_fit(name: str, id_test) -> None:
    with pytest.raises(StateError, match="not fitted"):
        make(name).score(id_test)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_refused(name: str, model, fit_data, id_test) -> None:
    det = make(name).fit(model, fit_data)
    with pytest.raises(InputError, match="shape"):
        det.score(torch.rand(5, 3, 2, 2))
    with pytest.raises(InputError, match="NaN"):
        det.score(torch.full((2, 1, 2, 2), float("nan")))
    with pytest.raises(InputError, match="float"):
        det.score((id_test * 255).to(torch.uint8))
    with pytest.raises(InputError, match="labels"):
        make(name).fit(model, (fit_data[0], fit_data[1][:5]))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_layer_and_training_mode_are_refused(name: str, model, fit_data) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make(name, layer="no.such.layer").fit(model, fit_data)
    det = make(name)
    with pytest.raises(ModelError, match="eval"):
        det.fit(model.train(), fit_data)
    assert not hasattr(det, "model_")  # a failed fit leaves it unfitted


@pytest.mark.parametrize("name", NAMES)
def test_score_has_input_gradients(name: str, model, fit_data, ood_test) -> None:
    det = make(name).fit(model, fit_data)
    x = ood_test[:8].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(det.surrogate_score(x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unknown_detector_and_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="available"):
        make("nope")
    with pytest.raises(ConfigError, match="bad parameters"):
        make("knn", neighbours=3)
