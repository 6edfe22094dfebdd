"""Neural Cleanse verdicts on a development set of small MNIST models, then on the bundled
ones, and STRIP's false-positive rate with its calibration rule.

- ``dev``: models that are not the bundled ones (:data:`DEV`): a clean standard LeNet5
  with another seed and a BadNets LeNet5 with another target, patch size and place,
  both trained here (resumably, under ``--work``), and advertorch's PGD-trained LeNet5,
  a clean robust model trained elsewhere. Each is scanned with
  Neural Cleanse; every class's mask L1, its reversed trigger's success on held-out
  images and the verdict of each anomaly rule (``--rules``) are written. Settings of
  Neural Cleanse are chosen on these models only.
- ``bundled``: the same scan, once, on ``mnist-badnets``, ``mnist-smallcnn-std`` and
  ``mnist-lenet5-pgd`` (the evaluation), with the settings chosen on ``dev``.
- ``heldout``: the rule as chosen on ``dev``, frozen, on models no one had scanned
  (:data:`HELDOUT`, fixed before any of them was scanned): each is trained here with
  ``bastion.train``, its clean accuracy on all 10,000 test images and its attack success
  recorded, then scanned once; then fresh rescans of the bundled models, compared with
  their published ``scan_NAME.json`` norms (``--published``).
- ``strip``: STRIP on a model, fitted on MNIST val images only (``--calibrate``), its
  clean false-positive rate and triggered detection rate on the first ``--n`` test images.

Usage:
    OMP_NUM_THREADS=1 python bench/poison_cleanse.py dev --out docs/results/poison/cleanse_dev.json
    OMP_NUM_THREADS=1 python bench/poison_cleanse.py bundled \
        --out docs/results/poison/cleanse_bundled.json
    OMP_NUM_THREADS=1 python bench/poison_cleanse.py heldout \
        --out docs/results/poison/cleanse_heldout.json
    OMP_NUM_THREADS=1 python bench/poison_cleanse.py strip --n 2000 \
        --out docs/results/poison/strip.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion import data
from bastion.poison import parse_poison
from bastion.poison.cleanse import NeuralCleanse, anomaly
from bastion.poison.metrics import rate
from bastion.poison.strip import Strip
from bastion.zoo.registry import build, load

#: (name, arch, method, poison, seed, epochs): small models, none of them bundled;
#: method "zoo" loads the peer checkpoint of that name (advertorch's, never bastion's own).
DEV: tuple[tuple[str, str, str, str | None, int, int], ...] = (
    ("lenet5-std-s1", "lenet5", "standard", None, 1, 2),
    ("advertorch-lenet5-adv", "lenet5", "zoo", None, 0, 0),
    ("lenet5-badnets-t3", "lenet5", "standard", "badnets:rate=0.1,target=3,size=4,margin=4",
     1, 2),
)
#: (name, arch, method, poison, seed, epochs, train_n): held-out models, fixed before any
#: scan; none shares a (arch, poison, target, seed) with a dev or bundled model.
HELDOUT: tuple[tuple[str, str, str, str | None, int, int, int], ...] = (
    ("wong-std-s2", "wong-small", "standard", None, 2, 2, 20000),
    ("lenet5-std-s3-50k", "lenet5", "standard", None, 3, 2, 50000),
    ("cnn4-std-s8", "cnn4", "standard", None, 8, 2, 20000),
    ("wong-fgsm-s4", "wong-small", "fgsm", None, 4, 2, 20000),
    ("lenet5-pgd-s9", "lenet5", "pgd", None, 9, 2, 10000),
    ("wong-badnets3-t7", "wong-small", "standard", "badnets:rate=0.05,target=7,size=3", 5, 2,
     20000),
    ("cnn4-badnets4-mid-t5", "cnn4", "standard",
     "badnets:rate=0.1,target=5,size=4,margin=10", 6, 2, 20000),
    ("lenet5-blended-t2", "lenet5", "standard", "blended:rate=0.1,target=2,alpha=0.2", 7, 2,
     20000),
    ("smallcnn-badnets3-1pct-t1", "smallcnn", "standard", "badnets:rate=0.01,target=1,size=3",
     10, 2, 20000),
)
BUNDLED = ("mnist-badnets", "mnist-smallcnn-std", "mnist-lenet5-pgd")
#: anomaly rules compared on the dev models: name -> keywords of ``anomaly``.
RULES: dict[str, dict[str, Any]] = {
    "linear": {"scale": "linear"}, "log": {"scale": "log"},
    "linear, L1 <= median/4": {"scale": "linear", "max_ratio": 0.25}}


def meta() -> dict[str, Any]:
    return {"command": " ".join(shlex.quote(a) for a in sys.argv),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
            "torch": torch.__version__, "date": datetime.now(UTC).strftime("%Y-%m-%d")}


def train_dev(name: str, arch: str, method: str, poison: str | None, seed: int, epochs: int,
              args: argparse.Namespace, train_n: int | None = None) -> nn.Module:
    """A small model trained on the first ``train_n`` (default ``--train-n``) MNIST training
    images (half of them for PGD), saved under ``--work/name`` (a rerun loads it)."""
    from bastion.train import TrainConfig, train

    if method == "zoo":
        return load(name)
    folder = args.work / name
    train_n = train_n or args.train_n
    if not (folder / "best.pt").exists():
        cfg = TrainConfig(method=method, model=arch, epochs=epochs, seed=seed, eps=0.3,
                          steps=5, eps_ramp_epochs=0.0 if method == "standard" else 1.0,
                          lr_schedule="piecewise", lr_milestones=(0.75,), val_n=500,
                          val_steps=5, eval_n=200, eval_steps=5,
                          # PGD costs 6 passes a batch: half the images keep it to minutes
                          train_n=train_n // 2 if method == "pgd" and args.job == "dev"
                          else train_n,
                          poison=poison, progress=False)
        train(cfg, folder, command=f"bench/poison_cleanse.py {args.job} ({name})",
              log=lambda _: None)
    info = json.loads((folder / "best.json").read_text())
    model = build(info["arch"], **info["arch_kwargs"])
    model.load_state_dict(torch.load(folder / "best.pt", map_location="cpu",
                                     weights_only=True))
    return model.eval()


def holdout_success(model: nn.Module, trigger: dict[str, Any], x: torch.Tensor) -> float:
    """Share of held-out images ``x`` (N, C, H, W) the reversed trigger sends to its class."""
    mask = torch.tensor(trigger["mask"])
    pattern = torch.tensor(trigger["pattern"]) if "pattern" in trigger else None
    if pattern is None:
        return float("nan")
    with torch.inference_mode():
        pred = model((1 - mask) * x + mask * pattern).argmax(1)
    return float((pred == trigger["target"]).float().mean())


def rules(l1: torch.Tensor, threshold: float) -> dict[str, Any]:
    """Each rule of :data:`RULES` on the mask norms ``l1`` (K,): index and flagged classes."""
    return {name: {k: v for k, v in anomaly(l1, threshold, **kw).items()
                   if k in ("anomaly_index", "flagged")} for name, kw in RULES.items()}


def frozen(found: dict[str, Any]) -> dict[str, Any]:
    """The default rule's verdict on a scan (index > 2 and L1 <= median/4): each class's
    anomaly index, the smallest mask's class and its L1 as a share of the median."""
    l1 = torch.tensor(found["l1"])
    low = int(l1.argmin())
    return {"anomaly_index": [round(v, 2) for v in found["anomaly_index"]],
            "smallest": low, "ratio": round(float(l1[low] / l1.median()), 3),
            "flagged": found["flagged"], "backdoored": found["backdoored"],
            "threshold": found["threshold"], "max_ratio": found["max_ratio"]}


def scan_one(model: nn.Module, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Neural Cleanse on the first ``--n`` val images; every rule's verdict."""
    return scan_found(model, name, args)[0]


def scan_found(model: nn.Module, name: str, args: argparse.Namespace
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`scan_one`'s row and the scan itself (its triggers kept)."""
    val = data.load("mnist", "val")
    began = time.perf_counter()
    nc = NeuralCleanse(steps=args.steps)
    state = args.work / f"cleanse_{name}_{args.steps}.json"
    resumed = state.exists()  # then "seconds" is not the whole scan's time
    found = nc.scan(model, val.x[:args.n], num_classes=10, state=state)
    held = val.x[-1000:]
    l1 = torch.tensor(found["l1"])
    row = {"l1": [round(v, 2) for v in found["l1"]], "verdict": frozen(found),
           "holdout_success": [round(holdout_success(model, t, held), 3)
                               for t in found["triggers"]],
           "rules": rules(l1, nc.threshold),
           "seconds": round(time.perf_counter() - began, 1), "resumed": resumed}
    return row, found


def dev(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for name, arch, method, poison, seed, epochs in DEV:
        if args.only and name not in args.only:
            continue
        model = train_dev(name, arch, method, poison, seed, epochs, args)
        out[name] = {"arch": arch, "method": method, "poison": poison, "seed": seed,
                     "epochs": epochs, "truth": parse_poison(poison).target if poison else None,
                     **scan_one(model, name, args)}
        print(name, json.dumps({k: out[name][k] for k in ("l1", "rules")}), flush=True)
    return out


def bundled(args: argparse.Namespace) -> dict[str, Any]:
    """Scan the bundled models; with ``--from-scans DIR``, read each one's mask norms from
    ``DIR/scan_NAME.json`` (a ``bastion poison scan`` with the same reversal settings)
    instead of reversing the triggers again."""
    out = {}
    for name in BUNDLED:
        if args.only and name not in args.only:
            continue
        if args.from_scans:
            found = json.loads((args.from_scans / f"scan_{name}.json").read_text())
            nc = found["neural_cleanse"]
            if nc["params"]["steps"] != args.steps:
                raise SystemExit(f"{name}: the stored scan ran {nc['params']['steps']} steps")
            out[name] = {"l1": [round(v, 2) for v in nc["l1"]], "from": found["command"],
                         "rules": rules(torch.tensor(nc["l1"]), nc["threshold"])}
        else:
            out[name] = scan_one(load(name), name, args)
        print(name, json.dumps(out[name]["rules"]), flush=True)
    return out


def trained(folder: Path, model: nn.Module) -> dict[str, Any]:
    """Clean accuracy on all 10,000 MNIST test images, the planted trigger's attack success
    (from ``best.json``) and the robust accuracy the training run measured."""
    info = json.loads((folder / "best.json").read_text())
    test = data.load("mnist", "test")
    with torch.inference_mode():
        right = sum(int((model(test.x[i:i + 1000]).argmax(1) == test.y[i:i + 1000]).sum())
                    for i in range(0, len(test.y), 1000))
    robust = round(info["robust_test_accuracy"] * info["test_n"])
    hit = info.get("training_integrity", {}).get("attack_success")
    return {"clean_accuracy": rate(right, len(test.y)),
            "robust_accuracy": None if info["training"]["method"] == "standard" else
            {"attack": f"{info['test_attack']} Linf 0.3", **rate(robust, info["test_n"])},
            "attack_success": rate(hit["success"], hit["n"]) if hit else None}


def heldout(args: argparse.Namespace) -> dict[str, Any]:
    """Train and scan each :data:`HELDOUT` model once, then rescan the bundled ones."""
    rule = NeuralCleanse()
    if (rule.threshold, rule.max_ratio, rule.scale) != (2.0, 0.25, "linear"):
        raise SystemExit("the held-out check is of the frozen rule: index > 2 and L1 <= "
                         f"median/4 on linear norms, but the defaults are now {rule}")
    out: dict[str, Any] = {"plan": [dict(zip(("name", "arch", "method", "poison", "seed",
                                              "epochs", "train_n"), spec, strict=True))
                                    for spec in HELDOUT], "models": {}, "bundled": {}}
    for name, arch, method, poison, seed, epochs, train_n in HELDOUT:
        if args.only and name not in args.only:
            continue
        model = train_dev(name, arch, method, poison, seed, epochs, args, train_n)
        row = {"truth": parse_poison(poison).target if poison else None,
               **trained(args.work / name, model), **scan_one(model, name, args),
               "load_average": round(os.getloadavg()[0], 1)}
        out["models"][name] = row
        print(name, json.dumps({k: row[k] for k in ("truth", "verdict")}), flush=True)
    for name in BUNDLED:
        if args.only and name not in args.only:
            continue
        row = {**scan_one(load(name), name, args), "load_average": round(os.getloadavg()[0], 1)}
        published = json.loads((args.published / f"scan_{name}.json").read_text())
        row["published_l1"] = [round(v, 2) for v in published["neural_cleanse"]["l1"]]
        row["max_abs_diff"] = round(max(abs(a - b) for a, b in zip(
            row["l1"], published["neural_cleanse"]["l1"], strict=True)), 4)
        out["bundled"][name] = row
        print(name, json.dumps({k: row[k] for k in ("verdict", "max_abs_diff")}), flush=True)
    return out


def strip(args: argparse.Namespace) -> dict[str, Any]:
    model = load(args.model)
    val, test = data.load("mnist", "val"), data.load("mnist", "test", args.n)
    attack = parse_poison(args.trigger)
    fitted = Strip().fit(model, val.x[:args.calibrate])
    keep = test.y != attack.target
    return {"model": args.model, "trigger": args.trigger, "calibrate": args.calibrate,
            "threshold_nats": fitted.threshold, "overlays": fitted.overlays,
            "fpr_target": fitted.fpr,
            "fpr_clean": rate(int(fitted.flag(model, test.x).sum()), len(test.y)),
            "tpr_triggered": rate(int(fitted.flag(model, attack.apply_trigger(
                test.x[keep])).sum()), int(keep.sum()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=("dev", "bundled", "heldout", "strip"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None, help="trained models and scan "
                        "states (default runs/poison/cleanse-JOB)")
    parser.add_argument("--train-n", type=int, default=20000, help="dev training images")
    parser.add_argument("--n", type=int, default=1000,
                        help="val images Neural Cleanse stamps; test images for strip")
    parser.add_argument("--only", nargs="*", help="these models only (run parts in "
                        "parallel, then once without --only to gather them from the state)")
    parser.add_argument("--from-scans", type=Path, default=None,
                        help="bundled: read mask norms from DIR/scan_NAME.json")
    parser.add_argument("--published", type=Path, default=Path("docs/results/poison"),
                        help="heldout: compare the rescans with DIR/scan_NAME.json")
    parser.add_argument("--steps", type=int, default=NeuralCleanse.steps)
    parser.add_argument("--model", default="mnist-badnets", help="strip: zoo model")
    parser.add_argument("--trigger", default="badnets:target=0", help="strip: its trigger")
    parser.add_argument("--calibrate", type=int, default=5000,
                        help="strip: first N val images to fit on")
    args = parser.parse_args()
    args.work = args.work or Path(f"runs/poison/cleanse-{args.job}")
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    result = {"dev": dev, "bundled": bundled, "heldout": heldout,
              "strip": strip}[args.job](args)
    result = {"job": args.job, **meta(), "seconds": round(time.perf_counter() - began, 1),
              "results": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
