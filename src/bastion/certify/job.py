"""The job behind ``bastion certify``: certify, cross-check with an attack, write JSON.

Every certificate is checked against an attack on the same samples at every radius of
the curve: a sample that is certified *and* broken by the attack proves a bound
verifier unsound, so the count ``certified_but_broken`` must be 0. Smoothing certifies
the smoothed classifier, so its attack is PGD with expectation over the noise, judged
by the smoothed prediction (:mod:`bastion.certify.crosscheck`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bastion.certify.api import METHODS, SmoothingConfig, certify
from bastion.certify.budget import DEFAULT_MAX_MEMORY_MB
from bastion.certify.crosscheck import cross_check
from bastion.common.records import versions
from bastion.common.state import model_digest
from bastion.errors import ConfigError
from bastion.evaluation.checks import check_model
from bastion.inputs import UserInputs, data_record
from bastion.jobs import EvalSpec, model_info, parse_device
from bastion.threat import ThreatModel
from bastion.zoo.user import load_any

#: Smoothing's empirical side (:mod:`bastion.certify.crosscheck`): noise draws averaged
#: per attack step, and PREDICT's noise samples when judging an attacked point.
EOT_DRAWS = 16
PREDICT_SAMPLES = 1000


@dataclass(frozen=True)
class CertifySpec:
    """One ``bastion certify`` run, as given on the command line."""

    model: str
    data: str = "mnist"
    split: str = "test"
    n: int | None = 100
    method: str = "crown"
    norm: str | None = None  # None: L2 for smoothing, Linf otherwise
    eps: float = 0.1
    sweep: tuple[float, ...] = ()
    attack: str | None = "pgd"
    steps: int = 40
    sigma: float = 0.25
    n0: int = 100
    samples: int = 10_000
    alpha: float = 0.001
    batch_size: int | None = None  # None: 64 samples (bounds), 1000 noisy copies (smoothing)
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB  # CROWN methods: one chunk of specifications
    seed: int = 0
    checkpoint: Path | None = None
    device: str = "cpu"
    inputs: UserInputs = field(default_factory=UserInputs)

    def threat(self) -> ThreatModel:
        norm = self.norm or ("L2" if self.method == "smoothing" else "Linf")
        return ThreatModel(norm=norm, eps=self.eps)


def run_certify(spec: CertifySpec) -> dict[str, Any]:
    """Certify ``spec.model`` on the first ``spec.n`` samples; the JSON-contract dict.

    ``sweep`` holds one point per radius (ascending): ``certified_accuracy`` and, when an
    attack ran, ``empirical_robust_accuracy``, ``gap`` (empirical minus certified) and
    ``certified_but_broken``; the top-level numbers are the point at ``spec.eps``.
    """
    if spec.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {spec.method!r}")
    if spec.attack not in (None, "pgd"):
        raise ConfigError(f"--attack must be 'pgd' or 'none', got {spec.attack!r}")
    threat = spec.threat()
    device = parse_device(spec.device)
    dataset = spec.inputs.load(spec.data, spec.split, spec.n)
    model = spec.inputs.wrap(load_any(spec.model, spec.checkpoint), dataset).to(device).eval()
    x, y = dataset.x.to(device), dataset.y.to(device)
    check_model(model, x, y)  # a wrong input shape fails here with advice, not deep inside
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    began = time.perf_counter()
    cert = _certify(model, x, y, threat, spec)
    seconds = time.perf_counter() - began
    radii = sorted({spec.eps, *spec.sweep})
    certified = {e: cert.certified if e == spec.eps else _certified_at(model, x, y, threat, e,
                                                                        spec, cert)
                 for e in radii}
    out: dict[str, Any] = {
        "method": spec.method, "threat": threat.to_dict(), "n": len(dataset),
        "clean_accuracy": _share(clean),
        "certified_accuracy": _share(cert.certified),
        "seconds": round(seconds, 3),
        "model": {**model_info(EvalSpec(model=spec.model), model_digest(model)),
                  **spec.inputs.record()},
        "data": data_record(dataset),
        "versions": versions(),
        "sweep": [{"eps": e, "certified_accuracy": _share(certified[e])}
                  for e in radii],
    }
    if spec.method == "smoothing":
        assert cert.radius is not None and cert.abstained is not None
        out["smoothing"] = {"sigma": spec.sigma, "n0": spec.n0, "n": spec.samples,
                            "alpha": spec.alpha, "forward_passes": cert.forward_passes,
                            "noisy_samples_per_second": round(cert.forward_passes / seconds, 1),
                            "abstained": _share(cert.abstained),
                            "mean_radius": float(cert.radius.mean())}
    if spec.attack:
        out.update(_cross_check(model, x, y, threat, radii, certified, spec, out["sweep"]))
    return out


def _certify(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             spec: CertifySpec) -> Any:
    cfg = SmoothingConfig(sigma=spec.sigma, n0=spec.n0, n=spec.samples, alpha=spec.alpha,
                          batch=spec.batch_size or 1000)
    gen = torch.Generator(device=x.device).manual_seed(spec.seed)
    return certify(model, x, y, threat, method=spec.method, batch_size=spec.batch_size or 64,
                   max_memory_mb=spec.max_memory_mb, smoothing=cfg, generator=gen)


def _certified_at(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  threat: ThreatModel, eps: float, spec: CertifySpec,
                  cert: Any) -> torch.Tensor:
    """(N,) bool at another radius: smoothing reads its radii, bound methods re-bound."""
    if spec.method == "smoothing":
        return cert.certified_at(eps)
    return certify(model, x, y, threat.with_eps(eps), method=spec.method,
                   batch_size=spec.batch_size or 64,
                   max_memory_mb=spec.max_memory_mb).certified


def _cross_check(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, radii: list[float], certified: dict[float, torch.Tensor],
                 spec: CertifySpec, sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """Attack the same samples at every radius; fill in ``sweep`` and return the
    top-level fields at ``spec.eps`` (see :mod:`bastion.certify.crosscheck`)."""
    smoothing = None
    if spec.method == "smoothing":
        smoothing = {"sigma": spec.sigma, "n": PREDICT_SAMPLES, "alpha": spec.alpha,
                     "batch": spec.batch_size or 1000, "draws": EOT_DRAWS}
    began = time.perf_counter()
    check = cross_check(model, x, y, threat, radii, steps=spec.steps, seed=spec.seed,
                        smoothing=smoothing)
    for point in sweep:
        eps = point["eps"]
        empirical = _share(check.robust[eps])
        point["empirical_robust_accuracy"] = empirical
        # From the counts, so 0.9 - 0.8 prints as 0.1.
        point["gap"] = (int(check.robust[eps].sum()) - int(certified[eps].sum())) / len(y)
        point["certified_but_broken"] = int((certified[eps] & check.broken[eps]).sum())
    main = next(p for p in sweep if p["eps"] == spec.eps)
    out = {"attack": check.attack,
           "empirical_clean_accuracy": _share(check.clean),
           "empirical_robust_accuracy": main["empirical_robust_accuracy"],
           "gap": main["gap"],
           "certified_but_broken": main["certified_but_broken"],
           "attack_passes": check.passes.to_dict(),
           "attack_seconds": round(time.perf_counter() - began, 3)}
    if smoothing is not None:
        out["attack_params"] = {"eot_draws": EOT_DRAWS, "predict_samples": PREDICT_SAMPLES,
                                "alpha": spec.alpha, "steps": spec.steps}
    return out


def _share(mask: torch.Tensor) -> float:
    """Share of True in a (N,) bool mask, as an exact ratio of counts."""
    return int(mask.sum()) / max(mask.numel(), 1)


def sweep_values(text: str | None) -> Sequence[float]:
    """Parse ``--sweep 0.01,0.02`` into floats."""
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sweep expects comma-separated numbers, got {text!r}") from None
