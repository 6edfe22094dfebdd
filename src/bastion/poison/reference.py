"""Neural Cleanse read against a trusted reference model.

A backdoor is a shortcut that only the poisoned model learnt, so the trigger reversed
for its class works on that model and on no other. A class that is merely easy to reach
(a thick stroke turns many digits into an 8) gives a small mask on every model of that
architecture, and its reversed trigger works on them too. So each class's reversed
trigger (mask and pattern from :meth:`NeuralCleanse.scan`) is stamped on clean images and
fed to a reference: a model of the same architecture trained, by the standard recipe, on
data the user trusts. A class is flagged when its mask is small (at most ``max_ratio``
of the median class's) and its trigger carries over to the reference at most
``max_transfer`` times as often as the median class's trigger does. The share is read
relative to the median because an adversarially trained suspect's triggers all carry
over less (0.1-0.6 of images against 0.7-1.0 for a standard model's). The reference
must be standard-trained: an adversarially trained one resists every small stamp,
clean classes' too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bastion.attacks.base import model_device
from bastion.errors import InputError


@dataclass(frozen=True, kw_only=True)
class ReferenceCheck:
    """Args:
    max_ratio: a flagged class's mask L1 is at most this share of the median class's.
    max_transfer: and its trigger's transfer to the reference is at most this share of
        the median class's transfer.
    batch_size: images per forward pass.
    """

    max_ratio: float = 0.75
    max_transfer: float = 0.25
    batch_size: int = 500

    def transfer(self, reference: nn.Module, triggers: list[dict[str, Any]],
                 x: Tensor) -> list[float]:
        """Per class t, the share of images ``x`` (N, C, H, W) that ``reference`` does not
        already put in t which t's stamp ``(1 - mask) * x + mask * pattern`` sends to t."""
        if x.dim() != 4 or len(x) < 1 or not bool(torch.isfinite(x).all()):
            raise InputError(f"the reference check needs finite clean images (N, C, H, W), "
                             f"got {tuple(x.shape)}")
        if any("pattern" not in t for t in triggers):
            raise InputError("the scan kept no trigger patterns; rescan with this version "
                             "of bastion (delete the Neural Cleanse state file)")
        reference.eval()
        device = model_device(reference)
        plain = self._predict(reference, x, device)
        shares = []
        for t in triggers:
            mask = torch.tensor(t["mask"], device=device)
            pattern = torch.tensor(t["pattern"], device=device)
            stamped = self._predict(reference, x, device, mask, pattern)
            other = plain != t["target"]
            moved = int((stamped[other] == t["target"]).sum())
            shares.append(moved / max(int(other.sum()), 1))
        return shares

    def _predict(self, model: nn.Module, x: Tensor, device: torch.device,
                 mask: Tensor | None = None, pattern: Tensor | None = None) -> Tensor:
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                batch = x[i:i + self.batch_size].to(device)
                if mask is not None and pattern is not None:
                    batch = (1 - mask) * batch + mask * pattern
                out.append(model(batch).argmax(1).cpu())
        return torch.cat(out)

    def verdict(self, l1: list[float], transfer: list[float]) -> dict[str, Any]:
        """Classes whose mask norm (``l1``, pixels) is small and whose trigger does not
        carry over to the reference (``transfer``, shares in [0, 1]), each read against
        the median class's (torch's median: the lower middle value)."""
        if len(l1) != len(transfer):
            raise InputError(f"{len(l1)} mask norms but {len(transfer)} transfer rates")
        median = float(torch.tensor(l1).median())
        typical = max(float(torch.tensor(transfer).median()), 1e-6)
        ratio = [v / median for v in l1]
        relative = [s / typical for s in transfer]
        flagged = [k for k, (r, s) in enumerate(zip(ratio, relative, strict=True))
                   if r <= self.max_ratio and s <= self.max_transfer]
        return {"ratio": [round(r, 4) for r in ratio], "transfer": transfer,
                "relative_transfer": [round(s, 4) for s in relative],
                "flagged": flagged, "backdoored": bool(flagged),
                "max_ratio": self.max_ratio, "max_transfer": self.max_transfer}

    def check(self, scan: dict[str, Any], reference: nn.Module, x: Tensor) -> dict[str, Any]:
        """:meth:`verdict` of a :meth:`NeuralCleanse.scan` result against ``reference``,
        its triggers stamped on images ``x`` (N, C, H, W)."""
        return self.verdict(scan["l1"], self.transfer(reference, scan["triggers"], x))
