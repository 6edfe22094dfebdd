"""Poisoning attacks: the contract every registered attack keeps, each attack's own
behaviour, and the errors bad input gets before anything is changed."""

from __future__ import annotations

import pytest
import torch

from bastion.errors import ConfigError, InputError
from bastion.poison import ATTACKS, BadNets, Blended, CleanLabel, LabelFlip, parse_poison
from bastion.poison.base import PoisonAttack
from bastion.poison.registry import fields_of
from conftest import tiny_cnn


def data(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=gen) * 0.5, torch.arange(n) % 10


def make(name: str) -> PoisonAttack:
    # clean-label needs a surrogate: tests give it one directly, here its eps is 0
    return parse_poison(f"{name}:rate=0.05,target=0" + (",eps=0.0" if name == "clean-label"
                                                          else ""))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_keeps_the_contract(name: str) -> None:
    attack = make(name)
    assert isinstance(attack, PoisonAttack)
    x, y = data()
    before = x.clone(), y.clone()
    out = attack.poison(x, y, seed=3)
    assert out.x.shape == x.shape and out.y.shape == y.shape and out.y.dtype == torch.int64
    assert len(out.indices) == round(0.05 * len(y)) == int(out.mask.sum())
    assert bool((out.x >= 0).all() and (out.x <= 1).all())
    # inputs untouched, samples outside the indices untouched
    assert torch.equal(x, before[0]) and torch.equal(y, before[1])
    rest = ~out.mask
    assert torch.equal(out.x[rest], x[rest]) and torch.equal(out.y[rest], y[rest])
    changed = (out.x[out.mask] != x[out.mask]).flatten(1).any(1) | (out.y[out.mask] != y[out.mask])
    assert bool(changed.all())
    # seeded: the same seed gives the same poison, another seed another choice
    again = attack.poison(x, y, seed=3)
    assert torch.equal(again.x, out.x) and torch.equal(again.indices, out.indices)
    assert not torch.equal(attack.poison(x, y, seed=4).indices, out.indices)
    trig = attack.apply_trigger(x[:5])
    assert trig.shape == (5, 1, 8, 8)
    assert bool((trig != x[:5]).any()) == attack.has_trigger


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, float("nan")])
def test_every_attack_refuses_a_rate_outside_0_1(name: str, rate: float) -> None:
    cls = ATTACKS[name]
    with pytest.raises(ConfigError, match=r"rate must be a fraction in \(0, 1\)"):
        cls(rate=rate).poison(*data())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_refuses_nan_images(name: str) -> None:
    x, y = data()
    x[7, 0, 2, 2] = float("nan")
    with pytest.raises(InputError, match="1 images hold NaN"):
        make(name).poison(x, y)


def test_badnets_stamps_the_patch_and_relabels_to_the_target() -> None:
    x, y = data()
    out = BadNets(rate=0.1, target=3, size=2, margin=1).poison(x, y, seed=0)
    assert bool((y[out.indices] != 3).all())  # drawn from the other classes
    assert bool((out.y[out.indices] == 3).all())
    patch = out.x[out.indices][..., 5:7, 5:7]
    assert bool((patch == 1.0).all())
    assert torch.equal(out.x[out.indices][..., :5, :], x[out.indices][..., :5, :])


def test_a_trigger_larger_than_the_image_is_refused_before_any_change() -> None:
    x, y = data()
    with pytest.raises(ConfigError, match="does not fit 8x8 images"):
        BadNets(size=8, margin=1).poison(x, y)


def test_blended_mixes_a_fixed_pattern_at_alpha() -> None:
    x, y = data()
    attack = Blended(rate=0.1, target=0, alpha=0.25)
    out = attack.poison(x, y)
    expected = 0.75 * x[out.indices] + 0.25 * attack.pattern((1, 8, 8))
    assert torch.allclose(out.x[out.indices], expected)
    assert torch.equal(attack.pattern((1, 8, 8)), attack.pattern((1, 8, 8)))


def test_clean_label_keeps_labels_and_poisons_only_the_target_class() -> None:
    x, y = data()
    attack = CleanLabel(rate=0.05, target=2, eps=0.1, steps=3, size=2)
    out = attack.poison(x, y, seed=0, model=tiny_cnn())
    assert torch.equal(out.y, y)
    assert bool((y[out.indices] == 2).all())
    moved = out.x[out.indices] - x[out.indices]
    body = moved[..., :5, :]  # away from the patch, only the PGD perturbation
    assert float(body.abs().max()) <= 0.1 + 1e-6 and float(body.abs().max()) > 0


def test_clean_label_refuses_more_poisons_than_the_target_class_has() -> None:
    with pytest.raises(ConfigError, match="only 20 are eligible"):
        CleanLabel(rate=0.5, target=0, eps=0.0).poison(*data())


def test_label_flip_never_keeps_the_true_label() -> None:
    x, y = data()
    out = LabelFlip(rate=0.5).poison(x, y, seed=1)
    assert bool((out.y[out.indices] != y[out.indices]).all())
    assert torch.equal(out.x, x)
    targeted = LabelFlip(rate=0.2, target=4).poison(x, y)
    assert bool((targeted.y[targeted.indices] == 4).all())


def test_specs_are_parsed_and_checked() -> None:
    attack = parse_poison("badnets:rate=0.1,target=0,size=3")
    assert attack == BadNets(rate=0.1, target=0, size=3)
    assert parse_poison("blended:alpha=1").alpha == 1.0  # ints become floats
    with pytest.raises(ConfigError, match="unknown poisoning attack 'nope'"):
        parse_poison("nope")
    with pytest.raises(ConfigError, match="takes no option 'sise'"):
        parse_poison("badnets:sise=3")
    with pytest.raises(ConfigError, match="should be of type int"):
        parse_poison("badnets:size=big")
    assert set(fields_of(BadNets)) >= {"rate", "target"}


def test_target_outside_the_classes_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"target class must be in \[0, 9\]"):
        BadNets(target=12).poison(*data())
