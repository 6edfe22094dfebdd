"""Training against several threat models at once (Tramer & Boneh, "Adversarial training
and robustness for multiple perturbations", NeurIPS 2019).

Each batch is attacked under every threat model (the method's own inner attack, e.g.
PGD for PGD-AT, run once per threat). Two ways to combine them:

- ``max``: per sample, keep the adversarial example with the highest cross-entropy
  (the worst case over the union of the threat sets) and train on it;
- ``avg``: average the method's training loss over the threats.

With a single threat model both reduce to the method itself, draw for draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel
from bastion.train.losses import LossSettings, Objective, Perturb

COMBINE = ("max", "avg")


def parse_also(text: str) -> tuple[tuple[str, float], ...]:
    """``"l1:10,l2:2"`` -> (("L1", 10.0), ("L2", 2.0)): extra threat models to train on."""
    names = {n.lower(): n for n in NORMS}
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, _, value = part.partition(":")
        try:
            out.append((names[kind.lower()], float(value)))
        except (KeyError, ValueError):
            raise ConfigError(f"--also takes NORM:EPS items such as l1:10 or l2:2 (norms "
                              f"{', '.join(NORMS)}), got {part!r}") from None
    return tuple(out)


def multi_threat_loss(perturb: Perturb, objective: Objective, attack_model: nn.Module,
                      train_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      threats: Sequence[ThreatModel], generator: torch.Generator,
                      settings: LossSettings, combine: str,
                      quiet: Callable[[], AbstractContextManager[object]]) -> torch.Tensor:
    """Scalar loss on a batch ``x`` (N, ...), ``y`` (N,) against every threat model.

    ``attack_model`` crafts the examples (with ``quiet()`` around it, e.g. DP hooks
    off); ``train_model`` computes the loss that is back-propagated.
    """
    if combine not in COMBINE:
        raise ConfigError(f"combine must be one of {COMBINE}, got {combine!r}")
    with quiet():
        examples = [perturb(attack_model, x, y, t, generator, settings) for t in threats]
    if len(examples) == 1:
        return objective(train_model, x, examples[0], y, settings)
    if combine == "avg":
        losses = [objective(train_model, x, x_adv, y, settings) for x_adv in examples]
        return torch.stack(losses).mean()
    with quiet(), torch.no_grad():
        was = attack_model.training
        attack_model.eval()
        ce = torch.stack([F.cross_entropy(attack_model(x_adv), y, reduction="none")
                          for x_adv in examples])  # (T, N)
        attack_model.train(was)
    worst = ce.argmax(0)  # (N,) the threat whose example hurts most
    stacked = torch.stack(examples)  # (T, N, ...)
    chosen = stacked[worst, torch.arange(x.shape[0], device=x.device)]
    return objective(train_model, x, chosen, y, settings)
