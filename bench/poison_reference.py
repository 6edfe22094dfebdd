"""Neural Cleanse read against a clean reference model (``bastion.poison.reference``): on
models already scanned (the rule is chosen there), then, frozen, on held-out models.

- ``dev``: the development and the earlier held-out models of ``poison_cleanse.py``
  (:data:`SEEN`; their scans resume from ``--work``), each class's reversed trigger
  stamped on 1,000 val images it was not reversed on and fed to the standard-trained
  reference of the same architecture (:data:`REFERENCES`, trained here on the same first
  20,000 training images with other seeds). Writes each class's mask ratio and transfer
  and the verdicts of the index rule and of the reference rule.
- ``heldout``: the same on :data:`HELDOUT`, models listed before any of them was trained
  or scanned, with the rule frozen; each model's clean accuracy and attack success too.
- ``bundled``: the same, frozen, on the bundled ``mnist-badnets``, ``mnist-smallcnn-std``
  and ``mnist-lenet5-pgd``.

Usage:
    OMP_NUM_THREADS=1 python bench/poison_reference.py dev \
        --out docs/results/poison/reference_dev.json
    OMP_NUM_THREADS=1 python bench/poison_reference.py heldout \
        --out docs/results/poison/reference_heldout.json
    OMP_NUM_THREADS=1 python bench/poison_reference.py bundled \
        --out docs/results/poison/reference_bundled.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from torch import nn

from bastion import data
from bastion.poison import parse_poison
from bastion.poison.cleanse import NeuralCleanse
from bastion.poison.reference import ReferenceCheck
from bastion.zoo.registry import load, resolve
from poison_cleanse import BUNDLED, DEV, meta, scan_found, train_dev, trained
from poison_cleanse import HELDOUT as SEEN_HELDOUT

#: arch -> (name, seed): standard 2-epoch models on the first 20,000 training images.
REFERENCES: dict[str, tuple[str, int]] = {
    "lenet5": ("ref-lenet5-s41", 41), "wong-small": ("ref-wong-s42", 42),
    "cnn4": ("ref-cnn4-s43", 43), "smallcnn": ("ref-smallcnn-s44", 44)}
#: every model ``poison_cleanse.py`` trained: (name, arch, method, poison, seed, epochs,
#: train_n); the rule is chosen on these.
SEEN = tuple((*spec, 20000) for spec in DEV) + SEEN_HELDOUT
#: (name, arch, method, poison, seed, epochs, train_n): fixed before any was trained.
HELDOUT: tuple[tuple[str, str, str, str | None, int, int, int], ...] = (
    ("h-lenet5-std-s51", "lenet5", "standard", None, 51, 2, 20000),
    ("h-smallcnn-std-s52-50k", "smallcnn", "standard", None, 52, 2, 50000),
    ("h-cnn4-std-s53", "cnn4", "standard", None, 53, 2, 20000),
    ("h-wong-pgd-s54", "wong-small", "pgd", None, 54, 2, 10000),
    ("h-cnn4-fgsm-s55", "cnn4", "fgsm", None, 55, 2, 20000),
    ("h-lenet5-badnets3-mid-t4", "lenet5", "standard",
     "badnets:rate=0.1,target=4,size=3,margin=12", 56, 2, 20000),
    ("h-smallcnn-blended-t8", "smallcnn", "standard", "blended:rate=0.1,target=8,alpha=0.15",
     57, 2, 20000),
    ("h-wong-badnets4-t1", "wong-small", "standard", "badnets:rate=0.05,target=1,size=4,margin=6",
     58, 2, 20000),
    ("h-cnn4-badnets3-2pct-t9", "cnn4", "standard", "badnets:rate=0.02,target=9,size=3", 59, 2,
     20000),
    ("h-lenet5-blended-5pct-t6", "lenet5", "standard", "blended:rate=0.05,target=6,alpha=0.1",
     60, 2, 20000),
    ("h-cnn4-badnets5-mid-t0", "cnn4", "standard", "badnets:rate=0.1,target=0,size=5,margin=11",
     61, 2, 20000),
)


def reference(arch: str, args: argparse.Namespace) -> nn.Module:
    name, seed = REFERENCES[arch]
    return train_dev(name, arch, "standard", None, seed, 2, args, 20000)


def check(model: nn.Module, arch: str, name: str, args: argparse.Namespace
          ) -> dict[str, Any]:
    """The scan (resumed from ``--work``) and the reference rule's verdict."""
    row, found = scan_found(model, name, args)
    val = data.load("mnist", "val")
    # stamped on val images the triggers were not reversed on
    ref = ReferenceCheck().check(found, reference(arch, args),
                                 val.x[args.n:2 * args.n])
    ref["transfer"] = [round(v, 3) for v in ref["transfer"]]
    return {**row, "reference": REFERENCES[arch][0], "reference_rule": ref,
            "either": sorted(set(row["verdict"]["flagged"]) | set(ref["flagged"]))}


def run(specs: tuple[tuple[str, str, str, str | None, int, int, int], ...],
        args: argparse.Namespace, measure: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, arch, method, poison, seed, epochs, train_n in specs:
        if args.only and name not in args.only:
            continue
        model = train_dev(name, arch, method, poison, seed, epochs, args, train_n)
        row = {"arch": arch, "method": method, "poison": poison, "seed": seed,
               "truth": parse_poison(poison).target if poison else None,
               **(trained(args.work / name, model) if measure and method != "zoo" else {}),
               **check(model, arch, name, args),
               "load_average": round(os.getloadavg()[0], 1)}
        out[name] = row
        print(name, json.dumps({k: row[k] for k in ("truth", "either")}),
              json.dumps(row["reference_rule"]["transfer"]), flush=True)
    return out


def bundled(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in BUNDLED:
        if args.only and name not in args.only:
            continue
        arch = resolve(name).arch
        row = {"arch": arch, **check(load(name), arch, name, args),
               "load_average": round(os.getloadavg()[0], 1)}
        out[name] = row
        print(name, json.dumps(row["either"]), json.dumps(row["reference_rule"]["transfer"]),
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=("dev", "heldout", "bundled"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None, help="trained models and scan "
                        "states (default runs/poison/reference-JOB)")
    parser.add_argument("--n", type=int, default=1000, help="val images per step")
    parser.add_argument("--steps", type=int, default=NeuralCleanse.steps)
    parser.add_argument("--only", nargs="*", help="these models only")
    args = parser.parse_args()
    args.work = args.work or Path(f"runs/poison/reference-{args.job}")
    args.work.mkdir(parents=True, exist_ok=True)
    job, args.train_n = args.job, 20000
    args.job = f"reference-{job}"  # the label of training runs; no PGD data halving
    rule = ReferenceCheck()
    if job != "dev" and (rule.max_ratio, rule.max_transfer) != (0.75, 0.25):
        sys.exit(f"the held-out check is of the frozen rule (0.75, 0.25), not {rule}")
    began = time.perf_counter()
    specs = SEEN if job == "dev" else HELDOUT if job == "heldout" else ()
    result = {"job": job, **meta(), "rule": vars(rule), "references": REFERENCES,
              "plan": [list(s) for s in specs],
              "results": bundled(args) if job == "bundled" else
              run(specs, args, measure=job == "heldout")}
    result["seconds"] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
