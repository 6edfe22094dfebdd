"""PGD-k speed: bastion against torchattacks and ART, and against the physical limit.

Every tool attacks the same model, the same first ``--n`` MNIST test images, in batches
of ``--batch-size``, under Linf eps=0.3, with ``--steps`` steps of size 0.01 from a random
start. The *limit* is what any PGD-k must spend at least: ``steps`` times one
forward+backward (input-gradient) sweep over the same batches, at random start points of
the ball around the same images, measured in the same run. Repeats go round-robin over
the tools (and the limit), so a slow phase of the machine hits all of them alike.

bastion runs twice: ``early_stop=False`` does exactly the peers' work (k gradient steps
on every sample: the number to hold against the limit), ``early_stop=True`` (its
default) drops samples once they are fooled.

Usage:
    .venv/bin/python bench/pgd_speed.py --n 1000 --batch-size 250 --steps 40 \
        --repeats 5 --out pgd_speed.json

A tiny setting (``--n 16 --steps 2 --repeats 1``) finishes in seconds.

On Linux CPUs, glibc's malloc hands the large activation buffers back to the OS and
faults them in again on every pass, which costs all tools alike but adds noise that
depends on the allocation history. To measure compute rather than page faults, run with
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000`` in the
environment; the JSON records which allocator settings were in force.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bastion import data, zoo
from bastion.attacks import PGD
from bastion.threat import ThreatModel

EPS = 0.3
STEP_SIZE = 0.01
SEED = 0
MODELS = ("advertorch-lenet5-adv", "advertorch-lenet5-std")
LIMIT = "limit"
TORCHATTACKS = "torchattacks"
TOOLS = ("bastion (early_stop=False)", "bastion (early_stop=True)", TORCHATTACKS, "art")

#: A prepared run of one tool: returns (x_adv, gradient passes per sample).
Runner = Callable[[], tuple[torch.Tensor | None, float]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="first n MNIST test images")
    parser.add_argument("--batch-size", type=int, default=250, help="batch size for every tool")
    parser.add_argument("--steps", type=int, default=40, help="PGD steps k")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per tool")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per tool first")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="zoo names")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    for name in ("n", "batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import art
    import torchattacks

    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torchattacks": torchattacks.__version__,
        "art": art.__version__,
        # glibc's malloc settings change CPU timings a lot here (see docs/benchmarks.md)
        "allocator_env": {k: v for k, v in os.environ.items()
                          if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
    }


def batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def gradient_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int) -> None:
    """One forward+backward input-gradient pass over every batch: the unit of PGD's work."""
    for part in batches(len(x), size):
        xb = x[part].detach().requires_grad_(True)
        loss = F.cross_entropy(model(xb), y[part], reduction="sum")
        torch.autograd.grad(loss, xb)


def bastion_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int,
                   steps: int, early_stop: bool) -> Runner:
    attack = PGD(steps=steps, step_size=STEP_SIZE, random_start=True, early_stop=early_stop)
    threat = ThreatModel("Linf", EPS)

    def run() -> tuple[torch.Tensor, float]:
        x_adv = torch.empty_like(x)
        backward = 0
        for i, part in enumerate(batches(len(x), size)):
            gen = torch.Generator().manual_seed(SEED + i)
            result = attack.run(model, x[part], y[part], threat, generator=gen)
            x_adv[part] = result.x_adv
            backward += result.passes.backward
        return x_adv, backward / len(x)

    return run


def torchattacks_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int,
                        steps: int) -> Runner:
    import torchattacks

    attack = torchattacks.PGD(model, eps=EPS, alpha=STEP_SIZE, steps=steps, random_start=True)

    def run() -> tuple[torch.Tensor, float]:
        torch.manual_seed(SEED)  # torchattacks draws its start from the global generator
        x_adv = torch.cat([attack(x[part], y[part]) for part in batches(len(x), size)])
        return x_adv, float(steps)

    return run


def art_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int,
               steps: int) -> Runner:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
    )
    attack = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=EPS, eps_step=STEP_SIZE, max_iter=steps,
        num_random_init=1, batch_size=size, targeted=False, verbose=False,
    )
    x_np, y_np = x.numpy(), y.numpy()

    def run() -> tuple[torch.Tensor, float]:
        # ART is NumPy in, NumPy out and batches internally: give it what its users give.
        np.random.seed(SEED)  # ART draws its start from NumPy's global generator
        return torch.from_numpy(attack.generate(x=x_np, y=y_np)), float(steps)

    return run


def limit_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int) -> Runner:
    # Measured at a random start point of the ball, not at the clean images: the cost of a
    # pass depends on the data (max-pooling branches less predictably on noisy inputs,
    # about 15% slower per pass on the standard LeNet5 here), and PGD only ever evaluates
    # perturbed points, which cost what a random start costs.
    gen = torch.Generator().manual_seed(SEED)
    start = ThreatModel("Linf", EPS).random_point(x, gen)

    def run() -> tuple[None, float]:
        gradient_sweep(model, start, y, size)
        return None, 1.0

    return run


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int) -> float:
    right = sum(int((model(x[p]).argmax(1) == y[p]).sum()) for p in batches(len(x), size))
    return right / len(x)


def time_round_robin(runners: dict[str, Runner], repeats: int, warmup: int
                     ) -> tuple[dict[str, list[float]], dict[str, tuple[Any, float]]]:
    """Seconds per run for every runner, plus each runner's output from its first run."""
    outputs = {}
    for name, run in runners.items():
        for i in range(max(warmup, 1)):  # the first run is never timed: it yields the output
            out = run()
            if i == 0:
                outputs[name] = out
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)  # rotate the order so no tool always runs first or last
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return times, outputs


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    model = zoo.load(name).eval()
    ds = data.load("mnist", "test", n=args.n)
    x, y = ds.x.float().contiguous(), ds.y.long()
    size, steps = args.batch_size, args.steps
    runners: dict[str, Runner] = {
        LIMIT: limit_runner(model, x, y, size),
        TOOLS[0]: bastion_runner(model, x, y, size, steps, early_stop=False),
        TOOLS[1]: bastion_runner(model, x, y, size, steps, early_stop=True),
        TOOLS[2]: torchattacks_runner(model, x, y, size, steps),
        TOOLS[3]: art_runner(model, x, y, size, steps),
    }
    times, outputs = time_round_robin(runners, args.repeats, args.warmup)
    sweep = times.pop(LIMIT)
    limit_s = steps * statistics.median(sweep)
    reference = statistics.median(times[TORCHATTACKS])
    tools = {}
    for tool in TOOLS:
        x_adv, passes = outputs[tool]
        median = statistics.median(times[tool])
        tools[tool] = {
            "median_s": median,
            "min_s": min(times[tool]),
            "max_s": max(times[tool]),
            "times_s": times[tool],
            "ratio_to_limit": median / limit_s,
            "ratio_to_torchattacks": median / reference,
            "robust_accuracy": accuracy(model, x_adv, y, size),
            "grad_passes_per_sample": passes,
            # a sanity check that nobody is fast by leaving the threat model
            "max_linf": float((x_adv - x).abs().amax()),
        }
    return {
        "clean_accuracy": accuracy(model, x, y, size),
        "limit": {
            "median_s": limit_s,
            "min_s": steps * min(sweep),
            "max_s": steps * max(sweep),
            "sweep_times_s": sweep,
        },
        "tools": tools,
    }


def table(name: str, result: dict[str, Any]) -> str:
    lim = result["limit"]
    lines = [
        f"**{name}** (clean accuracy {result['clean_accuracy']:.3f})",
        "",
        "| tool | median s | min–max s | × limit | × torchattacks | robust acc. "
        "| grad passes / sample |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| limit: k × (forward+backward) | {lim['median_s']:.3f} "
        f"| {lim['min_s']:.3f}–{lim['max_s']:.3f} | 1.00 | | | |",
    ]
    for tool, r in result["tools"].items():
        lines.append(
            f"| {tool} | {r['median_s']:.3f} | {r['min_s']:.3f}–{r['max_s']:.3f} "
            f"| {r['ratio_to_limit']:.2f} | {r['ratio_to_torchattacks']:.2f} "
            f"| {r['robust_accuracy']:.3f} | {r['grad_passes_per_sample']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print one markdown table per model, return (and maybe write) JSON."""
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(args.threads or torch.get_num_threads())
    report: dict[str, Any] = {
        "benchmark": "pgd_speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/pgd_speed.py", *given]),
        "machine": machine_info(),
        "settings": {
            "data": "mnist test, first n", "n": args.n, "batch_size": args.batch_size,
            "threat": {"norm": "Linf", "eps": EPS}, "steps": args.steps,
            "step_size": STEP_SIZE, "random_start": True, "restarts": 1,
            "repeats": args.repeats, "warmup": args.warmup, "seed": SEED,
        },
        "models": {},
    }
    for name in args.models:
        report["models"][name] = bench_model(name, args)
        print(table(name, report["models"][name]), end="\n\n", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
