"""The job behind ``bastion certify``: certify, cross-check with an attack, write JSON.

Every certificate from a bound method is checked against PGD on the same samples: a
sample that is certified *and* broken by the attack proves the verifier unsound, so the
count ``certified_but_broken`` must be 0. Smoothing certifies the smoothed classifier,
which PGD on the base model does not attack, so it reports certified numbers and
throughput only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bastion import attacks as attack_registry
from bastion import data as data_registry
from bastion.certify.api import METHODS, SmoothingConfig, certify
from bastion.errors import ConfigError
from bastion.jobs import parse_device
from bastion.threat import ThreatModel
from bastion.zoo.user import load_any


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
    seed: int = 0
    checkpoint: Path | None = None
    device: str = "cpu"

    def threat(self) -> ThreatModel:
        norm = self.norm or ("L2" if self.method == "smoothing" else "Linf")
        return ThreatModel(norm=norm, eps=self.eps)


def run_certify(spec: CertifySpec) -> dict[str, Any]:
    """Certify ``spec.model`` on the first ``spec.n`` samples; the JSON-contract dict."""
    if spec.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {spec.method!r}")
    threat = spec.threat()
    device = parse_device(spec.device)
    model = load_any(spec.model, spec.checkpoint).to(device).eval()
    dataset = data_registry.load(spec.data, spec.split, spec.n)
    x, y = dataset.x.to(device), dataset.y.to(device)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    began = time.perf_counter()
    cert = _certify(model, x, y, threat, spec)
    seconds = time.perf_counter() - began
    certified = cert.certified
    out: dict[str, Any] = {
        "method": spec.method, "threat": threat.to_dict(), "n": len(dataset),
        "clean_accuracy": float(clean.float().mean()),
        "certified_accuracy": float(certified.float().mean()),
        "seconds": round(seconds, 3),
        "model": {"name": spec.model},
        "data": {"name": dataset.name, "split": dataset.split, "n": len(dataset)},
    }
    if spec.method == "smoothing":
        assert cert.radius is not None and cert.abstained is not None
        out["smoothing"] = {"sigma": spec.sigma, "n0": spec.n0, "n": spec.samples,
                            "alpha": spec.alpha, "forward_passes": cert.forward_passes,
                            "noisy_samples_per_second": round(cert.forward_passes / seconds, 1),
                            "abstained": float(cert.abstained.float().mean()),
                            "mean_radius": float(cert.radius.mean())}
        out["sweep"] = [{"eps": e, "certified_accuracy": float(cert.certified_at(e).float().mean())}
                        for e in sorted({spec.eps, *spec.sweep})]
        return out
    out["sweep"] = [{"eps": e, "certified_accuracy": out["certified_accuracy"] if e == spec.eps
                     else _accuracy_at(model, x, y, threat, e, spec)}
                    for e in sorted({spec.eps, *spec.sweep})]
    if spec.attack:
        out.update(_cross_check(model, x, y, threat, certified, spec))
    return out


def _certify(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             spec: CertifySpec) -> Any:
    cfg = SmoothingConfig(sigma=spec.sigma, n0=spec.n0, n=spec.samples, alpha=spec.alpha,
                          batch=spec.batch_size or 1000)
    gen = torch.Generator(device=x.device).manual_seed(spec.seed)
    return certify(model, x, y, threat, method=spec.method, batch_size=spec.batch_size or 64,
                   smoothing=cfg, generator=gen)


def _accuracy_at(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, eps: float, spec: CertifySpec) -> float:
    cert = certify(model, x, y, threat.with_eps(eps), method=spec.method,
                   batch_size=spec.batch_size or 64)
    return float(cert.certified.float().mean())


def _cross_check(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, certified: torch.Tensor,
                 spec: CertifySpec) -> dict[str, Any]:
    """Attack the same samples at the same eps; count certified samples it breaks."""
    if spec.attack != "pgd":
        raise ConfigError(f"--attack must be 'pgd' or 'none', got {spec.attack!r}")
    attack = attack_registry.make("pgd", steps=spec.steps)
    gen = torch.Generator().manual_seed(spec.seed)
    result = attack.run(model, x, y, threat, generator=gen)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        # Re-check what the attack claims: inside the threat model and misclassified.
        broken = (model(result.x_adv).argmax(1) != y) & threat.contains(result.x_adv, x)
    robust = correct & ~broken
    return {"attack": f"pgd-{spec.steps}",
            "empirical_robust_accuracy": float(robust.float().mean()),
            "certified_but_broken": int((certified & ~robust).sum())}


def sweep_values(text: str | None) -> Sequence[float]:
    """Parse ``--sweep 0.01,0.02`` into floats."""
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sweep expects comma-separated numbers, got {text!r}") from None
