"""Random proposals for the Square attack (Andriushchenko et al., ECCV 2020).

Images here are (N, C, H, W). Every sample draws its own square windows, so a sample's
proposals do not depend on which other samples share its batch. All randomness comes
from the caller's generator, drawn on the images' device.
"""

from __future__ import annotations

import math

import torch

from bastion.common import draws

# Square attack's schedule: after iteration `bound`, the fraction p of pixels changed
# per update is p_init / divisor (Andriushchenko et al., tuned for 10,000 queries).
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))


def fraction_at(iteration: int, p_init: float, n_queries: int, rescale: bool) -> float:
    """Fraction p of the image an update may change at ``iteration`` (0-based).

    ``rescale`` stretches the 10,000-query schedule over ``n_queries`` (AutoAttack's
    standard version does not: it runs the schedule as is with 5,000 queries).
    """
    if rescale:
        iteration = int(iteration / n_queries * 10000)
    for bound, divisor in _SCHEDULE:
        if iteration <= bound:
            return p_init / divisor
    return p_init / 512


def side_length(p: float, height: int, width: int, smallest: int, odd: bool) -> int:
    """Side of the square window covering about a fraction ``p`` of an H x W image."""
    side = max(round(math.sqrt(p * height * width)), smallest)
    limit = min(height, width)
    if odd and side % 2 == 0:
        side += 1
    if side > limit:
        side = limit if not odd or limit % 2 == 1 else limit - 1
    return max(side, 1)


def random_corners(n: int, height: int, width: int, side: int,
                   generator: draws.Source, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Top-left corners (rows (n,), cols (n,)) of random windows inside the image."""
    rows = draws.randint(generator, 0, height - side + 1, (n,), device=device)
    cols = draws.randint(generator, 0, width - side + 1, (n,), device=device)
    return rows, cols


def random_signs(shape: tuple[int, ...], generator: draws.Source, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """Independent +-1 entries of the given shape."""
    coin = draws.randint(generator, 0, 2, shape, device=device)
    return (2 * coin - 1).to(dtype)


def _window_index(rows: torch.Tensor, cols: torch.Tensor, side: int) -> tuple[torch.Tensor, ...]:
    """Advanced indices selecting each sample's (side x side) window of a (N, C, H, W)."""
    span = torch.arange(side, device=rows.device)
    sample = torch.arange(rows.shape[0], device=rows.device)[:, None, None]
    return sample, (rows[:, None] + span)[:, :, None], (cols[:, None] + span)[:, None, :]


def read_window(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, side: int) -> torch.Tensor:
    """Each sample's window of ``t`` (N, C, H, W) -> (N, C, side, side)."""
    sample, r, c = _window_index(rows, cols, side)
    return t[sample, :, r, c].permute(0, 3, 1, 2)


def write_window(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, side: int,
                 values: torch.Tensor) -> None:
    """Write ``values`` (N, C, side, side) into each sample's window of ``t``, in place."""
    sample, r, c = _window_index(rows, cols, side)
    t[sample, :, r, c] = values.permute(0, 2, 3, 1)


def window_mask(like: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                side: int) -> torch.Tensor:
    """(N, 1, H, W) bool, True inside each sample's window."""
    _, _, height, width = like.shape
    # Two broadcast comparisons instead of a scatter: rows (N, 1, H, 1) & cols (N, 1, 1, W).
    r = torch.arange(height, device=like.device).view(1, 1, height, 1)
    c = torch.arange(width, device=like.device).view(1, 1, 1, width)
    top, left = rows.view(-1, 1, 1, 1), cols.view(-1, 1, 1, 1)
    return (r >= top) & (r < top + side) & (c >= left) & (c < left + side)


def _rings(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(height, width) sum of nested squares around the centre, weight 1/(k+1)^2 for the
    square of half-width k: a peaked, roughly Gaussian bump, unit L2 norm."""
    if height == 0:
        return torch.zeros((0, width), dtype=dtype, device=device)
    r = (torch.arange(height, device=device) - height // 2).abs()
    c = (torch.arange(width, device=device) - width // 2).abs()
    ring = torch.maximum(r[:, None], c[None, :])
    count = max(height // 2, width // 2) + 1
    weights = 1.0 / torch.arange(1, count + 1, device=device, dtype=dtype) ** 2
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[k] = sum of weights from ring k out
    bump = tail[ring]
    return bump / bump.norm()


def square_pattern(side: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(side, side) L2 update pattern: a positive bump on the top half, a negative one on
    the bottom half, unit L2 norm (the paper's two-bump perturbation)."""
    top = _rings(side // 2, side, dtype, device)
    bottom = -_rings(side - side // 2, side, dtype, device)
    pattern = torch.cat([top, bottom], dim=0)
    return pattern / pattern.norm()


def oriented_patterns(n: int, side: int, generator: draws.Source, like: torch.Tensor
                      ) -> torch.Tensor:
    """(n, 1, side, side) patterns, each transposed or not at random."""
    pattern = square_pattern(side, like.dtype, like.device)
    flip = draws.randint(generator, 0, 2, (n, 1, 1, 1), device=like.device).bool()
    return torch.where(flip, pattern.t(), pattern)


def l2_init(x: torch.Tensor, eps: float, generator: draws.Source) -> torch.Tensor:
    """Start of the L2 attack: a grid of two-bump patterns with random signs per sample and
    channel, scaled to L2 norm eps. Returns the perturbation (N, C, H, W), not clipped."""
    n, channels, height, width = x.shape
    side = max(min(height, width) // 5, 1)
    cells_h, cells_w = height // side, width // side
    off_h, off_w = (height - cells_h * side) // 2, (width - cells_w * side) // 2
    signs = random_signs((n, channels, cells_h, cells_w), generator, x.device, x.dtype)
    flip = draws.randint(generator, 0, 2, (n, 1, cells_h, cells_w),
                         device=x.device).bool()
    pattern = square_pattern(side, x.dtype, x.device)
    tiles = torch.where(flip.repeat_interleave(side, 2).repeat_interleave(side, 3),
                        pattern.t().repeat(cells_h, cells_w), pattern.repeat(cells_h, cells_w))
    delta = torch.zeros_like(x)
    delta[:, :, off_h:off_h + cells_h * side, off_w:off_w + cells_w * side] = (
        signs.repeat_interleave(side, 2).repeat_interleave(side, 3) * tiles)
    return eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def l2_update(current: torch.Tensor, x: torch.Tensor, eps: float, side: int,
              generator: draws.Source, who: torch.Tensor, total: int) -> torch.Tensor:
    """One L2 proposal (K, C, H, W) from the current points (not clipped).

    Moves the perturbation's energy from a second random window (cleared) into a first
    one, which gets a fresh signed two-bump pattern plus its old content, sized so the
    whole perturbation keeps norm eps. Random numbers are drawn for all ``total``
    samples of the batch and ``who`` (K,) picks these samples' ones, so a sample's
    proposals do not depend on which others are still being attacked.
    """
    full = total
    height, width = x.shape[2:]
    channels = x.shape[1]
    rows1, cols1 = (t[who] for t in random_corners(full, height, width, side, generator,
                                                   x.device))
    rows2, cols2 = (t[who] for t in random_corners(full, height, width, side, generator,
                                                   x.device))
    signs = random_signs((full, channels, 1, 1), generator, x.device, x.dtype)[who]
    patterns = oriented_patterns(full, side, generator, x)[who]
    delta = current - x
    old = read_window(delta, rows1, cols1, side)
    old_size = old.flatten(2).norm(dim=2)[:, :, None, None]
    both = window_mask(x, rows1, cols1, side) | window_mask(x, rows2, cols2, side)
    size_all = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    size_windows = (delta * both).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    new = patterns * signs + old / (old_size + 1e-12)
    budget = ((eps ** 2 - size_all ** 2).clamp_min(0.0) / channels + size_windows ** 2).sqrt()
    new = new / (new.flatten(2).norm(dim=2)[:, :, None, None] + 1e-12) * budget
    delta = delta * ~window_mask(x, rows2, cols2, side)
    write_window(delta, rows1, cols1, side, new)
    size = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return x + eps * delta / size


def linf_init(x: torch.Tensor, eps: float, generator: draws.Source) -> torch.Tensor:
    """Start of the Linf attack: vertical stripes, each column of each channel moved by
    +eps or -eps at random (N, C, H, W), not clipped."""
    n, channels, _, width = x.shape
    return x + eps * random_signs((n, channels, 1, width), generator, x.device, x.dtype)


def linf_update(current: torch.Tensor, x: torch.Tensor, eps: float, side: int,
                bounds: tuple[float, float], generator: draws.Source, who: torch.Tensor,
                total: int) -> torch.Tensor:
    """One Linf proposal (K, C, H, W): a random window of each sample set to x +- eps, with
    one random sign per channel, clipped to ``bounds``. ``who``/``total`` as for
    :func:`l2_update`.

    A window that this would leave unchanged (same signs as now, or clipping) gets the
    opposite signs instead, so no query is wasted on the current point (the reference
    resamples until the window changes; with one channel the two agree).
    """
    height, width = x.shape[2:]
    channels = x.shape[1]
    # Corners and (one channel) the sign in one pass: the same numbers as separate draws.
    spans = [(0, height - side + 1), (0, width - side + 1)] + ([(0, 2)] if channels == 1 else [])
    drawn = draws.randints(generator, spans, who, total)
    rows, cols = drawn[0], drawn[1]
    coin = (drawn[2] if channels == 1 else
            draws.randint(generator, 0, 2, (total, channels, 1, 1), device=x.device)[who])
    signs = (2 * coin - 1).to(x.dtype).view(-1, channels, 1)
    low, high = bounds
    # Only the windows change, and after the first few hundred queries they are a few
    # pixels wide: compute on them alone (gathered as (K, C, side*side) from the
    # flattened images) and copy the rest of the current point once.
    span = torch.arange(side, device=x.device)
    grid = (span[:, None] * width + span[None, :]).view(1, 1, -1)
    at = ((rows * width + cols).view(-1, 1, 1) + grid).expand(-1, channels, -1)
    origin = x.flatten(2).gather(2, at)
    now = current.flatten(2).gather(2, at)
    target = (origin + eps * signs).clamp(low, high)
    same = (target - now).abs().flatten(1).amax(dim=1) < 1e-7
    flipped = (origin - eps * signs).clamp(low, high)
    proposal = current.clone(memory_format=torch.contiguous_format)
    proposal.view(proposal.shape[0], channels, -1).scatter_(
        2, at, torch.where(same.view(-1, 1, 1), flipped, target))
    return proposal
