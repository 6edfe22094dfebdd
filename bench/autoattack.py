"""AutoAttack strength and speed: bastion's cascade against the reference, torchattacks, ART.

Each tool attacks the same model on the same first MNIST test images under Linf eps=0.3
at the paper's budgets, in one run:

- bastion: ``autoattack`` (standard: APGD-CE 100 iterations, APGD-T 9 targets × 100,
  FAB-T 9 targets × 100, Square 5,000 queries) through :func:`bastion.evaluate`, on the
  first ``--n`` images and again on the first ``--peer-n`` (the images the peers get);
- torchattacks: ``AutoAttack(version="standard")`` with every sub-attack's ``steps`` set to
  100 (torchattacks' default is 10, which overstates robustness);
- reference: fra31/auto-attack's ``AutoAttack(version="standard")`` (Croce & Hein's own
  code, installed from its source or found in ``--reference DIR``), same images, eps,
  seed and batch size;
- ART: ``AutoAttack`` with APGD-CE (100 iterations, 1 start), targeted APGD-DLR (100
  iterations, run by ART once per target class) and Square (5,000 queries, 1 restart);
  ART has no FAB, and its defaults (5 random starts, DeepFool, 5 Square restarts) differ
  from the paper's, so it is configured to the closest match.

Seconds are wall-clock; ``cpu_seconds`` is the process's CPU time, which a shared,
overloaded machine distorts far less (one torch thread per tool).

Robust accuracy counts a sample robust when the model is right on the clean image and on
the tool's adversarial image (every adversarial image is checked to lie in the ball).
Passes are counted the same way for every tool, by a wrapper around the model: each
sample sent forward counts 1, each sample whose input gradient is taken counts 1. The
one exception: bastion's Square queries and FAB checks go to a frozen TorchScript copy of
the model, which the wrapper never sees, so those forwards are counted by that copy.

``--models`` takes zoo names or user model files (``FILE.py[:factory]``, with weights from
``--checkpoint``), as ``bastion evaluate --model`` does; bench/wong_mnist.py is Wong et
al.'s FGSM-trained MNIST net.

Usage (the numbers in docs/benchmarks.md):
    .venv/bin/python bench/autoattack.py --n 1000 --peer-n 200 --threads 2 --out aa.json
    .venv/bin/python bench/autoattack.py --n 200 --peer-n 200 --threads 1 --tools bastion \
        reference --models bench/wong_mnist.py --checkpoint fgsm.pth --out aa.json

A tiny setting (``--n 8 --peer-n 4 --n-iter 2 --n-queries 5``) finishes in seconds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion import data, evaluate, zoo
from bastion.attacks import AutoAttack, _inference
from bastion.threat import ThreatModel
from bastion.zoo.user import is_path_spec, load_any
from pgd_speed import machine_info

EPS = 0.3
SEED = 0
MODELS = ("advertorch-lenet5-adv", "mnist-lenet5-pgd")
TOOLS = ("bastion", "reference", "torchattacks", "art")
DEFAULT_TOOLS = ("bastion", "torchattacks", "art")


class Counted(nn.Module):
    """Counts per-sample forward passes, and backward passes that reach the input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_passes = 0
        self.backward_passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_passes += int(x.shape[0])  # int(): under tracing the size is a tensor
        if x.requires_grad:
            n = x.shape[0]

            def count(grad: torch.Tensor) -> None:
                self.backward_passes += n

            x.register_hook(count)
        out: torch.Tensor = self.model(x)
        return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="first n MNIST test images")
    parser.add_argument("--peer-n", type=int, default=200, help="images for the peers")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help="zoo names or FILE.py[:factory] user model files")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="state_dict for the FILE.py models")
    parser.add_argument("--tools", nargs="+", default=list(DEFAULT_TOOLS), choices=TOOLS)
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder holding fra31/auto-attack's autoattack/ package "
                             "(default: the installed one)")
    parser.add_argument("--n-iter", type=int, default=100, help="APGD/FAB iterations")
    parser.add_argument("--n-queries", type=int, default=5000, help="Square queries")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.peer_n > args.n:
        parser.error("--peer-n must be <= --n")
    return args


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    x_adv: torch.Tensor) -> float:
    threat = ThreatModel("Linf", EPS)
    if not bool(threat.contains(x_adv, x).all()):
        raise RuntimeError("a tool returned points outside the Linf ball")
    with torch.no_grad():
        ok = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)
    return float(ok.float().mean())


def run_bastion(model: Counted, x: torch.Tensor, y: torch.Tensor,
                args: argparse.Namespace) -> dict[str, Any]:
    attack = AutoAttack(steps=args.n_iter, n_queries=args.n_queries)
    began, cpu_began = time.perf_counter(), time.process_time()
    result = evaluate(model, (x, y), ThreatModel("Linf", EPS), {"autoattack": attack},
                      batch_size=args.batch_size, seed=SEED)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    # Square's queries and FAB's checks go to a frozen TorchScript copy of the model
    # (bastion.attacks._inference), which runs without calling Counted.forward: add the
    # passes that copy counted.
    unseen = _inference.frozen_forward_passes(model)
    return {"robust_accuracy": result.robust_accuracy, "clean_accuracy": result.clean_accuracy,
            "seconds": seconds, "cpu_seconds": cpu, "unseen_forward_passes": unseen}


def run_torchattacks(model: Counted, x: torch.Tensor, y: torch.Tensor,
                     args: argparse.Namespace) -> dict[str, Any]:
    import torchattacks

    attack = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard",
                                     n_classes=10, seed=SEED)
    for sub in attack._autoattack.attacks:  # the paper's budget, not torchattacks' 10
        if hasattr(sub, "steps"):
            sub.steps = args.n_iter
        if hasattr(sub, "n_queries"):
            sub.n_queries = args.n_queries
    began, cpu_began = time.perf_counter(), time.process_time()
    x_adv = torch.cat([attack(x[i:i + args.batch_size], y[i:i + args.batch_size])
                       for i in range(0, len(x), args.batch_size)])
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return {"robust_accuracy": robust_accuracy(model.model, x, y, x_adv), "seconds": seconds,
            "cpu_seconds": cpu}


def run_art(model: Counted, x: torch.Tensor, y: torch.Tensor,
            args: argparse.Namespace) -> dict[str, Any]:
    from art.attacks.evasion import AutoAttack as ArtAutoAttack
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                            input_shape=tuple(x.shape[1:]), nb_classes=10, clip_values=(0.0, 1.0))
    common = {"norm": np.inf, "eps": EPS, "eps_step": 2 * EPS, "max_iter": args.n_iter,
              "nb_random_init": 1, "batch_size": args.batch_size, "verbose": False}
    attacks = [
        AutoProjectedGradientDescent(clf, loss_type="cross_entropy", targeted=False, **common),
        AutoProjectedGradientDescent(clf, loss_type="difference_logits_ratio", targeted=True,
                                     **common),
        SquareAttack(clf, norm=np.inf, eps=EPS, max_iter=args.n_queries, p_init=0.8,
                     nb_restarts=1, batch_size=args.batch_size, verbose=False),
    ]
    attack = ArtAutoAttack(clf, norm=np.inf, eps=EPS, attacks=attacks,
                           batch_size=args.batch_size, targeted=True)
    began, cpu_began = time.perf_counter(), time.process_time()
    x_adv = attack.generate(x.numpy(), y.numpy())
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return {"robust_accuracy": robust_accuracy(model.model, x, y, torch.from_numpy(x_adv)),
            "seconds": seconds, "cpu_seconds": cpu}


def reference_autoattack(folder: Path | None) -> Any:
    """fra31/auto-attack's ``AutoAttack`` class, from ``folder`` or the installed package.

    This file is also called autoattack.py: its folder is taken off the import path while
    the reference is imported, so ``import autoattack`` finds the reference.
    """
    here = Path(__file__).resolve().parent
    loaded = sys.modules.get("autoattack")
    if loaded is not None and not hasattr(loaded, "__path__"):
        raise RuntimeError("another module named autoattack is loaded; run this benchmark "
                           "as a script (python bench/autoattack.py)")
    saved = sys.path[:]
    sys.path[:] = [str(folder)] if folder is not None else []
    sys.path += [p for p in saved if Path(p or ".").resolve() != here]
    try:
        module = importlib.import_module("autoattack")
    except ModuleNotFoundError as exc:
        raise RuntimeError("the reference AutoAttack is not installed: pip install --no-deps "
                           "git+https://github.com/fra31/auto-attack, or pass --reference "
                           "DIR") from exc
    finally:
        sys.path[:] = saved
    return module.AutoAttack


def run_reference(model: Counted, x: torch.Tensor, y: torch.Tensor,
                  args: argparse.Namespace) -> dict[str, Any]:
    reference = reference_autoattack(args.reference)
    attack = reference(model, norm="Linf", eps=EPS, version="standard", seed=SEED,
                       verbose=False, device=x.device)
    attack.apgd.n_iter = attack.apgd_targeted.n_iter = attack.fab.n_iter = args.n_iter
    attack.square.n_queries = args.n_queries
    began, cpu_began = time.perf_counter(), time.process_time()
    x_adv = attack.run_standard_evaluation(x, y, bs=args.batch_size)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return {"robust_accuracy": robust_accuracy(model.model, x, y, x_adv), "seconds": seconds,
            "cpu_seconds": cpu}


RUNNERS = {"torchattacks": run_torchattacks, "art": run_art, "reference": run_reference}


def load_model(spec: str, checkpoint: Path | None) -> nn.Module:
    """A zoo model, or a user model file with its ``--checkpoint``, in eval mode."""
    if is_path_spec(spec):
        return load_any(spec, checkpoint).eval()
    return zoo.load(spec).eval()


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    base = load_model(name, args.checkpoint)
    ds = data.load("mnist", "test", args.n)
    rows: list[dict[str, Any]] = []
    plan: list[tuple[str, int]] = []
    if "bastion" in args.tools:
        plan += [("bastion", args.n)] + ([("bastion", args.peer_n)] if args.peer_n < args.n else [])
    plan += [(tool, args.peer_n) for tool in args.tools if tool != "bastion"]
    for tool, n in plan:
        model = Counted(base).eval()
        torch.manual_seed(SEED)
        x, y = ds.x[:n], ds.y[:n]
        print(f"[{name}] {tool} on {n} images ...", file=sys.stderr, flush=True)
        runner = run_bastion if tool == "bastion" else RUNNERS[tool]
        row = {"tool": tool, "n": n, **runner(model, x, y, args)}
        row["forward_passes"] = model.forward_passes + row.pop("unseen_forward_passes", 0)
        row["backward_passes"] = model.backward_passes
        row["seconds_per_image"] = row["seconds"] / n
        print(f"[{name}] {tool}: {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    return {"model": name, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = {
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"eps": EPS, "norm": "Linf", "seed": SEED, "n": args.n,
                     "peer_n": args.peer_n, "batch_size": args.batch_size,
                     "n_iter": args.n_iter, "n_queries": args.n_queries},
        "models": [bench_model(m, args) for m in args.models],
    }
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
