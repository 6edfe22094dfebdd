"""Cascades: each stage sees only the points still robust; claims are re-checked."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bastion.attacks import PGD, Attack, AttackResult, AutoAttack, Cascade, Passes, make
from bastion.attacks.ensemble import build_stages
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


class Recorder(Attack):
    """Fools the model on the samples whose index (tagged in pixel 0) is in ``hits``."""

    name = "recorder"

    def __init__(self, *, hits: tuple[int, ...] = (), lie: bool = False) -> None:
        self.hits = hits
        self.lie = lie
        self.seen: list[list[int]] = []

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             target: torch.Tensor | None, generator: torch.Generator) -> AttackResult:
        tags = x[:, 0].round().long().tolist()
        self.seen.append(tags)
        success = torch.tensor([t in self.hits for t in tags], dtype=torch.bool)
        x_adv = x.clone()
        if not self.lie:
            x_adv[success, 1] = 1.0  # the flip pixel: the model changes its mind
        return AttackResult(x_adv=x_adv, success=success,
                            passes=Passes(forward=len(tags), backward=len(tags)))


class Flip(nn.Module):
    """(N, 2) inputs [tag, flip] -> 2 logits; predicts 1 iff flip > 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([0.5 - x[:, 1], x[:, 1] - 0.5], dim=1)


def tagged(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(n, 2)
    x[:, 0] = torch.arange(n).float()
    return x, torch.zeros(n, dtype=torch.long)


THREAT = ThreatModel("Linf", 1.0, bounds=(0.0, 100.0))


def test_each_stage_sees_only_what_earlier_stages_left() -> None:
    first, second, third = Recorder(hits=(0, 1)), Recorder(hits=(2, 5)), Recorder(hits=(3,))
    cascade = Cascade(stages={"a": first, "b": second, "c": third})
    x, y = tagged(6)
    res = cascade.run(Flip(), x, y, THREAT)
    assert first.seen == [[0, 1, 2, 3, 4, 5]]
    assert second.seen == [[2, 3, 4, 5]]
    assert third.seen == [[3, 4]]
    assert res.success.tolist() == [True, True, True, True, False, True]
    assert {k: v["broken"] for k, v in res.stages.items()} == {"a": 2, "b": 2, "c": 1}
    assert list(res.stages) == ["a", "b", "c"]


def test_claims_that_do_not_fool_the_model_are_not_counted() -> None:
    liar, honest = Recorder(hits=(0, 1, 2), lie=True), Recorder(hits=(1,))
    res = Cascade(stages={"liar": liar, "honest": honest}).run(Flip(), *tagged(4), THREAT)
    assert res.success.tolist() == [False, True, False, False]
    assert res.stages["liar"]["broken"] == 0
    assert honest.seen == [[0, 1, 2, 3]]  # the liar's claims did not remove anything


def test_passes_add_up_over_stages_plus_the_clean_check_and_re_checks() -> None:
    res = Cascade(stages={"a": Recorder(hits=(0,)), "b": Recorder()}).run(
        Flip(), *tagged(3), THREAT)
    assert res.stages["a"]["passes"] == {"forward": 3 + 1, "backward": 3}  # + 1 re-check
    assert res.stages["b"]["passes"] == {"forward": 2, "backward": 2}
    assert res.passes.to_dict() == {"forward": 3 + 4 + 2, "backward": 5}


def test_samples_already_wrong_reach_no_stage() -> None:
    x, y = tagged(3)
    x[1, 1] = 1.0  # already predicted 1
    first = Recorder()
    res = Cascade(stages={"a": first}).run(Flip(), x, y, THREAT)
    assert first.seen == [[0, 2]]
    assert res.success.tolist() == [False, True, False]


def test_an_empty_or_ill_typed_cascade_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one stage"):
        Cascade(stages={}).run(Flip(), *tagged(2), THREAT)
    bad: dict[str, Any] = {"x": object()}
    with pytest.raises(ConfigError, match="not an Attack"):
        Cascade(stages=bad).run(Flip(), *tagged(2), THREAT)


def test_autoattack_versions_have_the_paper_stages_and_budgets() -> None:
    std = build_stages("standard", 100, 9, 5000, 20)
    assert list(std) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert std["apgd-ce"].get_params()["steps"] == 100
    assert std["apgd-t"].get_params()["n_target_classes"] == 9
    assert std["fab-t"].get_params()["n_target_classes"] == 9
    assert std["square"].get_params()["n_queries"] == 5000
    plus = build_stages("plus", 100, 9, 5000, 20)
    assert list(plus) == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert plus["apgd-ce"].get_params()["restarts"] == 5
    rand = build_stages("rand", 100, 9, 5000, 20)
    assert list(rand) == ["apgd-ce", "apgd-dlr"]
    assert rand["apgd-dlr"].get_params()["eot_iter"] == 20


def test_autoattack_refuses_an_unknown_version() -> None:
    with pytest.raises(ConfigError, match="version must be one of"):
        AutoAttack(version="fast").run(Flip(), *tagged(2), THREAT)


def test_autoattack_params_rebuild_it() -> None:
    attack = make("autoattack", version="plus", steps=7)
    again = make("autoattack", **attack.get_params())
    assert again.get_params() == attack.get_params()


@pytest.mark.slow
def test_autoattack_is_at_least_as_strong_as_pgd_on_the_bundled_robust_model() -> None:
    from bastion import data, zoo

    model = zoo.load("mnist-lenet5-pgd").eval()
    ds = data.load("mnist", "test", 60)
    threat = ThreatModel("Linf", 0.3)
    gen = torch.Generator().manual_seed
    pgd = PGD(steps=20).run(model, ds.x, ds.y, threat, generator=gen(0))
    aa = AutoAttack(steps=20, n_target_classes=3, n_queries=200).run(
        model, ds.x, ds.y, threat, generator=gen(0))
    assert int(aa.success.sum()) >= int(pgd.success.sum())
    assert bool(threat.contains(aa.x_adv, ds.x).all())
    with torch.no_grad():
        assert torch.equal(model(aa.x_adv).argmax(1) != ds.y, aa.success)
    assert sum(s["broken"] for s in aa.stages.values()) <= int(aa.success.sum())
