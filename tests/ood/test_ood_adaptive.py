"""The adaptive attack moves the score the way it is told, inside the ball."""

from __future__ import annotations

import pytest
import torch

from bastion.errors import ConfigError
from bastion.ood import Energy, attack_all, attack_scores, auroc, make
from bastion.threat import ThreatModel

THREAT = ThreatModel("Linf", 0.1)


@pytest.mark.parametrize("name", ["energy", "mahalanobis", "knn", "odin"])
def test_attack_closes_the_score_gap_it_targets(name: str, model, fit_data, id_test,
                                               ood_test) -> None:
    det = make(name).fit(model, fit_data)
    down = attack_scores(det, ood_test[:60], THREAT, direction="down", steps=10)
    up = attack_scores(det, id_test[:60], THREAT, direction="up", steps=10)
    assert THREAT.contains(down.x_adv, ood_test[:60]).all()
    assert THREAT.contains(up.x_adv, id_test[:60]).all()
    assert (down.scores <= down.clean_scores + 1e-5).all()
    assert (up.scores >= up.clean_scores - 1e-5).all()
    gap_clean = down.clean_scores.mean() - up.clean_scores.mean()
    gap_adv = down.scores.mean() - up.scores.mean()
    assert gap_adv < gap_clean - 0.2 * abs(gap_clean)
    assert auroc(up.scores, down.scores) < auroc(up.clean_scores, down.clean_scores)
    torch.testing.assert_close(det.score(down.x_adv), down.scores, rtol=1e-4, atol=1e-4)


class _Flat(Energy):
    """Energy with its input gradient cut: what a masked score looks like to PGD."""

    def differentiable_score(self, x: torch.Tensor) -> torch.Tensor:
        return super().differentiable_score(x.detach()) + 0.0 * x.sum(dim=(1, 2, 3))


def test_random_points_expose_a_masked_gradient(model, fit_data, ood_test) -> None:
    masked = attack_scores(_Flat().fit(model, fit_data), ood_test, THREAT, direction="down",
                           steps=5, random_points=4)
    honest = attack_scores(Energy().fit(model, fit_data), ood_test, THREAT,
                           direction="down", steps=5, random_points=4)
    assert masked.masking_suspected
    assert not honest.masking_suspected


def test_attack_is_seeded_and_batched_the_same(model, fit_data, ood_test) -> None:
    det = make("knn").fit(model, fit_data)
    a = attack_all(det, ood_test[:40], THREAT, direction="down", steps=3, batch_size=40)
    b = attack_all(det, ood_test[:40], THREAT, direction="down", steps=3, batch_size=40)
    torch.testing.assert_close(a.scores, b.scores)


def test_bad_attack_settings(model, fit_data, ood_test) -> None:
    det = make("energy").fit(model, fit_data)
    with pytest.raises(ConfigError, match="direction"):
        attack_scores(det, ood_test, THREAT, direction="sideways")
    with pytest.raises(ConfigError, match="steps"):
        attack_scores(det, ood_test, THREAT, direction="up", steps=0)
