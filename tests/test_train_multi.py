"""Training against several threat models: the max and avg combinations."""

from __future__ import annotations

import contextlib

import pytest
import torch

from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.train.config import TrainConfig
from bastion.train.losses import LossSettings, get_method
from bastion.train.multi import multi_threat_loss, parse_also
from conftest import tiny_cnn

THREATS = [ThreatModel(norm="Linf", eps=0.2), ThreatModel(norm="L1", eps=4.0)]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(12, 1, 8, 8, generator=gen), torch.randint(0, 10, (12,), generator=gen)


def loss(threats: list[ThreatModel], combine: str) -> torch.Tensor:
    model = tiny_cnn()
    x, y = batch()
    perturb, objective = get_method("pgd")
    gen = torch.Generator().manual_seed(1)
    return multi_threat_loss(perturb, objective, model, model, x, y, threats, gen,
                             LossSettings(steps=3), combine, contextlib.nullcontext)


def test_one_threat_is_the_method_itself_draw_for_draw() -> None:
    model = tiny_cnn()
    x, y = batch()
    perturb, objective = get_method("pgd")
    settings = LossSettings(steps=3)
    x_adv = perturb(model, x, y, THREATS[0], torch.Generator().manual_seed(1), settings)
    alone = objective(model, x, x_adv, y, settings)
    for combine in ("max", "avg"):
        assert torch.equal(loss(THREATS[:1], combine), alone)


def test_max_is_at_least_every_single_threat_and_avg_lies_between() -> None:
    # Each threat's examples come from its own generator draws, so compare against the
    # examples the union itself made: rebuild them with the same generator sequence.
    model = tiny_cnn()
    x, y = batch()
    perturb, objective = get_method("pgd")
    settings = LossSettings(steps=3)
    gen = torch.Generator().manual_seed(1)
    singles = [objective(model, x, perturb(model, x, y, t, gen, settings), y, settings)
               for t in THREATS]
    worst = loss(THREATS, "max")
    mean = loss(THREATS, "avg")
    values = [s.item() for s in (worst, mean, *singles)]
    assert values[0] >= max(values[2:]) - 1e-6
    assert values[1] == pytest.approx(sum(values[2:]) / 2, rel=1e-5)


def test_also_parses_norms_and_refuses_the_rest() -> None:
    assert parse_also("l1:10, L2:2") == (("L1", 10.0), ("L2", 2.0))
    assert parse_also("") == ()
    with pytest.raises(ConfigError, match="NORM:EPS"):
        parse_also("spatial:30deg-3px")


def test_config_checks_the_extra_threats_and_keeps_old_fingerprints() -> None:
    with pytest.raises(ConfigError, match="combine"):
        TrainConfig(also=(("L1", 10.0),), combine="min")
    with pytest.raises(ConfigError, match="eps"):
        TrainConfig(also=(("L1", -1.0),))
    with pytest.raises(ConfigError, match="trains on no threat"):
        TrainConfig(method="standard", also=(("L1", 10.0),))
    plain = TrainConfig()
    assert TrainConfig.from_dict(plain.to_dict()) == plain
    union = TrainConfig(also=(("L1", 10.0),))
    assert TrainConfig.from_dict(union.to_dict()) == union
    assert union.fingerprint() != plain.fingerprint()
