"""Common corruptions, MNIST-C style: seven kinds at five severities, generated offline.

Each corruption maps images (N, C, H, W) in [0, 1] to corrupted images of the same shape
and range; severity 1 is mild, 5 harsh. Random corruptions draw from a generator seeded
by ``(seed, corruption, severity)`` alone, so a data set built with one seed is the same
whatever order or subset of corruptions is asked for.

- ``gaussian-noise``: add N(0, s^2) per pixel;
- ``blur``: Gaussian blur of standard deviation s pixels;
- ``contrast``: pull every pixel toward the image mean by a factor;
- ``fog``: add a smooth random field (coarse noise upsampled bicubically), then rescale;
- ``elastic``: warp by a random displacement field smoothed by a Gaussian (Simard et al.
  2003), of amplitude a pixels;
- ``jpeg``: encode and decode with Pillow at a low quality;
- ``pixelate``: shrink by a factor with box filtering and enlarge back (nearest).

Example:
    >>> noisy = corrupt(x, "gaussian-noise", severity=3, seed=0)
    >>> sets = corrupted_datasets(data.load("mnist", "test", n=1000), seed=0)
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bastion.data.base import Dataset
from bastion.errors import ConfigError

#: the parameter of each corruption at severities 1..5 (units in the module docstring).
LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian-noise": (0.08, 0.16, 0.24, 0.32, 0.4),
    "blur": (0.6, 0.9, 1.2, 1.5, 1.8),
    "contrast": (0.5, 0.35, 0.25, 0.15, 0.08),   # remaining share of the contrast
    "fog": (0.3, 0.45, 0.6, 0.75, 0.9),          # strength of the added field
    "elastic": (1.0, 1.5, 2.0, 2.5, 3.0),        # displacement amplitude in pixels
    "jpeg": (30, 20, 12, 8, 5),                  # Pillow quality
    "pixelate": (0.7, 0.55, 0.45, 0.35, 0.28),   # side kept when shrinking
}
NAMES = tuple(LEVELS)
SEVERITIES = (1, 2, 3, 4, 5)


def corrupt(x: torch.Tensor, name: str, severity: int, *, seed: int = 0) -> torch.Tensor:
    """``x`` (N, C, H, W) in [0, 1] with corruption ``name`` at ``severity`` (1..5)."""
    if name not in LEVELS:
        raise ConfigError(f"unknown corruption {name!r}; choose from {', '.join(NAMES)}")
    if severity not in SEVERITIES:
        raise ConfigError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if x.dim() != 4:
        raise ConfigError(f"corruptions take images (N, C, H, W), got shape {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(_stream(seed, name, severity))
    level = LEVELS[name][severity - 1]
    out = _KINDS[name](x.detach().cpu().float(), level, gen)
    return out.clamp(0.0, 1.0).to(dtype=x.dtype, device=x.device)


def corrupted_datasets(ds: Dataset, *, names: Sequence[str] = NAMES,
                       severities: Sequence[int] = SEVERITIES, seed: int = 0
                       ) -> dict[tuple[str, int], Dataset]:
    """One corrupted copy of ``ds`` per (corruption, severity), labels unchanged; the
    ``split`` of each copy reads e.g. ``"test/blur-3"``."""
    out = {}
    for name in names:
        for sev in severities:
            x = corrupt(ds.x, name, sev, seed=seed)
            out[(name, sev)] = Dataset(x, ds.y, ds.name, f"{ds.split}/{name}-{sev}",
                                       ds.classes, ds.source)
    return out


def _stream(seed: int, name: str, severity: int) -> int:
    """A seed for one (corruption, severity), stable across runs and platforms."""
    return zlib.crc32(f"{seed}/{name}/{severity}".encode())


def _noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=gen)


def _gauss_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def _smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), edges replicated."""
    k = _gauss_kernel(sigma)
    r = k.numel() // 2
    c = x.shape[1]
    out = F.pad(x, (r, r, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, r, r), mode="replicate")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _blur(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return _smooth(x, sigma)


def _contrast(x: torch.Tensor, keep: float, gen: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + keep * (x - mean)


def _fog(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    coarse = torch.rand((n, 1, max(2, h // 7), max(2, w // 7)), generator=gen)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    # Fog lifts the dark background and washes out the strokes: add, then rescale so the
    # brightest pixel stays at most 1.
    out = x + strength * field.clamp(0, 1)
    return out / (1 + strength * 0.5)


def _elastic(x: torch.Tensor, amplitude: float, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    raw = torch.rand((n, 2, h, w), generator=gen) * 2 - 1
    flow = _smooth(raw, 4.0)
    flow = flow / flow.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8) * amplitude
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.stack([xs, ys], dim=-1).expand(n, h, w, 2)
    # pixels -> grid units: the grid spans 2 over (size - 1) pixels
    shift = torch.stack([flow[:, 0] * 2 / max(w - 1, 1), flow[:, 1] * 2 / max(h - 1, 1)], -1)
    return F.grid_sample(x, base + shift, mode="bilinear", padding_mode="border",
                         align_corners=True)


def _per_image(x: torch.Tensor, fn: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """Apply a Pillow transform to every channel image of ``x``, 8-bit round trip."""
    arr = (x.numpy() * 255).round().clip(0, 255).astype(np.uint8)
    out = np.empty_like(arr)
    for i in range(arr.shape[0]):
        for ch in range(arr.shape[1]):
            out[i, ch] = np.asarray(fn(Image.fromarray(arr[i, ch])))
    return torch.from_numpy(out.astype(np.float32) / 255)


def _jpeg(x: torch.Tensor, quality: float, gen: torch.Generator) -> torch.Tensor:
    def encode(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")

    return _per_image(x, encode)


def _pixelate(x: torch.Tensor, keep: float, gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[2], x.shape[3]
    small = (max(1, int(w * keep)), max(1, int(h * keep)))
    return _per_image(x, lambda img: img.resize(small, Image.Resampling.BOX).resize(
        (w, h), Image.Resampling.NEAREST))


_KINDS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "gaussian-noise": _noise, "blur": _blur, "contrast": _contrast, "fog": _fog,
    "elastic": _elastic, "jpeg": _jpeg, "pixelate": _pixelate,
}
