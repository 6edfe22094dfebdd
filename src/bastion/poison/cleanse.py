"""Neural Cleanse (Wang et al., 2019: "Neural Cleanse: identifying and mitigating backdoor
attacks in neural networks"), a model-level scan.

For every class t, find the smallest mask m (H, W) in [0, 1] and pattern p (C, H, W) in
[0, 1] such that stamping them, ``x' = (1 - m) * x + m * p``, sends clean images to t
(minimise cross-entropy to t plus ``lam`` times the mask's L1 norm; ``lam`` rises while
the stamp succeeds and falls when it does not, as in the paper). A backdoored class
needs a far smaller mask than the others. The anomaly index of class t is
``(median - L1_t) / (1.4826 * MAD)`` over the classes' mask norms; a class above
``threshold`` (the paper's 2) whose mask is also at most ``max_ratio`` (1/4) of the
median class's is reported as backdoored. The second condition keeps adversarially
trained models, whose masks are all large but widely spread, from being flagged for a
mask only half the usual size; a patch trigger needs a tenth of it.

A scan is resumable: each finished class is saved to the ``state`` file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bastion.attacks.base import model_device
from bastion.common.state import StateFile, fingerprint, model_digest
from bastion.errors import ConfigError, InputError
from bastion.evaluation.progress import progress_bar


@dataclass(frozen=True, kw_only=True)
class NeuralCleanse:
    """Args:
    steps: optimisation steps per class.
    batch_size: clean images per step.
    lr: Adam step size on the mask and pattern logits.
    lam: starting weight of the mask's L1 norm (in pixels).
    success: share of images the stamp must send to t to count as a trigger.
    threshold: anomaly index above which a class is reported.
    scale: ``"linear"`` (the paper's) measures the anomaly index on the mask norms,
        ``"log"`` on their logarithms (see :func:`anomaly`).
    max_ratio: a flagged class's mask norm must also be at most this share of the
        median class's (None: the index alone decides).
    seed: initial mask and batch order.
    """

    steps: int = 150
    batch_size: int = 128
    lr: float = 0.1
    lam: float = 1e-2
    success: float = 0.99
    threshold: float = 2.0
    scale: str = "linear"
    max_ratio: float | None = 0.25
    seed: int = 0

    def reverse(self, model: nn.Module, x: Tensor, target: int) -> dict[str, Any]:
        """The smallest successful trigger for ``target`` found on images ``x`` (N, C, H, W):
        ``{"target", "l1", "success", "mask"}`` (mask as a nested list, (H, W))."""
        gen = torch.Generator().manual_seed(self.seed + target)
        h, w = x.shape[-2:]
        device = model_device(model)  # drawn on the CPU (same numbers), kept on the model's
        mask_logit = (torch.randn(1, 1, h, w, generator=gen) * 0.1 - 2).to(device)
        mask_logit.requires_grad_()
        pattern_logit = torch.zeros(1, *x.shape[1:], device=device).requires_grad_()
        opt = torch.optim.Adam([mask_logit, pattern_logit], lr=self.lr, betas=(0.5, 0.9))
        lam, best_l1, best_hit, best_mask, best_pattern = self.lam, float("inf"), 0.0, None, None
        labels = torch.full((min(self.batch_size, len(x)),), target, device=device)
        for _ in range(self.steps):
            batch = x[torch.randint(len(x), (len(labels),), generator=gen)].to(device)
            mask, pattern = mask_logit.sigmoid(), pattern_logit.sigmoid()
            logits = model((1 - mask) * batch + mask * pattern)
            l1 = mask.sum()
            loss = nn.functional.cross_entropy(logits, labels) + lam * l1
            norm = float(l1.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
            hit = float((logits.argmax(1) == target).float().mean())
            if hit >= self.success and norm < best_l1:
                best_l1, best_hit = norm, hit
                best_mask, best_pattern = mask.detach()[0, 0], pattern.detach()[0]
            # the paper's schedule: weigh the norm more while the stamp works, less if not
            lam = lam * 1.05 if hit >= self.success else lam / 1.08
        if best_mask is None or best_pattern is None:  # never reached the success rate:
            best_mask = mask_logit.detach().sigmoid()[0, 0]  # report the last stamp
            best_pattern = pattern_logit.detach().sigmoid()[0]
            best_l1, best_hit = float(best_mask.sum()), hit
        return {"target": target, "l1": best_l1, "success": best_hit,
                "mask": best_mask.cpu().tolist(), "pattern": best_pattern.cpu().tolist()}

    def scan(self, model: nn.Module, x: Tensor, *, num_classes: int,
             state: Path | None = None, progress: bool = False) -> dict[str, Any]:
        """Reverse a trigger for every class and report the anomalous ones.

        Args:
            model: classifier of inputs (N, C, H, W) in [0, 1] to logits.
            x: clean images (N, C, H, W) to stamp.
            state: JSON file of finished classes; rerun with it to resume.

        Returns:
            ``{"l1": [per class], "anomaly_index": [per class], "flagged": [classes],
            "backdoored": bool, "triggers": [...], "params": {...}}``.
        """
        if self.steps < 1 or self.batch_size < 1 or not 0 < self.success <= 1:
            raise ConfigError("Neural Cleanse needs steps >= 1, batch_size >= 1 and success "
                              "in (0, 1]")
        if x.dim() != 4 or len(x) < 2 or not bool(torch.isfinite(x).all()):
            raise InputError(f"Neural Cleanse needs finite clean images (N >= 2, C, H, W), "
                             f"got {tuple(x.shape)}")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        params = asdict(self)
        # the scale and ratio only read the finished masks: a saved scan is reused
        reversal = {k: v for k, v in params.items() if k not in ("scale", "max_ratio")}
        store = StateFile(state, fingerprint({**reversal, "model": model_digest(model),
                                              "n": len(x), "classes": num_classes}),
                          settings="model, images or Neural Cleanse settings")
        triggers = []
        with progress_bar(progress, total=num_classes, label="neural cleanse") as advance:
            for t in range(num_classes):
                found = store.done(str(t))
                if found is None:
                    found = self.reverse(model, x, t)
                    store.save(str(t), found)
                triggers.append(found)
                advance(f"class {t}")
        return {**anomaly(torch.tensor([tr["l1"] for tr in triggers]), self.threshold,
                          scale=self.scale, max_ratio=self.max_ratio),
                "success": [tr["success"] for tr in triggers], "triggers": triggers,
                "params": params}


def anomaly(l1: Tensor, threshold: float, *, scale: str = "linear",
            max_ratio: float | None = None) -> dict[str, Any]:
    """Anomaly index of each class's mask norm ``l1`` (K,): distance below the median in
    units of the consistency-scaled median absolute deviation, of the norms themselves
    (``scale="linear"``) or of their logarithms (``"log"``). A class is flagged when its
    index exceeds ``threshold`` and, with ``max_ratio``, its norm is also at most
    ``max_ratio`` times the median norm."""
    if scale not in ("linear", "log"):
        raise ConfigError(f"scale must be linear or log, got {scale!r}")
    # mask norms are sizes: on a log scale a model whose masks are all large but spread
    # over a wide range is not mistaken for one with a single small mask
    v = l1.clamp_min(1e-6).log() if scale == "log" else l1
    median = v.median()
    mad = 1.4826 * (v - median).abs().median().clamp_min(1e-12)
    index = (median - v) / mad
    hit = index > threshold
    if max_ratio is not None:
        # a trigger is a small stamp; a robust model needs large masks for every class,
        # so a class whose mask is only somewhat smaller than the rest is no backdoor
        hit &= l1 <= max_ratio * l1.median()
    flagged = [int(k) for k in hit.nonzero().flatten()]
    return {"l1": l1.tolist(), "anomaly_index": index.tolist(), "flagged": flagged,
            "backdoored": bool(flagged), "threshold": threshold, "scale": scale,
            "max_ratio": max_ratio}
