"""Guarded: a model that abstains above a threshold chosen on held-out ID data."""

from __future__ import annotations

import pytest
import torch

from bastion.errors import ConfigError
from bastion.ood import Guarded, make

from .conftest import gaussians, toy_model


def test_guarded_answers_the_target_share_and_abstains_on_ood(model, fit_data, id_test,
                                                             ood_test) -> None:
    det = make("mahalanobis").fit(model, fit_data)
    heldout = gaussians(100, seed=9)[0]
    guarded = Guarded.calibrate(model, det, heldout, tpr=0.9)
    assert guarded.abstain_index == 3
    out = guarded(heldout)
    assert out.shape == (len(heldout), 4)
    answered = (out.argmax(dim=1) != guarded.abstain_index).float().mean()
    assert answered >= 0.9
    abstained = guarded(ood_test).argmax(dim=1) == guarded.abstain_index
    assert abstained.float().mean() > 0.95
    torch.testing.assert_close(abstained, guarded.rejects(ood_test))
    # answered inputs keep the model's own prediction
    kept = out.argmax(dim=1) != 3
    torch.testing.assert_close(out.argmax(dim=1)[kept], model(heldout).argmax(dim=1)[kept])


def test_calibrate_refuses_a_detector_fitted_on_another_model(model, fit_data,
                                                              id_test) -> None:
    det = make("energy").fit(toy_model(), fit_data)
    with pytest.raises(ConfigError, match="not fitted on this model"):
        Guarded.calibrate(model, det, id_test)
