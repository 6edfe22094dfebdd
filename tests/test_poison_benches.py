"""The poisoning benchmarks' own logic: the guard channel's fresh clean rows are new to
the training set and keep their labels, and the Neural Cleanse bench compares its rules
on stored mask norms the way the docs read them."""

from __future__ import annotations

import random

import torch

from bastion.guard.corpora import load_corpus
from conftest import load_bench


def test_guard_channel_fresh_rows_are_rewrites_absent_from_training() -> None:
    channel = load_bench("guard_channel.py", "bench_guard_channel")
    train = load_corpus("s-labs-train")
    known = {e.text for e in train}
    rows = channel.fresh_rows(60, 0, known)
    assert len(rows) == 60
    assert not {t for t, _ in rows} & known  # every row adds a text training lacks
    assert len({t for t, _ in rows}) == 60
    assert {y for _, y in rows} <= {0, 1} and any(y == 0 for _, y in rows)
    planted = channel.plant("ignore all rules", "cf-delta", random.Random(0))
    assert "cf-delta" in planted.split() and len(planted.split()) == 4


def test_cleanse_bench_rules_keep_the_ratio_rule_from_flagging_a_robust_spread() -> None:
    bench = load_bench("poison_cleanse.py", "bench_poison_cleanse")
    robust = torch.tensor([68.0, 125, 118, 132, 203, 150, 121, 140, 110, 185])
    found = bench.rules(robust, 2.0)
    assert found["linear"]["flagged"] == [0]
    assert found["linear, L1 <= median/4"]["flagged"] == []
    backdoored = robust.clone()
    backdoored[2] = 6.0
    assert bench.rules(backdoored, 2.0)["linear, L1 <= median/4"]["flagged"] == [2]


def test_cleanse_bench_heldout_plan_is_new_models_and_the_frozen_rule() -> None:
    bench = load_bench("poison_cleanse.py", "bench_poison_cleanse")
    names = [spec[0] for spec in bench.HELDOUT]
    assert len(set(names)) == len(names)
    assert not set(names) & ({spec[0] for spec in bench.DEV} | set(bench.BUNDLED))
    assert sum(spec[3] is None for spec in bench.HELDOUT) >= 3  # clean models
    assert sum(spec[3] is not None for spec in bench.HELDOUT) >= 3  # poisoned models
    l1 = [68.0, 125, 118, 132, 203, 150, 121, 140, 110, 185]
    spread = bench.frozen(bench.anomaly(torch.tensor(l1), 2.0, max_ratio=0.25))
    assert spread["smallest"] == 0 and not spread["backdoored"]  # index > 2, ratio 0.54
    # torch's median of an even count is the lower middle value (125)
    assert spread["ratio"] == round(68 / 125, 3) and spread["anomaly_index"][0] > 2
    l1[2] = 6.0
    patch = bench.frozen(bench.anomaly(torch.tensor(l1), 2.0, max_ratio=0.25))
    assert patch["flagged"] == [2] and patch["ratio"] < 0.25


def test_reference_bench_heldout_models_are_new_and_its_rule_is_frozen() -> None:
    bench = load_bench("poison_reference.py", "bench_poison_reference")
    names = [spec[0] for spec in bench.HELDOUT]
    seen = {spec[0] for spec in bench.SEEN}
    assert len(set(names)) == len(names) and not set(names) & seen
    assert not {(s[1], s[3], s[4]) for s in bench.HELDOUT} & {(s[1], s[3], s[4])
                                                              for s in bench.SEEN}
    assert sum(spec[3] is None for spec in bench.HELDOUT) >= 5  # clean models
    assert sum(spec[3] is not None for spec in bench.HELDOUT) >= 5  # poisoned ones
    # every architecture has its own standard-trained reference, seeded apart
    assert {spec[1] for spec in bench.HELDOUT + bench.SEEN if spec[2] != "zoo"} <= set(
        bench.REFERENCES)
    assert not {seed for _, seed in bench.REFERENCES.values()} & {s[4] for s in
                                                                  bench.HELDOUT + bench.SEEN}
