"""Random numbers keyed by sample, so an attack's result does not depend on its batch.

A :class:`SampleRandom` holds one 32-bit key per sample (N,). Every draw has the samples
as its first dimension, and row ``i`` of the ``k``-th draw is a hash of (key ``i``, ``k``,
the element's position in the row) alone: it does not depend on which other samples
share the batch or on the batch's size. The hash is integer arithmetic, so keys, uniform
and integer draws are meant to be the same on every device (normals go through ``log``
and ``cos``). An attack that draws the same sequence of numbers
for a sample whenever that sample is still being attacked then gives the same answer
for it however the data is batched, sharded or re-batched after an out-of-memory error.

:func:`rand`, :func:`randn` and :func:`randint` take either a :class:`SampleRandom` or a
plain ``torch.Generator`` (then they are ``torch.rand`` and friends), so code that draws
through them serves both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) (int64), without any int64 overflow."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (int64 tensor in [0, 2**32) -> same range)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mix32_int(x: int) -> int:
    """:func:`mix32` on a Python integer (no tensor, no device round trip)."""
    x &= _MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


#: (elements per row, device) -> positions times the golden ratio (mod 2**32), reused.
_OFFSETS: dict[tuple[int, str], torch.Tensor] = {}


def _offsets(per_row: int, device: torch.device) -> torch.Tensor:
    key = (per_row, str(device))
    if key not in _OFFSETS:
        if len(_OFFSETS) > 64:  # shapes are few per run; keep the cache small anyway
            _OFFSETS.clear()
        pos = torch.arange(per_row, device=device, dtype=torch.int64)
        _OFFSETS[key] = _mul32(pos, _GOLDEN)
    return _OFFSETS[key]


def sample_keys(seed: int, index: torch.Tensor) -> torch.Tensor:
    """Keys (N,) int64 in [0, 2**32) for samples at positions ``index`` (N,) of a data set.

    The seed is any integer (it is hashed to 32 bits); ``index`` gives each sample's
    global position, so sample 7 gets the same key in every batch that holds it.
    """
    digest = hashlib.sha256(str(int(seed)).encode()).digest()
    salt_a, salt_b = int.from_bytes(digest[:4], "big"), int.from_bytes(digest[4:8], "big")
    index = index.to(torch.int64) & _MASK
    return mix32(mix32(index ^ salt_a) ^ salt_b)


class SampleRandom:
    """Per-sample random streams for N samples (see the module docstring).

    Args:
        keys: (N,) int64 in [0, 2**32), one per sample (:func:`sample_keys`).
        count: how many draws were made before (a fresh stream starts at 0).
    """

    def __init__(self, keys: torch.Tensor, count: int = 0) -> None:
        self.keys = keys
        self.count = count

    @classmethod
    def for_samples(cls, seed: int, index: torch.Tensor) -> SampleRandom:
        """Streams for samples at global positions ``index`` (N,) under ``seed``."""
        return cls(sample_keys(seed, index))

    @classmethod
    def from_generator(cls, generator: torch.Generator, n: int,
                       device: torch.device) -> SampleRandom:
        """Streams for samples 0..n-1 seeded by one draw of ``generator``."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        return cls.for_samples(seed, torch.arange(n, device=device))

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def rows(self, idx: torch.Tensor) -> SampleRandom:
        """The streams of samples ``idx`` (a subset, in that order), at the same count."""
        return SampleRandom(self.keys[idx], self.count)

    def spawn(self, label: int) -> SampleRandom:
        """Independent fresh streams for a sub-task ``label`` (e.g. a cascade's stage)."""
        salt = _mix32_int(label) ^ 0x5BD1E995
        return SampleRandom(mix32(self.keys ^ salt), 0)

    def batch_seed(self) -> int:
        """One integer from every key and the count, for code that needs a global seed
        (a randomized model's own draws). Unlike the draws it depends on the batch."""
        words = self._bits((len(self),)).cpu().tolist()
        return int(hashlib.sha256(repr(words).encode()).hexdigest()[:15], 16)

    def _step(self) -> int:
        """The salt of the next draw; advances the count by one."""
        step = _mix32_int(self.count * _GOLDEN + 0x2545F491)
        self.count += 1
        return step

    def _bits(self, shape: Sequence[int]) -> torch.Tensor:
        """Hash words (shape) in [0, 2**32), int64; advances the count by one."""
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self):
            raise ValueError(f"a per-sample draw needs the {len(self)} samples as its first "
                             f"dimension, got shape {shape}")
        per_row = math.prod(shape[1:])
        row = mix32(self.keys ^ self._step())  # (N,)
        if per_row == 1:
            return row.view(shape)
        return mix32((row[:, None] + _offsets(per_row, self.device)[None, :]) & _MASK
                     ).view(shape)

    def rand(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform in (0, 1), the given shape (N, ...)."""
        bits = self._bits(shape)
        return ((bits.to(torch.float64) + 0.5) / 2.0**32).to(dtype)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal (Box-Muller on two uniforms), the given shape (N, ...)."""
        u1 = self.rand(shape, torch.float64)
        u2 = self.rand(shape, torch.float64)
        normal = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return normal.to(dtype)

    def randint(self, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
        """Integers in [low, high) (int64), the given shape (N, ...)."""
        _check_range(low, high)
        return low + ((self._bits(shape) * (high - low)) >> 32)


    def randints(self, bounds: Sequence[tuple[int, int]], who: torch.Tensor
                 ) -> list[torch.Tensor]:
        """One integer in ``[low, high)`` per sample of ``who`` (K,) for each
        ``(low, high)`` of ``bounds``: the same numbers as that many :meth:`randint`
        calls of shape (N,) in turn, indexed by ``who``, from one hash over (K, len)."""
        for low, high in bounds:
            _check_range(low, high)
        steps = torch.tensor([self._step() for _ in bounds], dtype=torch.int64,
                             device=self.device)
        words = mix32(self.keys[who][:, None] ^ steps[None, :])  # (K, len(bounds))
        return [low + ((words[:, k] * (high - low)) >> 32)
                for k, (low, high) in enumerate(bounds)]


def _check_range(low: int, high: int) -> None:
    if not 0 < high - low < 2**31:
        raise ValueError(f"randint needs 0 < high - low < 2**31, got [{low}, {high})")


Source = torch.Generator | SampleRandom


def rand(source: Source, shape: Sequence[int], *, device: torch.device | str,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.rand`` from a generator, or per-sample uniforms from a SampleRandom."""
    if isinstance(source, SampleRandom):
        return source.rand(shape, dtype).to(device)
    return torch.rand(tuple(shape), generator=source, device=device, dtype=dtype)


def randn(source: Source, shape: Sequence[int], *, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.randn`` from a generator, or per-sample normals from a SampleRandom."""
    if isinstance(source, SampleRandom):
        return source.randn(shape, dtype).to(device)
    return torch.randn(tuple(shape), generator=source, device=device, dtype=dtype)


def randints(source: Source, bounds: Sequence[tuple[int, int]], who: torch.Tensor,
             total: int) -> list[torch.Tensor]:
    """Integers (K,) in each ``[low, high)`` of ``bounds`` for samples ``who`` (K,) of
    ``total``: the draws of ``total`` values each, in turn, indexed by ``who``.

    From a SampleRandom the draws are made for ``who`` alone, in one pass (a sample's
    numbers do not depend on the others); a generator draws all ``total`` each time.
    """
    if isinstance(source, SampleRandom):
        return [t.to(who.device) for t in source.randints(bounds, who.to(source.device))]
    return [torch.randint(low, high, (total,), generator=source, device=who.device)[who]
            for low, high in bounds]


def randint(source: Source, low: int, high: int, shape: Sequence[int], *,
            device: torch.device | str) -> torch.Tensor:
    """``torch.randint`` from a generator, or per-sample integers from a SampleRandom."""
    if isinstance(source, SampleRandom):
        return source.randint(low, high, shape).to(device)
    return torch.randint(low, high, tuple(shape), generator=source, device=device)
