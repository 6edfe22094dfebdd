"""Detection metrics against scikit-learn and hand-counted cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bastion.errors import InputError
from bastion.ood import aupr, auroc, detection, fpr_at_tpr, threshold_at_tpr
from bastion.ood.metrics import auroc_interval, wilson_interval


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_aupr_match_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    id_s = rng.integers(0, 20, 300).astype(float)   # integer scores: many ties
    ood_s = rng.integers(5, 25, 200).astype(float)
    labels = np.r_[np.zeros(300), np.ones(200)]
    scores = np.r_[id_s, ood_s]
    assert auroc(id_s, ood_s) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr(id_s, ood_s) == pytest.approx(average_precision_score(labels, scores),
                                              abs=1e-12)


def test_fpr_at_tpr_counts_ood_accepted_at_the_id_threshold() -> None:
    id_s = np.arange(100.0)           # 95% of them are <= 94
    assert threshold_at_tpr(id_s, 0.95) == 94.0
    fpr, accepted = fpr_at_tpr(id_s, np.array([50.0, 94.0, 95.0, 200.0]))
    assert (fpr, accepted) == (0.5, 2)


def test_perfect_and_useless_scores() -> None:
    perfect = detection(np.zeros(50), np.ones(50))
    assert perfect.auroc == 1.0 and perfect.fpr95 == 0.0 and perfect.aupr == 1.0
    assert perfect.fpr95_ci[0] == 0.0 and 0 < perfect.fpr95_ci[1] < 0.1
    flat = detection(np.zeros(50), np.zeros(50))
    assert flat.auroc == 0.5 and flat.fpr95 == 1.0


def test_intervals_contain_the_estimate_and_shrink_with_n() -> None:
    low, high = wilson_interval(0, 200)
    assert low == 0.0 and high == pytest.approx(0.0188, abs=1e-4)
    small, big = auroc_interval(0.9, 50, 50), auroc_interval(0.9, 5000, 5000)
    assert small[0] < 0.9 < small[1] and big[0] < 0.9 < big[1]
    assert big[1] - big[0] < small[1] - small[0]


def test_bad_scores_are_refused() -> None:
    with pytest.raises(InputError, match="at least one"):
        auroc(np.array([]), np.ones(3))
    with pytest.raises(InputError, match="NaN"):
        detection(np.array([0.0, np.nan]), np.ones(3))
    with pytest.raises(InputError, match="tpr"):
        threshold_at_tpr(np.ones(3), 0.0)
