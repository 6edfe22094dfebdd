"""Session-6 variants of the transformer classifier's recipe (docs/guard.md, "transformer").

Each run trains with ``bastion.guard.train_transformer.train`` (the bundled recipe's code
path, int8 scoring, each prompt alone) on every *other* bastion hard negative, and
reports, never S-Labs test nor the over-refusal set:

* S-Labs val TPR at the threshold chosen there (FPR <= 1%);
* the share of the held-out half of the hard negatives flagged at that threshold, in
  all and per ``source`` (``written-3`` are the session-6 personas, translation,
  encoding, LLM-meta, security, fiction, conversation-steering and technical-word
  prompts);
* the TPR drop under the padding, synonym and typo perturbations (budgets 1, 3, 5; five
  tries each) on the val attacks among the first ``--attack-limit`` val prompts, the
  transformer alone as the guard.

Every setting the bench takes defaults to the session-6 starting point (3 layers, no
bastion filler, no padded benign texts), not to the bundled recipe's defaults.

    python bench/guard_transformer_variants.py --pool mean --out /tmp/v-mean
    python bench/guard_transformer_variants.py --pool max --out /tmp/v-max
    python bench/guard_transformer_variants.py --weights src/bastion/guard/data/transformer_head.npz
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any


class _Guard:
    """The shape ``attack_guard`` expects, around one scanner."""

    def __init__(self, scanner: Any) -> None:
        self.scanner = scanner

    def scan_input(self, text: str) -> Any:
        return self.scanner.scan(text)


def main() -> dict[str, Any]:
    import torch

    from bastion.guard import train_transformer
    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input.transformer import WEIGHTS_FILE, TransformerScanner
    from bastion.guard.train_classifier import HARD_NEGATIVES_FILE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="mean", choices=("mean", "max"))
    ap.add_argument("--pad", type=float, default=0.15)
    ap.add_argument("--pad-sentences", type=int, default=3)
    ap.add_argument("--pad-filler", action="store_true",
                    help="half the padding sentences from bastion's own filler file")
    ap.add_argument("--pad-benign", action="store_true",
                    help="pad half the benign texts the same way (label 0)")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=1.5)
    ap.add_argument("--hn-weight", type=float, default=10.0)
    ap.add_argument("--attack-limit", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="folder for the trained weights")
    ap.add_argument("--weights", help="evaluate this .npz (with its .json) instead of "
                                      "training, e.g. the bundled one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()

    path = Path(train_transformer.__file__).parent / "data" / HARD_NEGATIVES_FILE
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    train_rows, dev_rows = rows[::2], rows[1::2]
    # train on one half of the hard negatives; the other half is the benign dev set
    train_transformer.hard_negatives = lambda sources=(): [r["text"] for r in train_rows]
    settings = train_transformer.Settings(pool=args.pool, pad_share=args.pad,
                                          pad_sentences=args.pad_sentences,
                                          pad_filler=args.pad_filler, layers=args.layers,
                                          pad_benign=args.pad_benign,
                                          epochs=args.epochs,
                                          hard_negative_weight=args.hn_weight)
    if args.weights:
        weights = args.weights
        meta = json.loads(Path(weights).with_suffix(".json").read_text("utf-8"))
    elif args.out:
        meta = train_transformer.train(args.out, settings,
                                       log=lambda m: print(m, flush=True))
        weights = str(Path(args.out) / WEIGHTS_FILE)
    else:
        ap.error("give --out (train) or --weights (evaluate)")
    threshold = float(meta["threshold"])
    scanner = TransformerScanner(weights=weights, threshold=threshold)
    flagged = [r for r in dev_rows if scanner.scan(r["text"]).verdict != "allow"]
    by_source = Counter(r.get("source") for r in dev_rows)
    flagged_by_source = Counter(r.get("source") for r in flagged)
    attack = attack_guard(_Guard(scanner), load_corpus("s-labs-val")[:args.attack_limit],
                          families=("padding", "synonym", "typos"), budgets=(1, 3, 5),
                          tries=5, seed=0)
    out = {
        "settings": meta["settings"], "threshold": threshold, "val": meta["val"],
        "dev_hard_negatives": {
            "n": len(dev_rows), "flagged": len(flagged) / len(dev_rows),
            "by_source": {k: f"{flagged_by_source[k]}/{n}" for k, n in by_source.items()}},
        "attack_tpr_before": attack["tpr_before"],
        "drop_points": {f"{r['family']}-{r['budget']}": r["tpr_drop_points"]
                        for r in attack["results"]},
        "weights": args.weights or "trained", "train_s": meta["wall_time_s"],
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
