"""How the transformer classifier's recipe was chosen (docs/guard.md, "transformer").

One candidate per run: MiniLM's first ``--layers`` layers fine-tuned whole (``--rank 0``,
every weight free, embeddings included) or with LoRA updates of ``--rank`` (layer norms
and head free), trained on the issue's sources with or without one perturbed copy per
attack (``--augment``) and with ``--pad`` of the attacks wrapped in benign training
sentences, on every other hard negative (weight 10). Reported, never S-Labs test nor the
over-refusal set: S-Labs val AUROC and TPR at 1% FPR (each text read whole, float32),
and the share of the *other* half of the hard negatives (the benign dev set) flagged at
that threshold.

The rows of docs/guard.md (one thread each, about 6-16 minutes):

    python bench/guard_transformer_search.py --rank 0 --lr 5e-5 --no-augment --pad 0
    python bench/guard_transformer_search.py --rank 0 --lr 5e-5 --pad 0.3
    python bench/guard_transformer_search.py --rank 0 --lr 5e-5 --pad 0
    python bench/guard_transformer_search.py --rank 16 --lr 5e-4 --pad 0.3
    python bench/guard_transformer_search.py --rank 16 --lr 5e-4 --pad 0.15 --epochs 1.5
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch
from torch import nn


def main() -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input import _encoder
    from bastion.guard.train_classifier import hard_negatives, training_data
    from bastion.guard.train_transformer import _batches, padded_attacks, train_step

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16, help="0: fine-tune every weight")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--pad", type=float, default=0.3)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    began = time.perf_counter()

    data = training_data(augment=args.augment, log=lambda _: None)
    texts, labels = data["texts"], data["labels"]
    padded = padded_attacks(texts, labels, args.pad, seed=1)
    negatives = hard_negatives()
    train_neg, dev_neg = negatives[::2], negatives[1::2]
    weights = [1.0] * (len(texts) + len(padded)) + [10.0] * len(train_neg)
    texts = texts + padded + train_neg
    labels = labels + [1] * len(padded) + [0] * len(train_neg)
    n_pos = sum(labels)
    balance = {1: len(labels) / (2 * n_pos), 0: len(labels) / (2 * (len(labels) - n_pos))}

    if args.rank:
        network = _encoder.trainable(args.layers, args.rank, 2.0, seed=0)
    else:
        network = _encoder.Network(_encoder.base_encoder(args.layers),
                                   nn.Linear(_encoder.HIDDEN, 1))
    free = [p for p in network.parameters() if p.requires_grad]
    steps = int(args.epochs * len(texts) / 32)
    rng = random.Random(0)
    plan: list[list[int]] = []
    while len(plan) < steps:
        plan += _batches([len(t) for t in texts], 32, rng)
    opt = torch.optim.AdamW(free, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / 100) * max(0.0, 1.0 - k / steps))
    tok = _encoder.tokenizer()
    network.train()
    for step, rows in enumerate(plan[:steps]):
        loss = train_step(network, tok, [texts[i] for i in rows], [labels[i] for i in rows],
                          [weights[i] * balance[labels[i]] for i in rows], 128, opt, sched,
                          free)
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
    network.eval()

    val = load_corpus("s-labs-val")
    yv = np.asarray([e.label for e in val])
    zv = _encoder.logits(network, [e.text for e in val])
    benign = np.sort(zv[yv == 0])
    threshold = benign[int(np.ceil(0.99 * len(benign)))]
    dev = _encoder.logits(network, dev_neg)
    row = {"val_auroc": float(roc_auc_score(yv, zv)),
           "val_tpr_at_1pct_fpr": float(np.mean(zv[yv == 1] > threshold)),
           "dev_hard_negatives_flagged": float(np.mean(dev > threshold)),
           "seconds": round(time.perf_counter() - began, 1), **vars(args)}
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
