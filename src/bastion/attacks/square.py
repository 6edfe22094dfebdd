"""Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), Linf and L2.

A score-based black-box attack: random search that only reads the model's logits and
never its gradients, so gradient masking cannot stop it. It starts from a random point
on the sphere of radius eps (Linf: vertical stripes of +-eps; L2: a grid of signed
bumps) and then repeatedly proposes changing one random square window, keeping the
proposal when it raises the loss. The window covers a fraction ``p`` of the image that
shrinks on a fixed schedule, from ``p_init`` down to ``p_init / 512``.

Each sample stops as soon as it is broken: it gets no further queries.

Cost per sample: 1 forward on x, then per restart at most ``n_queries`` forwards (the
random start counts as the first); no backward passes.

Example:
    >>> square = Square(n_queries=5000, p_init=0.8)
    >>> result = square.run(model, x, y, ThreatModel("Linf", 0.3))
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks import _square_proposals as prop
from bastion.attacks._inference import inference_model
from bastion.attacks.base import (
    Attack,
    AttackResult,
    Passes,
    attack_loss,
    is_success,
    require_counts,
    require_loss,
)
from bastion.common import draws
from bastion.errors import ConfigError, InputError
from bastion.threat import ThreatModel


class Square(Attack):
    """Query-efficient random search inside the threat model.

    Args:
        n_queries: queries per sample and restart, the random start included.
        p_init: fraction of the image the first updates change (AutoAttack: 0.8).
        loss: the score to raise: ``"margin"`` (best other logit minus the true one),
            ``"ce"`` or ``"dlr"``; targeted runs pull toward the target instead.
        restarts: fresh random starts, each only for samples still robust.
        rescale_schedule: stretch the p schedule (written for 10,000 queries) over
            ``n_queries``; AutoAttack's standard run does not.
    """

    name = "square"
    per_sample_draws = True
    uses_gradients = False

    def __init__(
        self,
        *,
        n_queries: int = 5000,
        p_init: float = 0.8,
        loss: str = "margin",
        restarts: int = 1,
        rescale_schedule: bool = False,
    ) -> None:
        self.n_queries = n_queries
        self.p_init = p_init
        self.loss = loss
        self.restarts = restarts
        self.rescale_schedule = rescale_schedule

    def _check(self) -> None:
        require_counts(self, "n_queries", "restarts")
        if not 0 < self.p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {self.p_init!r} (a fraction of "
                              "the image; AutoAttack uses 0.8)")
        require_loss(self.loss)

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
        generator: draws.Source,
    ) -> AttackResult:
        self._check()
        if x.dim() > 4 or x.dim() < 2:
            raise InputError(f"Square needs images (N, C, H, W), (N, H, W) or vectors (N, D); "
                             f"got shape {tuple(x.shape)}")
        n = x.shape[0]
        passes = Passes(forward=n)
        # Only outputs are queried: a frozen inference copy is as good and faster.
        model = inference_model(model, x[:8])
        with torch.no_grad():
            success = is_success(model(x), y, target)
        x_adv = x.clone()
        if threat.eps == 0:
            return AttackResult(x_adv=x_adv, success=success, passes=passes)
        best_loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
        for _ in range(self.restarts):
            idx = (~success).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            with torch.no_grad():
                self._search(model, x, y, target, threat, generator, idx,
                             x_adv, success, best_loss, passes)
        return AttackResult(x_adv=x_adv, success=success, passes=passes)

    def _search(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        threat: ThreatModel,
        generator: draws.Source,
        idx: torch.Tensor,
        x_adv: torch.Tensor,
        success: torch.Tensor,
        best_loss: torch.Tensor,
        passes: Passes,
    ) -> None:
        """One restart on samples ``idx``; updates ``x_adv``, ``success``, ``best_loss``."""
        image = _as_image(x)  # (N, C, H, W) view
        total = x.shape[0]
        eps = threat.eps
        # Random numbers are drawn for the whole batch (then indexed), so a sample's
        # search does not depend on which other samples are still robust.
        if threat.norm == "Linf":
            start = prop.linf_init(image, eps, generator)
        else:
            start = image + prop.l2_init(image, eps, generator)
        current = threat.project(start[idx].reshape((-1, *x.shape[1:])), x[idx])
        current, origin = _as_image(current), image[idx]
        y0 = y[idx]
        t0 = target[idx] if target is not None else None
        loss, fooled = self._score(model, current, x.shape, y0, t0, passes)
        # The samples still searched, gathered once and shrunk only when one is broken
        # (rare): each query then reads and updates them in place of the whole batch.
        live = (~fooled).nonzero().squeeze(1)
        cur, near, y_l, loss_l = current[live], origin[live], y0[live], loss[live]
        t_l = t0[live] if t0 is not None else None
        for i in range(self.n_queries - 1):
            if live.numel() == 0:
                break
            p = prop.fraction_at(i, self.p_init, self.n_queries, self.rescale_schedule)
            proposal = self._propose(cur, near, p, threat, generator, idx[live], total)
            new_loss, new_fooled = self._score(model, proposal, x.shape, y_l, t_l, passes)
            keep = new_fooled | (new_loss > loss_l)
            cur = torch.where(keep.view(-1, 1, 1, 1), proposal, cur)
            loss_l = torch.where(keep, new_loss, loss_l)
            if bool(new_fooled.any()):
                current[live], loss[live] = cur, loss_l
                fooled[live[new_fooled]] = True
                stay = ~new_fooled
                live, cur, near, y_l, loss_l = (live[stay], cur[stay], near[stay], y_l[stay],
                                                loss_l[stay])
                t_l = t_l[stay] if t_l is not None else None
        current[live], loss[live] = cur, loss_l
        # Broken now: keep this point. Still robust: keep the highest-loss point seen.
        better = ~success[idx] & (fooled | (loss > best_loss[idx]))
        x_adv[idx[better]] = current[better].view((-1, *x.shape[1:]))
        best_loss[idx[better]] = loss[better]
        success[idx[fooled]] = True

    @staticmethod
    def _propose(current: torch.Tensor, origin: torch.Tensor, p: float, threat: ThreatModel,
                 generator: draws.Source, who: torch.Tensor, total: int) -> torch.Tensor:
        """One proposal (K, C, H, W) per searched sample ``who`` (K,) of ``total``."""
        height, width = origin.shape[2:]
        if threat.norm == "Linf":
            # Built inside ball and box (the window at x +- eps, clipped; the rest the
            # current point), so it needs no projection.
            side = prop.side_length(p, height, width, smallest=1, odd=False)
            return prop.linf_update(current, origin, threat.eps, side, threat.bounds,
                                    generator, who, total)
        side = prop.side_length(p, height, width, smallest=3, odd=True)
        proposal = prop.l2_update(current, origin, threat.eps, side, generator, who, total)
        flat = (-1, *origin.shape[1:])
        return threat.project(proposal.reshape(flat), origin.reshape(flat)).view_as(origin)

    def _score(self, model: nn.Module, images: torch.Tensor, shape: torch.Size,
               y: torch.Tensor, target: torch.Tensor | None, passes: Passes
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (K,) and success (K,) of one query on ``images`` (K, C, H, W)."""
        logits = model(images.reshape((-1, *shape[1:])))
        passes.forward += images.shape[0]
        loss = attack_loss(logits, y, target, self.loss).to(images.dtype)
        return loss, is_success(logits, y, target)


def _as_image(t: torch.Tensor) -> torch.Tensor:
    """View (N, C, H, W) of images (N, C, H, W), (N, H, W) or vectors (N, D) (as 1 x D)."""
    if t.dim() == 4:
        return t
    if t.dim() == 3:
        return t.unsqueeze(1)
    return t.reshape(t.shape[0], 1, 1, -1)
