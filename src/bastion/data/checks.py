"""Checks and conversions for images a user brings: layout, range, NaN, labels.

Every user data source (file, folder, torchvision, Hugging Face) ends here, so the
rules are the same everywhere: images become (N, C, H, W) float32 in [0, 1] and labels
(N,) int64 in [0, classes); anything that cannot be made so unambiguously is refused
with what to do.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bastion.errors import ConfigError, InputError

CHANNELS = (1, 3, 4)


def to_nchw(x: np.ndarray, where: str, notes: list[str]) -> np.ndarray:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) -> (N, C, H, W); NHWC is converted only
    when the channel axis is unambiguous (1, 3 or 4 on one side only)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise InputError(f"{where}: images must be (N, C, H, W), (N, H, W, C) or (N, H, W), "
                         f"got shape {x.shape}")
    first, last = x.shape[1] in CHANNELS, x.shape[3] in CHANNELS
    if first and not last:
        return x
    if last and not first:
        notes.append(f"{where}: images are NHWC {x.shape}; converted to NCHW")
        return np.transpose(x, (0, 3, 1, 2))
    raise InputError(f"{where}: cannot tell the channel axis of shape {x.shape} (1, 3 or 4 "
                     "channels expected on axis 1 or 3, not both or neither); save the "
                     "images as (N, C, H, W)")


def to_unit_range(x: np.ndarray, where: str, notes: list[str]) -> np.ndarray:
    """Pixels as float32 in [0, 1]: integers in [0, 255] are divided by 255 (with a note);
    anything else outside its range is refused."""
    if x.size == 0:
        raise InputError(f"{where}: no images")
    if np.issubdtype(x.dtype, np.floating):
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
        if bad:
            raise InputError(f"{where}: {bad} images hold NaN or infinite values; drop or "
                             "repair them first")
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"{where}: float pixels must lie in [0, 1], found [{low:g}, {high:g}]; "
                "divide 0-255 pixels by 255 or store them as uint8, and undo any "
                "normalisation (give it as --mean/--std instead, so bastion applies it "
                "inside the model)")
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise InputError(f"{where}: integer pixels must lie in [0, 255], found "
                             f"[{low}, {high}]; rescale them to 0-255 (uint8) or to floats "
                             "in [0, 1]")
        notes.append(f"{where}: {x.dtype} pixels in 0-255 divided by 255 to [0, 1]")
        return x.astype(np.float32) / 255.0
    raise InputError(f"{where}: pixels of dtype {x.dtype} are not numbers")


def check_labels(y: np.ndarray, n: int, classes: int | None, where: str) -> tuple[np.ndarray,
                                                                                   int]:
    """Labels as int64 of shape (n,), all in [0, classes); returns them and the class
    count (``max + 1`` when ``classes`` is None)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise InputError(f"{where}: labels must have shape ({n},) to match the images, "
                         f"got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer)
            or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise InputError(f"{where}: labels must be integer class indices, got {y.dtype}")
    y = y.astype(np.int64)
    low, high = int(y.min()), int(y.max())
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes must be >= 1, got {classes}")
    count = classes if classes is not None else high + 1
    if low < 0 or high >= count:
        raise InputError(f"{where}: labels span [{low}, {high}] but there are {count} "
                         f"classes; labels must be 0..{count - 1}: fix the labels or pass "
                         "--classes with the right count")
    return y, count


def checked(x: np.ndarray, y: np.ndarray, *, where: str, classes: int | None,
            notes: list[str], nchw: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(x, y, classes)``: x (N, C, H, W) float32 in [0, 1], y (N,) int64. ``nchw``: the
    layout is known to be (N, C, H, W) (images read from files), so it is not guessed."""
    x = np.asarray(x)
    images = to_unit_range(x if nchw else to_nchw(x, where, notes), where, notes)
    labels, count = check_labels(y, len(images), classes, where)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), count


def parse_resize(text: str | None) -> tuple[int, int] | None:
    """``"H"`` or ``"H,W"`` -> (H, W) in pixels."""
    if text is None:
        return None
    try:
        sizes = [int(p) for p in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise ConfigError(f"--resize takes H or H,W in pixels (e.g. 32 or 224,224), "
                          f"got {text!r}")
    return (sizes[0], sizes[-1])


def resize(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size), bilinear with antialiasing; unchanged when None."""
    if size is None or tuple(x.shape[2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True,
                         align_corners=False).clamp(0.0, 1.0)
