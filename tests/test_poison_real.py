"""The headline numbers on reduced sizes, with the bundled backdoored model on real MNIST:
attack success, curation detectors with a trusted reference, STRIP."""

from __future__ import annotations

import pytest

from bastion import data
from bastion.poison import parse_poison
from bastion.poison.audit import audit
from bastion.poison.strip import Strip
from bastion.train.integrity import attack_success
from bastion.zoo import load

pytestmark = pytest.mark.slow
SPEC = "badnets:rate=0.1,target=0,size=3"


def test_mnist_badnets_is_accurate_and_backdoored() -> None:
    model = load("mnist-badnets")
    test = data.load("mnist", "test", 1000)
    assert float((model(test.x).argmax(1) == test.y).float().mean()) >= 0.975
    hit = attack_success(model, SPEC, test.x, test.y)
    assert hit is not None and hit["rate"] >= 0.99


def test_curation_detectors_with_reference_catch_the_badnets_poison() -> None:
    train, val = data.load("mnist", "train", 3000), data.load("mnist", "val")
    planted = parse_poison(SPEC).poison(train.x, train.y, seed=0)
    result = audit(load("mnist-badnets"), planted.x, planted.y, poisoned=planted.mask,
                   reference=(val.x[-2000:], val.y[-2000:]))
    best = result["detectors"]["activation-clustering"]["rates"]
    assert best["tpr"]["rate"] >= 0.95
    assert best["per_class"]["0"]["fpr"]["rate"] <= 0.05
    for found in result["detectors"].values():  # every detector does at least decently
        assert found["rates"]["tpr"]["rate"] >= 0.9
        assert found["rates"]["fpr"]["rate"] <= 0.05


def test_strip_flags_triggered_inputs_at_a_low_false_positive_rate() -> None:
    model = load("mnist-badnets")
    val, test = data.load("mnist", "val"), data.load("mnist", "test", 300)
    strip = Strip(fpr=0.05, overlays=16).fit(model, val.x[:600])
    attack = parse_poison(SPEC)
    keep = test.y != 0
    assert float(strip.flag(model, attack.apply_trigger(test.x[keep])).float().mean()) >= 0.9
    assert float(strip.flag(model, test.x).float().mean()) <= 0.1
