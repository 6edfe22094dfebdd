"""Two injection classifiers, one score: the fine-tuned transformer (:mod:`.transformer`)
and the n-gram head (:mod:`.ngram`), their logits mixed.

The two read a prompt differently (the transformer reads meaning in 128-token windows;
the n-gram head reads character and word n-grams in windows, sentences and 12-word
phrases), so they err on different prompts: averaging their logits keeps what both
say and damps what only one says. The score is::

    sigmoid(mix * logit(p_transformer) + (1 - mix) * logit(p_ngram))

``mix`` and the threshold are chosen on S-Labs val and the ``benign-dev`` prompts by
``bastion guard train`` (:mod:`bastion.guard.training.mix`) and stored in
``ensemble.json``; the bundled record belongs to the bundled weights of both members.
"""

from __future__ import annotations

import numpy as np

from bastion.errors import ConfigError
from bastion.guard.artifacts import bundled, record_number
from bastion.guard.base import Finding, ScanContext, Scanner
from bastion.guard.scanners.input.ngram import NgramMember
from bastion.guard.scanners.input.transformer import TransformerScanner

META_FILE = "ensemble.json"
_EPS = 1e-7

#: mix and threshold chosen for the bundled members on S-Labs val and benign-dev.
DEFAULT_MIX: float = record_number(bundled(META_FILE), "mix", 0.5)
DEFAULT_THRESHOLD: float = record_number(bundled(META_FILE), "threshold", 0.5)


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
        transformer, ngram = self.members()
        transformer.validate()
        ngram.head()

    def members(self) -> tuple[TransformerScanner, NgramMember]:
        """The two member scanners (their own thresholds are not used); made once per
        setting of this scanner's fields."""
        key = (self.transformer_weights, self.classifier_weights, self.sentences)
        cached = getattr(self, "_members", None)
        if cached is None or cached[0] != key:
            cached = (key, (TransformerScanner(weights=self.transformer_weights,
                                               sentences=self.sentences),
                            NgramMember(weights=self.classifier_weights)))
            self._members = cached
        return cached[1]

    def _scan(self, text: str, context: ScanContext) -> Finding:
        if not text.strip():
            return Finding(0.0, "empty text")
        member, ngram_member = self.members()
        transformer, ngram = member.scan(text, context), ngram_member.find(text)
        score = float(mixed(transformer.score, ngram.score, float(self.mix)))
        return Finding(score, f"ensemble p={score:.3f} ({transformer.reason}; "
                              f"{ngram.reason})",
                       spans=transformer.spans + ngram.spans)
