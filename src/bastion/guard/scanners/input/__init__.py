"""Input scanners (prompts on their way to the model), registered by kind.

In pipeline order: ``sanitizer`` (Unicode clean-up, hidden-text report), ``decoder``
(smuggled encodings, rescanned with the rules), ``rules`` (injection and jailbreak
signatures) and ``transformer`` (the fine-tuned MiniLM injection classifier) or
``ensemble`` (the transformer and the n-gram classifier, their logits mixed), then
``perplexity`` (optimized gibberish suffixes under a small language model; not in the
default policy). The n-gram head (:mod:`.ngram`) is not a layer of its own, only a member
of ``ensemble``; :mod:`.minilm` is the transformer's network. :mod:`.hardening` holds
helpers for wrapping untrusted content; it is not a scanner. Training lives apart, in
:mod:`bastion.guard.training`.
"""

from __future__ import annotations

from bastion.guard.base import Scanner
from bastion.guard.scanners.input.decoder import DecoderScanner
from bastion.guard.scanners.input.ensemble import EnsembleScanner
from bastion.guard.scanners.input.hardening import (
    Wrapped,
    instructions_for,
    new_canary,
    wrap_untrusted,
)
from bastion.guard.scanners.input.perplexity import PerplexityScanner
from bastion.guard.scanners.input.rules import RulesScanner
from bastion.guard.scanners.input.sanitizer import SanitizerScanner
from bastion.guard.scanners.input.transformer import TransformerScanner

REGISTRY: dict[str, type[Scanner]] = {
    cls.kind: cls for cls in (SanitizerScanner, DecoderScanner, RulesScanner,
                              TransformerScanner, EnsembleScanner, PerplexityScanner)
}

__all__ = ["REGISTRY", "DecoderScanner", "EnsembleScanner", "PerplexityScanner", "RulesScanner",
           "SanitizerScanner", "TransformerScanner", "Wrapped", "instructions_for",
           "new_canary", "wrap_untrusted"]
