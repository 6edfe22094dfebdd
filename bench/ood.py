"""Out-of-distribution detectors: bastion.ood side by side with pytorch-ood, then adaptive.

Part ``compare``: for each bundled MNIST model and each detector, bastion's
implementation and pytorch-ood 0.4.0's are fitted on the same first ``--fit`` MNIST
training images and score the same first ``--n`` MNIST test images (ID) and ``--n``
images of each OOD set. Both score arrays go through the same metric code
(bastion.ood.metrics); pytorch-ood's own AUROC is also computed on its scores as a check
of the metric code. Scoring time is the wall time of scoring all ID and OOD images with
each library from images, in batches of 512, single-threaded; the two run alternately,
``--repeats`` times each (the median is kept).

Part ``adaptive``: bastion's detectors attacked with PGD on their own score (20 steps,
Linf eps 0.1 and 0.3): ``--n-adv`` ID images pushed up, ``--n-adv`` Fashion-MNIST images
pushed down. AUROC is between attacked ID and attacked OOD; FPR@95 counts attacked OOD
images accepted at the threshold fixed on the clean ID scores.

pytorch-ood imports torchvision when its package is imported, for its model zoo and data
sets, which the detectors do not use; torchvision is not installed here, so this script
registers an empty stand-in module before the import (:func:`_import_pytorch_ood`).

Usage (the numbers in docs/benchmarks.md and docs/ood.md):
    python bench/ood.py --part compare --out docs/results/ood_compare.json
    python bench/ood.py --part adaptive --out docs/results/ood_adaptive.json
A tiny setting (``--fit 200 --n 50 --n-adv 10 --steps 2``) finishes in seconds.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import platform
import shlex
import statistics
import sys
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion import data, zoo
from bastion.ood import DETECTORS, attack_all, detection, load_set, make, threshold_at_tpr
from bastion.ood.features import PENULTIMATE, last_linear, logits_and_features
from bastion.ood.metrics import wilson_interval
from bastion.threat import ThreatModel

MODELS = ("mnist-smallcnn-std", "mnist-lenet5-pgd")
OOD_SETS = ("fashion-mnist", "uniform", "gaussian")
BATCH = 512


class _Anything:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Anything,), {})


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []


def _import_pytorch_ood() -> Any:
    finder = None
    if importlib.util.find_spec("torchvision") is None:
        finder = _StandInFinder()
        sys.meta_path.insert(0, finder)
    try:
        import pytorch_ood.detector as peer
        import pytorch_ood.metrics.functional as peer_metrics
    finally:
        if finder is not None:  # leave no stand-in behind for later imports
            sys.meta_path.remove(finder)
            for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
                del sys.modules[name]
    return peer, peer_metrics


def _encoder(model: nn.Module) -> Any:
    def encode(x: torch.Tensor) -> torch.Tensor:
        return logits_and_features(model, x, PENULTIMATE)[1]
    return encode


def _peer(name: str, model: nn.Module, peer: Any, z: torch.Tensor, y: torch.Tensor) -> Any:
    enc = _encoder(model)
    if name == "msp":
        return peer.MaxSoftmax(model)
    if name == "maxlogit":
        return peer.MaxLogit(model)
    if name == "energy":
        return peer.EnergyBased(model)
    if name == "odin":
        return peer.ODIN(model, eps=0.0014, temperature=1000.0)
    if name == "mahalanobis":
        return peer.Mahalanobis(enc).fit_features(z, y)
    if name == "rmd":
        return peer.RMD(enc).fit_features(z, y)
    if name == "knn":
        return peer.KNN(enc, k=50).fit_features(z, y)
    head = last_linear(model)[1]
    det = peer.ViM(enc, d=z.shape[1] // 2, w=head.weight.detach(), b=head.bias.detach())
    return det.fit_features(z, y)


def _timed(fn: Any, xs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
    start = time.perf_counter()
    out = {k: torch.cat([fn(x[i:i + BATCH]).detach().float().cpu().reshape(-1)
                         for i in range(0, len(x), BATCH)]) for k, x in xs.items()}
    return out, time.perf_counter() - start


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    peer, peer_metrics = _import_pytorch_ood()
    train = data.load("mnist", "train", args.fit)
    xs = {"mnist": data.load("mnist", "test", args.n).x,
          **{s: load_set(s, args.n, seed=args.seed) for s in OOD_SETS}}
    rows = []
    for mname in args.models:
        model = zoo.load(mname)
        with torch.no_grad():
            z = torch.cat([_encoder(model)(train.x[i:i + BATCH])
                           for i in range(0, len(train), BATCH)])
        for name in args.detectors:
            ours = make(name).fit(model, train)
            theirs = _peer(name, model, peer, z, train.y)
            # alternate the two libraries; the median of --repeats timings each
            ours_t, theirs_t = [], []
            for _ in range(args.repeats):
                with torch.no_grad():
                    s_ours, t = _timed(ours.score, xs)
                ours_t.append(t)
                s_theirs, t = _timed(theirs.predict, xs)
                theirs_t.append(t)
            t_ours, t_theirs = statistics.median(ours_t), statistics.median(theirs_t)
            for ood in OOD_SETS:
                a = detection(s_ours["mnist"], s_ours[ood]).to_dict()
                b = detection(s_theirs["mnist"], s_theirs[ood]).to_dict()
                labels = torch.cat([torch.zeros(args.n), -torch.ones(len(xs[ood]))]).long()
                peer_auroc = float(peer_metrics.auroc(
                    torch.cat([s_theirs["mnist"], s_theirs[ood]]).double(), labels))
                rows.append({"model": mname, "detector": name, "ood": ood, "bastion": a,
                             "pytorch_ood": b, "pytorch_ood_own_auroc": peer_auroc,
                             "auroc_diff_points": round(100 * (a["auroc"] - b["auroc"]), 3),
                             "fpr95_diff_points": round(100 * (a["fpr95"] - b["fpr95"]), 3),
                             "seconds_bastion": t_ours, "seconds_pytorch_ood": t_theirs,
                             "time_ratio_bastion_over_peer": t_ours / t_theirs})
                print(f"{mname} {name:12s} {ood:14s} AUROC {100*a['auroc']:.2f} vs "
                      f"{100*b['auroc']:.2f}  FPR95 {100*a['fpr95']:.2f} vs {100*b['fpr95']:.2f}"
                      f"  time {t_ours:.2f}s vs {t_theirs:.2f}s", flush=True)
    return rows


def adaptive(args: argparse.Namespace) -> list[dict[str, Any]]:
    train = data.load("mnist", "train", args.fit)
    x_id = data.load("mnist", "test", args.n_adv).x
    x_ood = load_set("fashion-mnist", args.n_adv, seed=args.seed)
    rows = []
    for mname in args.models:
        model = zoo.load(mname)
        for name in args.detectors:
            det = make(name).fit(model, train)
            s_id, s_ood = det.score(x_id), det.score(x_ood)
            clean = detection(s_id, s_ood).to_dict()
            threshold = threshold_at_tpr(s_id)
            for eps in args.eps:
                threat = ThreatModel("Linf", eps)
                t0 = time.perf_counter()
                up = attack_all(det, x_id, threat, direction="up", steps=args.steps,
                                seed=args.seed)
                down = attack_all(det, x_ood, threat, direction="down", steps=args.steps,
                                  seed=args.seed + 1000)
                adv = detection(up.scores, down.scores).to_dict()
                accepted = int((down.scores <= threshold).sum())
                rejected = int((up.scores > threshold).sum())
                row = {"model": mname, "detector": name, "eps": eps, "clean": clean,
                       "auroc_adv": adv["auroc"], "auroc_adv_ci": adv["auroc_ci"],
                       "fpr95_adv": accepted / len(x_ood),
                       "fpr95_adv_ci": list(wilson_interval(accepted, len(x_ood))),
                       "id_rejected_adv": rejected / len(x_id),
                       "id_rejected_adv_ci": list(wilson_interval(rejected, len(x_id))),
                       "masking_suspected": up.masking_suspected or down.masking_suspected,
                       "random_wins": up.random_wins + down.random_wins,
                       "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"{mname} {name:12s} eps {eps}: AUROC {100*clean['auroc']:.2f} -> "
                      f"{100*adv['auroc']:.2f}  FPR95 {100*clean['fpr95']:.2f} -> "
                      f"{100*row['fpr95_adv']:.2f}  masking {row['masking_suspected']}",
                      flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("compare", "adaptive"), required=True)
    p.add_argument("--fit", type=int, default=10000, help="MNIST training images to fit on")
    p.add_argument("--n", type=int, default=2000, help="ID and OOD images per set (compare)")
    p.add_argument("--n-adv", type=int, default=250, help="ID and OOD images attacked")
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--repeats", type=int, default=1, help="timings per library (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = compare(args) if args.part == "compare" else adaptive(args)
    result = {"command": "python bench/ood.py " + " ".join(shlex.quote(a) for a in argv),
              "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": platform.processor()
              or platform.machine(), "threads": args.threads, "torch": torch.__version__,
              "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
