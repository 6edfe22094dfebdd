"""Each detector against its definition, on the toy Gaussians of conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.errors import ConfigError, InputError
from bastion.ood import (
    KNN,
    MSP,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    RelativeMahalanobis,
    ViM,
)
from bastion.ood.features import logits_and_features

from .conftest import SIGMA, class_means, gaussians


def test_logit_scores_match_their_formulas(model, fit_data, ood_test) -> None:
    logits = model(ood_test).detach()
    msp = MSP(temperature=2.0).fit(model, fit_data).score(ood_test)
    torch.testing.assert_close(msp, -torch.softmax(logits / 2, dim=1).amax(dim=1))
    torch.testing.assert_close(MaxLogit().fit(model, fit_data).score(ood_test),
                               -logits.amax(dim=1))
    energy = Energy(temperature=3.0).fit(model, fit_data).score(ood_test)
    torch.testing.assert_close(energy, -3.0 * torch.logsumexp(logits / 3.0, dim=1))


def test_odin_without_its_step_is_temperature_scaled_msp(model, fit_data, id_test) -> None:
    odin = ODIN(temperature=5.0, eps=0.0).fit(model, fit_data).score(id_test)
    msp = MSP(temperature=5.0).fit(model, fit_data).score(id_test)
    torch.testing.assert_close(odin, msp)


def test_odin_step_makes_predictions_more_confident(model, fit_data, id_test) -> None:
    plain = ODIN(temperature=5.0, eps=0.0).fit(model, fit_data).score(id_test)
    stepped = ODIN(temperature=5.0, eps=0.01).fit(model, fit_data).score(id_test)
    assert (stepped <= plain + 1e-6).float().mean() > 0.95
    assert stepped.mean() < plain.mean()


def test_mahalanobis_recovers_the_gaussians_and_its_distance(model) -> None:
    x, y = gaussians(2000, seed=5)
    det = Mahalanobis().fit(model, (x, y))
    torch.testing.assert_close(det.means_, class_means(), atol=0.01, rtol=0)
    # shared covariance sigma^2 I (up to clipping at 0 and 1, which never bites here)
    torch.testing.assert_close(det.precision_ * SIGMA ** 2, torch.eye(4), atol=0.12, rtol=0)
    probe = torch.rand(20, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    z = probe.flatten(1).numpy().astype(np.float64)
    prec = det.precision_.numpy().astype(np.float64)
    means = det.means_.numpy().astype(np.float64)
    expected = np.min([np.einsum("nd,de,ne->n", z - m, prec, z - m) for m in means], axis=0)
    np.testing.assert_allclose(det.score(probe).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_relative_mahalanobis_subtracts_the_background_distance(model, fit_data) -> None:
    det = RelativeMahalanobis().fit(model, fit_data)
    plain = Mahalanobis().fit(model, fit_data)
    probe = torch.rand(20, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    z = probe.flatten(1).double()
    centred = z - det.background_mean_.double()
    background = ((centred @ det.background_precision_.double()) * centred).sum(dim=1)
    expected = plain.score(probe).double() - background
    torch.testing.assert_close(det.score(probe).double(), expected, rtol=1e-4, atol=1e-2)


def test_knn_is_the_kth_distance_between_unit_features(model, fit_data, ood_test) -> None:
    det = KNN(k=3).fit(model, fit_data)
    bank = fit_data[0].flatten(1)
    bank = bank / bank.norm(dim=1, keepdim=True)
    q = ood_test.flatten(1)
    q = q / q.norm(dim=1, keepdim=True)
    expected = torch.cdist(q, bank).sort(dim=1).values[:, 2]
    torch.testing.assert_close(det.score(ood_test), expected, rtol=1e-3, atol=1e-3)
    # a fitted point is its own nearest neighbour
    assert KNN(k=1).fit(model, fit_data).score(fit_data[0][:10]).max() < 1e-3


def test_vim_alpha_matches_residual_to_max_logit(model, fit_data) -> None:
    det = ViM(dim=2).fit(model, fit_data)
    logits, feats = logits_and_features(model, fit_data[0], "penultimate")
    residual = ((feats - det.origin_) @ det.residual_).norm(dim=1)
    assert det.residual_.shape == (4, 2)
    torch.testing.assert_close(det.alpha_ * residual.mean(), logits.amax(dim=1).mean(),
                               rtol=1e-4, atol=1e-4)
    scores = det.score(fit_data[0]).double()
    expected = det.alpha_ * residual.double() - torch.logsumexp(logits.double(), dim=1)
    torch.testing.assert_close(scores, expected.detach(), rtol=1e-4, atol=1e-3)


def test_vim_needs_the_penultimate_layer_and_a_valid_dim(model, fit_data) -> None:
    with pytest.raises(ConfigError, match="penultimate"):
        ViM(layer="1").fit(model, fit_data)
    with pytest.raises(ConfigError, match="dim"):
        ViM(dim=4).fit(model, fit_data)


def test_named_layer_features_are_that_layers_output(model, fit_data) -> None:
    det = KNN(k=1, layer="2").fit(model, fit_data)  # the head's output: the logits
    assert det.bank_.shape == (len(fit_data[0]), 3)


def test_parameter_checks(model, fit_data) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        KNN(k=10_000).fit(model, fit_data)
    with pytest.raises(ConfigError, match="temperature"):
        Energy(temperature=0).fit(model, fit_data)
    with pytest.raises(ConfigError, match="eps"):
        ODIN(eps=-1).fit(model, fit_data)
    with pytest.raises(InputError, match="2 classes"):
        Mahalanobis().fit(model, (fit_data[0], torch.zeros(len(fit_data[0]), dtype=torch.long)))


def test_bare_inputs_fit_on_the_models_predictions(model, fit_data) -> None:
    with_labels = Mahalanobis().fit(model, fit_data)
    predicted = Mahalanobis().fit(model, fit_data[0])
    # the toy classifier is nearly always right, so the class means barely move
    torch.testing.assert_close(predicted.means_, with_labels.means_, atol=0.01, rtol=0)
