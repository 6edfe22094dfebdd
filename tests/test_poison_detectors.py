"""Curation detectors (contract over every registered one, and each finds a planted
cluster), STRIP, Neural Cleanse's anomaly index, and features from the right layer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bastion.errors import ConfigError, InputError, StateError
from bastion.poison.audit import DETECTORS, audit, cleaned, detector
from bastion.poison.cleanse import NeuralCleanse, anomaly
from bastion.poison.curation import Audit, CurationDetector
from bastion.poison.features import penultimate
from bastion.poison.metrics import detection_rates, wilson
from bastion.poison.strip import Strip, StripFiltered, allowed
from conftest import tiny_cnn


def planted(n_per_class: int = 200, poisons: int = 20, seed: int = 0, scattered: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Features of 3 classes (Gaussian blobs in 16-d); ``poisons`` samples labelled 0 sit
    in a far, tight blob (or, ``scattered``, each far on its own). Returns features,
    labels, the poison mask and a clean reference."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 16, generator=gen) * 4
    y = torch.arange(3).repeat_interleave(n_per_class)
    f = centres[y] + torch.randn(len(y), 16, generator=gen)
    f[:poisons] = centres[0] + (6 * torch.randn(poisons, 16, generator=gen) if scattered else
                                8 + 0.3 * torch.randn(poisons, 16, generator=gen))
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[:poisons] = True
    ref_y = torch.arange(3).repeat_interleave(100)
    ref = (centres[ref_y] + torch.randn(len(ref_y), 16, generator=gen), ref_y)
    return f, y, mask, ref


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("with_reference", [False, True])
def test_every_detector_keeps_the_contract_and_finds_a_planted_cluster(
        name: str, with_reference: bool) -> None:
    det = detector(name)
    assert isinstance(det, CurationDetector)
    # without a reference the kNN score finds isolated poisons, not a dense mass of them
    # (its documented limit); the others look for a mass
    f, y, mask, ref = planted(scattered=name == "knn" and not with_reference)
    found = det.audit(f, y, reference=ref if with_reference else None)
    assert isinstance(found, Audit)
    assert found.scores.shape == (len(y),) and found.flagged.dtype == torch.bool
    assert bool(torch.isfinite(found.scores).all())
    rates = detection_rates(found.flagged, mask, y)
    assert rates["tpr"]["rate"] >= 0.9, rates["tpr"]
    if with_reference:  # calibrated on clean data: few clean samples flagged
        assert rates["fpr"]["rate"] <= 0.1, rates["fpr"]
    # poisons score above the clean samples of their class
    assert float(found.scores[mask].mean()) > float(found.scores[~mask & (y == 0)].mean())
    again = det.audit(f, y, reference=ref if with_reference else None)
    assert torch.equal(again.flagged, found.flagged)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_refuses_nan_features(name: str) -> None:
    f, y, _, _ = planted()
    f[3, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        detector(name).audit(f, y)


def test_unknown_detector_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="spectral"):
        detector("magic")


def test_features_are_the_input_of_the_last_linear_layer() -> None:
    model = tiny_cnn()
    x = torch.rand(5, 1, 8, 8)
    feats = penultimate(model, x, batch_size=2)
    assert feats.shape == (5, 16)
    assert torch.allclose(model[-1](feats), model(x), atol=1e-6)


def test_audit_reports_rates_and_cleaned_drops_the_flagged() -> None:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 8, 8, generator=gen)
    y = torch.arange(60) % 3
    truth = torch.zeros(60, dtype=torch.bool)
    truth[:6] = True
    result = audit(model, x, y, detectors=["knn"], poisoned=truth, reference=(x[:30], y[:30]))
    knn = result["detectors"]["knn"]
    assert knn["rates"]["tpr"]["n"] == 6 and knn["scores"].shape == (60,)
    cx, cy, kept = cleaned(x, y, [1, 5, 7])
    assert len(cx) == len(cy) == 57 and 5 not in kept.tolist()


def test_wilson_interval_brackets_the_rate() -> None:
    low, high = wilson(95, 100)  # type: ignore[misc]
    assert low < 0.95 < high and wilson(0, 0) is None
    assert wilson(0, 50)[0] == 0.0  # type: ignore[index]


class Backdoored(nn.Module):
    """Sends any image whose top-left pixel is bright to class 0, else the tiny CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        hot = (x[:, 0, 0, 0] > 0.9).float()[:, None]
        return out * (1 - hot) + hot * torch.nn.functional.one_hot(
            torch.zeros(len(x), dtype=torch.long), 10) * 50


def test_strip_flags_triggered_inputs_and_not_clean_ones() -> None:
    model = Backdoored().eval()
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(200, 1, 8, 8, generator=gen) * 0.8
    strip = Strip(overlays=16, fpr=0.05).fit(model, clean[:100])
    triggered = clean[100:].clone()
    triggered[:, 0, 0, 0] = 1.0
    assert float(strip.flag(model, triggered).float().mean()) >= 0.9
    assert float(strip.flag(model, clean[100:]).float().mean()) <= 0.15
    wrapped = StripFiltered(model, strip)
    assert wrapped(triggered[:4]).shape == (4, 10) and wrapped.last_flags is not None


def test_strip_threshold_keeps_the_wilson_bound_of_its_held_out_rate() -> None:
    for n, fpr in ((1000, 0.05), (2500, 0.05), (400, 0.2)):
        k = allowed(n, fpr)
        assert wilson(k, n)[1] <= fpr < wilson(k + 1, n)[1]
    assert allowed(50, 0.05) == 0  # even 0 of 50 leaves a bound above 5%: flag none
    model = Backdoored().eval()
    clean = torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.8
    bounded = Strip(overlays=8, fpr=0.2).fit(model, clean)
    plain = Strip(overlays=8, fpr=0.2, margin="none").fit(model, clean)
    assert bounded.threshold is not None and plain.threshold is not None
    # the held-out half: the bounded threshold flags exactly its allowance, below fpr
    flagged = int(bounded.flag(model, clean[200:]).sum())
    assert flagged == allowed(200, 0.2) < 0.2 * 200
    assert bounded.threshold <= plain.threshold
    with pytest.raises(ConfigError, match="margin"):
        Strip(margin="half").fit(model, clean)


def test_strip_needs_fit_and_enough_clean_images() -> None:
    model = tiny_cnn()
    with pytest.raises(StateError, match="call fit"):
        Strip().flag(model, torch.rand(3, 1, 8, 8))
    with pytest.raises(InputError, match="at least 20"):
        Strip().fit(model, torch.rand(5, 1, 8, 8))


def test_anomaly_index_flags_the_one_small_norm() -> None:
    found = anomaly(torch.tensor([60.0, 55, 70, 64, 58, 66, 5, 61, 59, 62]), 2.0)
    assert found["flagged"] == [6] and found["backdoored"]
    assert not anomaly(torch.tensor([60.0, 55, 70, 64, 58, 66, 57, 61, 59, 62]), 2.0)["backdoored"]


def test_mask_ratio_ignores_a_wide_spread_of_large_masks_but_not_one_small_one() -> None:
    # all masks large but spread over a factor of 3: the MAD rule alone sees an outlier
    spread = torch.tensor([68.0, 125, 118, 132, 203, 150, 121, 140, 110, 185])
    assert anomaly(spread, 2.0)["flagged"] == [0]
    assert anomaly(spread, 2.0, scale="log")["flagged"] == [0]  # so does the log scale
    assert not anomaly(spread, 2.0, max_ratio=0.25)["backdoored"]
    one_small = spread.clone()
    one_small[4] = 6.0
    assert anomaly(one_small, 2.0, max_ratio=0.25)["flagged"] == [4]
    with pytest.raises(ConfigError, match="linear or log"):
        anomaly(spread, 2.0, scale="sqrt")
    with pytest.raises(ConfigError, match="linear or log"):
        NeuralCleanse(scale="sqrt").scan(tiny_cnn(), torch.rand(4, 1, 8, 8), num_classes=10)


def test_neural_cleanse_scan_resumes_from_its_state(tmp_path: Path) -> None:
    model = Backdoored().eval()
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.8
    nc = NeuralCleanse(steps=6, batch_size=16)
    state = tmp_path / "nc.json"
    first = nc.scan(model, x, num_classes=3, state=state)
    assert len(first["l1"]) == 3 and state.exists()
    again = nc.scan(model, x, num_classes=3, state=state)
    assert again["l1"] == first["l1"]
    # the scale only rereads the saved masks; each trigger keeps its pattern too
    relog = NeuralCleanse(steps=6, batch_size=16, scale="log", max_ratio=None).scan(
        model, x, num_classes=3, state=state)
    assert relog["l1"] == first["l1"] and relog["scale"] == "log"
    assert torch.tensor(first["triggers"][0]["pattern"]).shape == (1, 8, 8)
    with pytest.raises(StateError, match="different run"):
        NeuralCleanse(steps=7, batch_size=16).scan(model, x, num_classes=3, state=state)
    with pytest.raises(InputError, match="finite clean images"):
        nc.scan(model, torch.full((4, 1, 8, 8), float("nan")), num_classes=10)
