"""Randomized smoothing on MNIST: certified accuracy by L2 radius, and its throughput
next to a plain forward pass of the same model.

    OMP_NUM_THREADS=1 python bench/certify_smoothing.py --n 500 --sigma 0.25 \
        --samples 10000 --json out.json

Cohen et al.'s CERTIFY (``bastion.certify.smoothing.certify``: n0 = 100 selection
samples, ``--samples`` estimation samples, alpha = 0.001) on the first ``--n`` test
images. Certified accuracy at radius r is the share of images whose smoothed class is
the true label with a certified radius >= r (abstentions count as wrong).

Throughput: smoothing's noisy samples per second (every base-model forward, selection
samples included, binomial bounds included) against the images per second of a plain
``model(x)`` on batches of the same size of real test images. The certify run goes in
chunks of ``--chunk`` images, and a plain-forward timing of ``--plain-seconds`` runs
before every chunk and after the last, so both sides see the same machine load even on
a shared CPU (a first version timed plain forwards only before and after the whole run,
and load changing in between skewed the ratio). The reference is the median of the
plain timings. The ratio (target >= 0.9) is what matters: the cost
smoothing adds on top of the model's own forward passes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion import data, zoo
from bastion.certify.smoothing import certify

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def plain_throughput(model: nn.Module, x: torch.Tensor, batch: int, seconds: float) -> float:
    """Images per second of ``model`` on batches of ``batch`` rows cycled from ``x``."""
    reps = -(-batch // x.shape[0])
    block = x.repeat(reps, *([1] * (x.dim() - 1)))[:batch]
    done, began = 0, time.perf_counter()
    with torch.inference_mode():
        model(block)  # warm-up, not timed
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            model(block).argmax(1)
            done += batch
    return done / (time.perf_counter() - began)


def run(model_name: str, n: int, sigma: float, samples: int, n0: int, alpha: float,
        batch: int, plain_seconds: float, chunk: int = 10) -> dict[str, Any]:
    model = zoo.load(model_name)
    test = data.load("mnist", "test", n)
    gen = torch.Generator().manual_seed(0)  # one stream: chunking does not change results
    plain_rates, labels, radii, passes, seconds = [], [], [], 0, 0.0
    for start in range(0, n, chunk):
        plain_rates.append(plain_throughput(model, test.x, batch, plain_seconds))
        began = time.perf_counter()
        part = certify(model, test.x[start:start + chunk], sigma=sigma, n0=n0, n=samples,
                       alpha=alpha, batch=batch, generator=gen)
        seconds += time.perf_counter() - began
        labels.append(part.label)
        radii.append(part.radius)
        passes += part.forward_passes
    plain_rates.append(plain_throughput(model, test.x, batch, plain_seconds))
    label, radius = torch.cat(labels), torch.cat(radii)
    right = label == test.y
    plain = statistics.median(plain_rates)
    smoothing = passes / seconds
    return {
        "model": model_name, "n": n, "sigma": sigma, "n0": n0, "samples": samples,
        "alpha": alpha, "batch": batch,
        "certified_accuracy": {str(r): float((right & (radius >= r)).float().mean())
                               for r in RADII},
        "abstained": int((label < 0).sum()),
        "mean_radius_of_correct": float(radius[right].mean()) if right.any() else 0.0,
        "certify_seconds": round(seconds, 2),
        "forward_passes": passes,
        "smoothing_samples_per_second": round(smoothing, 1),
        "plain_images_per_second": {"median": round(plain, 1),
                                    "min": round(min(plain_rates), 1),
                                    "max": round(max(plain_rates), 1),
                                    "timings": len(plain_rates)},
        "throughput_ratio": round(smoothing / plain, 3),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-smallcnn-noise-0.25")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--plain-seconds", type=float, default=2.0)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    row = run(args.model, args.n, args.sigma, args.samples, args.n0, args.alpha, args.batch,
              args.plain_seconds, args.chunk)
    text = json.dumps(row, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
