"""Interval statistics for measured rates: every rate bastion reports carries one.

    wilson_interval(3, 200)          # (0.0051..., 0.0431...): 3 of 200, two-sided 95%
    interval_list((0.01, 0.05), 100, 2)   # [1.0, 5.0], for JSON, in percentage points
"""

from __future__ import annotations

import math

from bastion.errors import InputError

#: the normal quantile of a two-sided 95% interval.
_Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = _Z95) -> tuple[float, float] | None:
    """Wilson score interval ``(low, high)`` for a proportion ``k / n`` (two-sided 95%
    with the default ``z``); ``None`` when ``n == 0``. Unlike ``p +- z * se`` it stays in
    [0, 1] and is not empty at ``k = 0``: 0 evaded of 200 still allows up to 1.9%.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise InputError(f"need 0 <= k <= n for a proportion, got k={k}, n={n}")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # at k = 0 (k = n) the low (high) end is exactly 0 (1); rounding would leave 1e-17
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def interval_list(interval: tuple[float, float] | None, scale: float = 1.0,
                  digits: int | None = None) -> list[float] | None:
    """``interval`` as a JSON list, times ``scale`` and rounded to ``digits`` (``None``:
    not rounded); ``None`` stays ``None``."""
    if interval is None:
        return None
    return [scale * v if digits is None else round(scale * v, digits) for v in interval]
