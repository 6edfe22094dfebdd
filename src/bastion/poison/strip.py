"""STRIP (Gao et al., 2019: "STRIP: a defence against trojan attacks on deep neural
networks"), an inference-time filter.

Superimpose an input on ``overlays`` random clean images (pixel sum, clipped to [0, 1])
and look at the entropy of the model's predictions over the blends. A clean input's
prediction follows whatever it is blended with (high entropy); an input carrying a
trigger keeps going to the target (low entropy). :meth:`Strip.fit` sets the threshold on
held-out clean inputs so that the share of them it flags stays at or below ``fpr`` with
95% confidence (``margin="wilson"``: the highest cut whose Wilson upper bound is <=
``fpr``), not just on average: a plain quantile (``margin="none"``) lets sampling noise
push the realised rate above ``fpr`` about half the time.

Example:
    >>> strip = Strip(fpr=0.05).fit(model, x_clean)       # x (N, C, H, W) in [0, 1]
    >>> flagged = strip.flag(model, x_incoming)            # (N,) bool
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from bastion.attacks.base import model_device
from bastion.common.intervals import wilson_interval
from bastion.errors import ConfigError, InputError, StateError


@dataclass(frozen=True, kw_only=True)
class Strip:
    """Args:
    overlays: clean images each input is blended with.
    fpr: share of clean held-out inputs flagged, in (0, 1).
    margin: ``"wilson"`` (the threshold keeps the Wilson 95% upper bound of the held-out
        flagged share <= ``fpr``) or ``"none"`` (the plain ``fpr`` quantile).
    seed: which overlays are drawn.
    batch_size: blends per forward pass.
    background: (M, C, H, W) clean images to blend with; set by :meth:`fit`.
    threshold: entropy (nats) below which an input is flagged; set by :meth:`fit`.
    """

    name = "strip"
    overlays: int = 32
    fpr: float = 0.05
    margin: str = "wilson"
    seed: int = 0
    batch_size: int = 2048
    background: Tensor | None = field(default=None, repr=False)
    threshold: float | None = None

    def entropy(self, model: nn.Module, x: Tensor) -> Tensor:
        """Mean prediction entropy (nats) of each input (N, C, H, W) over its blends."""
        if self.background is None:
            raise StateError("Strip has no clean images to blend with; call fit first")
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.background.shape[1:]):
            raise InputError(f"inputs must be (N, {', '.join(map(str, self.background.shape[1:]))}"
                             f"), got {tuple(x.shape)}")
        gen = torch.Generator().manual_seed(self.seed)
        picks = torch.randint(len(self.background), (len(x), self.overlays), generator=gen)
        out = torch.empty(len(x))
        per = max(1, self.batch_size // self.overlays)
        device = model_device(model)  # blends go to the model; entropies come back
        model.eval()
        with torch.inference_mode():
            for i in range(0, len(x), per):
                xs = x[i:i + per]
                blends = (xs[:, None] + self.background[picks[i:i + per]]).clamp(0, 1)
                logp = model(blends.flatten(0, 1).to(device)).log_softmax(1)
                h = -(logp.exp() * logp).sum(1).view(len(xs), self.overlays)
                out[i:i + per] = h.mean(1).cpu()
        return out

    def fit(self, model: nn.Module, x_clean: Tensor) -> Strip:
        """Calibrated copy: blends with half of ``x_clean`` (M, C, H, W), sets the
        threshold on the other half."""
        if not 0 < self.fpr < 1 or self.overlays < 1 or self.margin not in ("wilson", "none"):
            raise ConfigError(f"STRIP needs fpr in (0, 1), overlays >= 1 and margin wilson or "
                              f"none, got fpr={self.fpr}, overlays={self.overlays}, "
                              f"margin={self.margin!r}")
        if len(x_clean) < 20:
            raise InputError(f"STRIP needs at least 20 clean images to fit, got {len(x_clean)}")
        half = len(x_clean) // 2
        ready = replace(self, background=x_clean[:half].clone())
        h = ready.entropy(model, x_clean[half:]).double().sort().values
        if self.margin == "none":
            return replace(ready, threshold=float(torch.quantile(h, self.fpr)))
        return replace(ready, threshold=float(h[allowed(len(h), self.fpr)]))

    def score(self, model: nn.Module, x: Tensor) -> Tensor:
        """(N,) suspicion: minus the blend entropy (higher = more suspicious)."""
        return -self.entropy(model, x)

    def flag(self, model: nn.Module, x: Tensor) -> Tensor:
        """(N,) bool, True where the blend entropy is below the threshold."""
        if self.threshold is None:
            raise StateError("Strip has no threshold; call fit on clean images first")
        return self.entropy(model, x) < self.threshold


def allowed(n: int, fpr: float) -> int:
    """The most of ``n`` held-out clean inputs a threshold may flag so that the Wilson
    95% upper bound of the flagged share stays <= ``fpr`` (0 when even none is too many:
    the threshold then sits at the lowest held-out entropy)."""
    k = 0
    while k < n and (wilson_interval(k + 1, n) or (0.0, 1.0))[1] <= fpr:
        k += 1
    return k


class StripFiltered(nn.Module):
    """``model`` behind a fitted :class:`Strip`: ``forward`` returns the logits and keeps
    ``last_flags`` (N,) bool for the batch, so a caller can refuse flagged inputs."""

    def __init__(self, model: nn.Module, strip: Strip) -> None:
        super().__init__()
        self.model = model
        self.strip = strip
        self.last_flags: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.last_flags = self.strip.flag(self.model, x)
        out: Tensor = self.model(x)
        return out
