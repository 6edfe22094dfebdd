"""What every built-in probe shares: a fixed pool of entries, sampled by seed.

A probe lists its whole pool (:meth:`PoolProbe.pool`) in a fixed order; entry ``i``
becomes the attempt ``"<probe>:<i>"`` whatever the seed, so ids are stable and a run can
resume. ``attempts(limit=k, seed=s)`` draws ``k`` distinct entries with
:func:`~bastion.redteam.base.seeded` (``s``, probe name) and returns them in pool order.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import ConfigError
from bastion.redteam.base import AppConfig, Attempt, Probe, seeded

#: longest user turn a probe writes: a 135M model with a 2k-token context must still
#: have room for the system prompt, documents and an answer
MAX_TURN_CHARS = 1500

#: where jailbreak templates expect the user's request
_PLACEHOLDER = re.compile(r"\[(?:insert prompt here|prompt|insert x|input)\\?\]", re.I)


@dataclass(frozen=True)
class Entry:
    """One pool entry: the user turns and what goes with them (see :class:`Attempt`)."""

    turns: tuple[str, ...]
    documents: tuple[str, ...] = ()
    marker: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class PoolProbe(Probe):
    """A probe whose attempts are entries of a fixed pool."""

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        """Every entry, in a fixed order (index = attempt id)."""
        raise NotImplementedError

    def attempts(self, app: AppConfig, *, limit: int | None = None,
                 seed: int = 0) -> list[Attempt]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"probe {self.name!r}: limit must be an int >= 0 or None, "
                              f"got {limit!r}")
        entries = self.pool(app)
        chosen: Sequence[int] = range(len(entries))
        if limit is not None and limit < len(entries):
            chosen = sorted(seeded(seed, self.name).sample(range(len(entries)), limit))
        return [Attempt(id=f"{self.name}:{i}", probe=self.name, family=self.family,
                        goal=self.goal, turns=entries[i].turns,
                        documents=entries[i].documents, marker=entries[i].marker,
                        meta={"source": self.source, **entries[i].meta})
                for i in chosen]


def partner(i: int, n: int, salt: int = 0) -> int:
    """The index in ``[0, n)`` paired with pool entry ``i``: a fixed permutation, so
    consecutive entries get unrelated partners and ``n`` entries cover all of them."""
    if n <= 0:
        raise ConfigError("cannot pair with an empty list; is the data file empty?")
    stride = 37
    while math.gcd(stride, n) != 1:
        stride += 2
    return (i * stride + salt) % n


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a sentence or word end if one
    lies in the last fifth of the allowance."""
    if len(text) <= limit:
        return text
    head = text[:max(limit, 0)]
    for stop in (". ", "\n", " "):
        cut = head.rfind(stop)
        if cut >= 0.8 * limit:
            return head[:cut + 1].rstrip()
    return head


def wrap(template: str, request: str, limit: int = MAX_TURN_CHARS) -> str:
    """A jailbreak ``template`` carrying ``request``: in its placeholder when it has one
    and fits, else the template's opening (clipped so the whole fits ``limit``) followed
    by the request."""
    filled = _PLACEHOLDER.sub(lambda _: request, template)
    if filled != template and len(filled) <= limit:
        return filled
    head = _PLACEHOLDER.sub("the request below", template)
    return f"{clip(head, limit - len(request) - 2)}\n\n{request}"


def marker_for(probe: str, index: int) -> str:
    """A marker string unique to one entry, stable across runs, unlikely in any answer."""
    digest = hashlib.sha256(f"{probe}:{index}".encode()).hexdigest()[:8].upper()
    return f"ZQX-{digest}"
