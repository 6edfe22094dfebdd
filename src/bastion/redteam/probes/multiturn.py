"""The ``multiturn`` family: a scripted crescendo from a benign topic to the request.

Each script (3 to 5 user turns in ``data/crescendo.jsonl``) opens with a harmless
question about a topic and escalates until the last turn asks the harmful request; every
script runs over every topic. The runner sends the turns in one conversation, so each
answer is in the context of the next turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import Entry, PoolProbe
from bastion.redteam.sources import own


@register
class CrescendoProbe(PoolProbe):
    """Every crescendo script over every topic."""

    name = "crescendo"
    family = "multiturn"
    goal = "comply"
    description = ("3-5 user turns escalating from a benign question about a topic to a "
                   "harmful request about it")
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        rows = own("crescendo")
        topics = [r for r in rows if r["kind"] == "topic"]
        scripts = [r["turns"] for r in rows if r["kind"] == "script"]
        return [Entry(turns=tuple(t.format(topic=topic["topic"], request=topic["request"])
                                  for t in script),
                      meta={"script": s, "topic": topic["topic"],
                            "request": topic["request"]})
                for s, script in enumerate(scripts) for topic in topics]
