"""Bound-propagation certification, bastion beside auto_LiRPA: time, certified accuracy, memory.

    OMP_NUM_THREADS=1 python bench/certify_bounds.py --n 1000 --alpha-n 20 --repeats 3 \\
        --models mnist-certified-0.1:0.1,mnist-certified-0.3:0.3 --json out.json

For each model (``name:eps``, Linf) and method (IBP, CROWN-IBP, full CROWN, and
alpha-CROWN, 20 Adam steps of 0.1 in both, on the first ``--alpha-n`` images only: it
is the slow one), on the first ``--n`` MNIST test images in batches of ``--batch-size``
(bastion's CROWN methods chunk their specifications under ``--max-memory-mb``),
both tools certify the same images with the same margin specification; the repeats
alternate bastion and auto_LiRPA so both see the same machine load. Reported: the median
seconds of each and their ratio, certified accuracy with its 95% Wilson interval, the
share of margins where bastion's lower bound is at least auto_LiRPA's, the peak resident
memory each call added to the process (sampled every 2 ms), and with ``--pgd-steps`` > 0
the images each tool certifies that PGD breaks (must be 0). A bundled model whose
weights are missing is trained first (``bastion zoo train NAME``).

bastion's time is its whole ``certify`` call (reading the model, checking the chain,
IBP, the method); auto_LiRPA's is ``compute_bounds`` on an already built
``BoundedModule`` (the build, once per model, is reported apart). auto_LiRPA is not on
PyPI: install it from its source with ``pip install --no-deps`` plus ``graphviz appdirs
sortedcontainers`` (docs/benchmarks.md); without it the script times bastion alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bastion import data, zoo
from bastion.attacks import PGD
from bastion.certify import certify, margin_spec
from bastion.certify.budget import DEFAULT_MAX_MEMORY_MB
from bastion.guard.evaluate import wilson_interval
from bastion.threat import ThreatModel

METHODS = ("ibp", "crown-ibp", "crown", "alpha-crown")
PEER_METHOD = {"ibp": "IBP", "crown-ibp": "CROWN-IBP", "crown": "CROWN",
               "alpha-crown": "alpha-CROWN"}
#: auto_LiRPA's alpha-CROWN at bastion's budget: 20 Adam steps, step size 0.1.
PEER_OPTIONS = {"optimize_bound_args": {"iteration": 20, "lr_alpha": 0.1}}


def peak_rss(work: Callable[[], Any]) -> tuple[Any, float]:
    """``work()`` and the most resident memory (MB) the process held above its level at
    the start, sampled every 2 ms by a thread (psutil)."""
    import psutil

    proc = psutil.Process()
    base, peak, done = proc.memory_info().rss, [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], proc.memory_info().rss - base)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        result = work()
    finally:
        done.set()
        watcher.join()
    return result, max(peak[0], proc.memory_info().rss - base) / 2**20


def peer_bounds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                method: str, batch: int) -> tuple[torch.Tensor, float, float]:
    """auto_LiRPA's lower margin bounds (N, K-1), seconds of compute_bounds, of the build."""
    from auto_LiRPA import BoundedModule, BoundedTensor
    from auto_LiRPA.perturbations import PerturbationLpNorm

    began = time.perf_counter()
    bounded = BoundedModule(model, torch.empty_like(x[:1]), device="cpu",
                            bound_opts=PEER_OPTIONS, verbose=False)
    built = time.perf_counter() - began
    lowers, seconds = [], 0.0
    for start in range(0, x.shape[0], batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        spec = margin_spec(yb, 10, xb.dtype)
        ptb = PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=(xb - eps).clamp(0, 1),
                                 x_U=(xb + eps).clamp(0, 1))
        began = time.perf_counter()
        with torch.set_grad_enabled(method == "alpha-crown"):
            # Lower bounds only, as bastion's certify computes by default.
            lower, _ = bounded.compute_bounds(x=(BoundedTensor(xb, ptb),), C=spec,
                                              method=PEER_METHOD[method], bound_upper=False)
        seconds += time.perf_counter() - began
        lowers.append(lower.detach())
    return torch.cat(lowers), seconds, built


def rate(hits: torch.Tensor) -> dict[str, Any]:
    k, n = int(hits.sum()), hits.numel()
    low, high = wilson_interval(k, n) or (0.0, 1.0)
    return {"k": k, "n": n, "rate": k / n, "wilson95": [round(low, 4), round(high, 4)]}


def run(name: str, eps: float, method: str, args: argparse.Namespace,
        robust: torch.Tensor | None, test: data.Dataset) -> dict[str, Any]:
    model = zoo.load(name)
    threat = ThreatModel("Linf", eps)
    if method == "alpha-crown":  # the slow method runs on the first --alpha-n images
        test = test.head(args.alpha_n)
        robust = robust[:args.alpha_n] if robust is not None else None
    ours, theirs, built, memory, peer_memory = [], [], 0.0, 0.0, 0.0
    peer_lower = None
    for _ in range(args.repeats):
        began = time.perf_counter()
        cert, used = peak_rss(lambda: certify(model, test.x, test.y, threat, method=method,
                                              batch_size=args.batch_size,
                                              max_memory_mb=args.max_memory_mb))
        ours.append(time.perf_counter() - began)
        memory = max(memory, used)
        if args.peer:
            (peer_lower, seconds, built), used = peak_rss(lambda: peer_bounds(
                model, test.x, test.y, eps, method, args.batch_size))
            theirs.append(seconds)
            peer_memory = max(peer_memory, used)
    assert cert.lower is not None
    row: dict[str, Any] = {"model": name, "eps": eps, "method": method,
                           "bastion_seconds": [round(s, 3) for s in ours],
                           "bastion_median_s": round(statistics.median(ours), 3),
                           "bastion_certified": rate(cert.certified),
                           "n": test.x.shape[0],
                           "bastion_peak_rss_mb": round(memory, 1),
                           "bastion_mean_lower_margin": round(float(cert.lower.mean()), 4)}
    if robust is not None:
        row["bastion_certified_but_broken"] = int((cert.certified & ~robust).sum())
    if peer_lower is not None:
        peer_cert = (peer_lower > 0).all(1)
        row.update({"auto_lirpa_seconds": [round(s, 3) for s in theirs],
                    "auto_lirpa_median_s": round(statistics.median(theirs), 3),
                    "auto_lirpa_build_s": round(built, 3),
                    "auto_lirpa_peak_rss_mb": round(peer_memory, 1),
                    "auto_lirpa_certified": rate(peer_cert),
                    "auto_lirpa_mean_lower_margin": round(float(peer_lower.mean()), 4),
                    "largest_shortfall": round(float((peer_lower - cert.lower).max()), 4),
                    "time_ratio_bastion_over_auto_lirpa": round(
                        statistics.median(ours) / statistics.median(theirs), 3),
                    "margins_at_least_as_tight": float(
                        (cert.lower >= peer_lower - 1e-5).float().mean())})
        if robust is not None:
            row["auto_lirpa_certified_but_broken"] = int((peer_cert & ~robust).sum())
    return row


def ensure_trained(name: str) -> None:
    """Train a bundled checkpoint whose weights are missing (``bastion zoo train``)."""
    from bastion.zoo.recipes import train
    from bastion.zoo.registry import CHECKPOINTS, resolve

    entry = resolve(name)
    if entry.kind == "bundled" and not (CHECKPOINTS / f"{entry.name}.pt").exists():
        print(f"{name}: weights missing, training them (bastion zoo train {name})", flush=True)
        train(entry.name, CHECKPOINTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--models", default="mnist-certified-0.1:0.1",
                        help="comma-separated name:eps (Linf)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--alpha-n", type=int, default=20,
                        help="images for alpha-CROWN (the first of the --n)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--max-memory-mb", type=float, default=DEFAULT_MAX_MEMORY_MB,
                        help="bastion's budget of one chunk of CROWN specifications")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pgd-steps", type=int, default=0)
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peer:
        try:
            import auto_LiRPA  # noqa: F401
        except ImportError:
            print("auto_LiRPA is not installed: timing bastion alone", flush=True)
            args.peer = False
    test = data.load("mnist", "test", args.n)
    rows = []
    for spec in args.models.split(","):
        name, eps = spec.split(":")
        ensure_trained(name)
        robust = None
        if args.pgd_steps > 0:
            model = zoo.load(name)
            found = PGD(steps=args.pgd_steps).run(model, test.x, test.y,
                                                  ThreatModel("Linf", float(eps)),
                                                  generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                robust = (model(test.x).argmax(1) == test.y) & ~found.success
        for method in args.methods.split(","):
            row = run(name, float(eps), method, args, robust, test)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "batch_size": args.batch_size,
                                         "max_memory_mb": args.max_memory_mb,
                                         "repeats": args.repeats, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
