"""Two injection classifiers, one score: the fine-tuned transformer (:mod:`.transformer`)
and the n-gram head (:mod:`.classifier`), their logits mixed.

The two read a prompt differently (the transformer reads meaning in 128-token windows;
the n-gram head reads character and word n-grams in windows, sentences and 12-word
phrases), so they err on different prompts: averaging their logits keeps what both
say and damps what only one says. The score is::

    sigmoid(mix * logit(p_transformer) + (1 - mix) * logit(p_ngram))

``mix`` and the threshold are chosen on S-Labs val and the ``benign-dev`` prompts by
:func:`calibrate` (``bastion guard train --kind ensemble``) and stored in
``ensemble.json``; the bundled record belongs to the bundled weights of both members.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner
from bastion.guard.scanners.input.classifier import ClassifierScanner, head_meta
from bastion.guard.scanners.input.transformer import TransformerScanner, bundled

META_FILE = "ensemble.json"
#: the bundled n-gram member: ``bastion guard train --recipe ensemble`` (every hard
#: negative); its record sits beside it in ``ensemble_ngram_head.json``.
NGRAM_FILE = "ensemble_ngram_head.npz"
#: the mixes :func:`calibrate` tries (weight of the transformer's logit).
MIX_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_EPS = 1e-7


def _record(path: str | Path | None) -> dict[str, Any]:
    return head_meta(str(bundled(META_FILE) if path is None else path))


def _default(key: str, fallback: float) -> float:
    value = _record(None).get(key, fallback)
    return float(value) if isinstance(value, int | float) else fallback


#: mix and threshold chosen for the bundled members on S-Labs val and benign-dev.
DEFAULT_MIX: float = _default("mix", 0.5)
DEFAULT_THRESHOLD: float = _default("threshold", 0.5)


def logit(p: np.ndarray | float) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[1e-7, 1 - 1e-7]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q / (1.0 - q))


def mixed(p_transformer: np.ndarray | float, p_ngram: np.ndarray | float,
          mix: float) -> np.ndarray:
    """The ensemble's probability from its members' probabilities (same shapes)."""
    z = mix * logit(p_transformer) + (1.0 - mix) * logit(p_ngram)
    return 1.0 / (1.0 + np.exp(-z))


class EnsembleScanner(Scanner):
    """Score a prompt with the transformer and the n-gram classifier together.

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`; the default
            threshold is the one chosen with the default ``mix`` (FPR <= 1% on S-Labs val,
            at most 3% of benign-dev flagged).
        mix: weight of the transformer's logit, in [0, 1] (the n-gram head gets
            ``1 - mix``).
        transformer_weights, classifier_weights: the members' ``.npz`` files (``None``:
            the bundled transformer and the bundled ensemble n-gram head,
            ``ensemble_ngram_head.npz``). With other weights, pass the ``mix`` and
            ``threshold`` that :func:`calibrate` chose for them.
        sentences: the transformer member also reads each sentence of a short prompt
            alone (see :class:`~.transformer.TransformerScanner`); ``None``: as its
            weights were trained.

    Spans are both members' winning pieces; the reason gives both probabilities.
    """

    kind = "ensemble"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                 action: str = "block", mix: float = DEFAULT_MIX,
                 transformer_weights: str | None = None,
                 classifier_weights: str | None = None,
                 sentences: bool | None = None) -> None:
        self._init_common(name, threshold, action)
        self.mix = mix
        self.transformer_weights = transformer_weights
        self.classifier_weights = classifier_weights
        self.sentences = sentences

    def validate(self) -> None:
        super().validate()
        m = self.mix
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0.0 <= m <= 1.0:
            raise ConfigError(f"{self.name}: mix must be a number in [0, 1] (the weight of "
                              f"the transformer's logit), got {m!r}")
        for member in self.members():
            member.validate()

    def members(self) -> tuple[TransformerScanner, ClassifierScanner]:
        """The two member scanners (their own thresholds are not used); made once per
        setting of this scanner's fields."""
        key = (self.transformer_weights, self.classifier_weights, self.sentences)
        cached = getattr(self, "_members", None)
        if cached is None or cached[0] != key:
            ngram = self.classifier_weights or str(bundled(NGRAM_FILE))
            cached = (key, (TransformerScanner(weights=self.transformer_weights,
                                               sentences=self.sentences),
                            ClassifierScanner(weights=ngram)))
            self._members = cached
        return cached[1]

    def _scan(self, text: str, context: ScanContext) -> Finding:
        if not text.strip():
            return Finding(0.0, "empty text")
        transformer, ngram = (m.scan(text, context) for m in self.members())
        score = float(mixed(transformer.score, ngram.score, float(self.mix)))
        return Finding(score, f"ensemble p={score:.3f} ({transformer.reason}; "
                              f"{ngram.reason})",
                       spans=transformer.spans + ngram.spans)


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, target: float = 0.01
               ) -> tuple[float, float, float]:
    """``(threshold, tpr, fpr)``: the lowest threshold flagging at most ``target`` of
    the benign scores (label 0), and the rates it gives."""
    from bastion.guard.train_classifier import threshold_for_fpr

    neg, pos = scores[labels == 0], scores[labels == 1]
    t = threshold_for_fpr(neg, target)
    return t, float(np.mean(pos >= t)), float(np.mean(neg >= t))


def member_scores(transformer_weights: str | None = None,
                  classifier_weights: str | None = None, sentences: bool | None = None
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray],
                             tuple[np.ndarray, np.ndarray]]:
    """``(labels, (val_transformer, val_ngram), (dev_transformer, dev_ngram))``: S-Labs
    val's labels and each member's probability for every S-Labs val and ``benign-dev``
    prompt, each prompt scanned as the member scans it."""
    from bastion.guard.corpora import load_corpus

    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    members = EnsembleScanner(transformer_weights=transformer_weights,
                              classifier_weights=classifier_weights,
                              sentences=sentences).members()
    pv, pd = ([np.asarray([m.scan(e.text).score for e in corpus]) for m in members]
              for corpus in (val, dev))
    return np.asarray([e.label for e in val]), (pv[0], pv[1]), (pd[0], pd[1])


def choose_mix(table: Sequence[dict[str, float]], max_dev_flagged: float
               ) -> dict[str, float]:
    """The row of ``table`` (``mix``, ``tpr``, ``dev_flagged``, ...) with the highest
    ``tpr`` among those with ``dev_flagged <= max_dev_flagged`` (ties: the highest
    ``mix``, since the transformer carries the padding defence: for the session-9
    members, tied at 97.15% val TPR, padding cost 5.0 points at mix 0.6 and 4.5 at 0.8,
    synonyms 13.0 and 11.5); when none qualifies, the one with the lowest
    ``dev_flagged``."""
    within = [r for r in table if r["dev_flagged"] <= max_dev_flagged]
    if within:
        return max(within, key=lambda r: (r["tpr"], r["mix"]))
    return min(table, key=lambda r: (r["dev_flagged"], -r["tpr"]))


def calibrate(out_dir: str | Path, *, transformer_weights: str | None = None,
              classifier_weights: str | None = None, grid: Sequence[float] = MIX_GRID,
              max_dev_flagged: float | None = None,
              log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Choose ``mix`` and its threshold, write ``ensemble.json`` into ``out_dir`` and
    return it.

    For every mix the threshold is the lowest score with FPR <= 1% on S-Labs val that
    flags at most 3% of the ``benign-dev`` prompts (benign prompts with trigger words,
    never trained on; :func:`~bastion.guard.train_classifier.guarded_threshold`); the
    mix chosen is the one with the highest val TPR among those that flag at most
    ``max_dev_flagged`` of them, or the one flagging the fewest when none does; ties go
    to the highest mix. Each prompt is scanned as the scanner scans it.
    """
    # imported here: train_classifier imports this package's scanners
    from bastion.guard.train_classifier import MAX_DEV_FLAGGED, guarded_rates

    if max_dev_flagged is None:
        max_dev_flagged = MAX_DEV_FLAGGED
    log("scoring S-Labs val and benign-dev with both members ...")
    labels, (pt, pn), (dt, dn) = member_scores(transformer_weights, classifier_weights)
    table = []
    for mix in grid:
        r = guarded_rates(mixed(pt, pn, mix), labels, mixed(dt, dn, mix))
        table.append({"mix": mix, **r})
        log(f"mix {mix:.2f}: val TPR {r['tpr']:.4f} at FPR {r['fpr']:.4f}; benign-dev "
            f"flagged {r['dev_flagged']:.4f}")
    best = choose_mix(table, max_dev_flagged)
    members = {}
    for name, v, d in (("transformer", pt, dt), ("ngram", pn, dn)):
        r = guarded_rates(v, labels, d)
        members[name] = {"val_tpr": r["tpr"], "dev_flagged": r["dev_flagged"]}
    record = {
        "model": "mix * logit(transformer) + (1 - mix) * logit(n-gram head)",
        "mix": best["mix"],
        "threshold": best["threshold"],
        "rule": "per mix, threshold = lowest score with FPR <= 1% on S-Labs val and "
                f"<= {MAX_DEV_FLAGGED:.0%} of benign-dev flagged; mix = highest val TPR "
                f"among mixes flagging <= {max_dev_flagged:.0%} of benign-dev (ties: "
                "the highest mix)",
        "val": {"n": len(labels), "tpr": best["tpr"], "fpr": best["fpr"]},
        "benign_dev": {"n": len(dt), "flagged": best["dev_flagged"]},
        "members_alone": members,
        "grid": table,
        "transformer_weights": transformer_weights or "bundled",
        "classifier_weights": classifier_weights or "bundled",
        "command": "bastion guard train --kind ensemble",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"mix {record['mix']}, threshold {record['threshold']:.6f}: val TPR "
        f"{best['tpr']:.4f} at FPR {best['fpr']:.4f}, benign-dev flagged "
        f"{best['dev_flagged']:.4f}; wrote {out / META_FILE}")
    return record
