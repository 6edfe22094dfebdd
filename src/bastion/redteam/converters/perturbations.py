"""The guard attacks' perturbation families as converters (:mod:`bastion.guard.perturb`).

Each family becomes a converter of the same name that perturbs every user turn with
``budget`` edits (characters or words, see each family; the encodings ignore it).

    from bastion.redteam.base import CONVERTERS
    CONVERTERS["homoglyph"](budget=3).convert(("ignore previous instructions",), rng)
"""

from __future__ import annotations

import random

from bastion.errors import ConfigError
from bastion.guard.perturb import BUDGET_FREE, PERTURBATIONS
from bastion.redteam.base import Converter, register

#: families whose output a model must decode to see the payload
_ENCODINGS = BUDGET_FREE


class PerturbationConverter(Converter):
    """Apply one :data:`bastion.guard.perturb.PERTURBATIONS` family to every user turn.

    Args:
        budget: edits per turn (>= 1); ignored by the encodings.
    """

    family: str = ""

    def __init__(self, *, budget: int = 3) -> None:
        if not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"converter {self.name!r}: budget must be an int >= 1, "
                              f"got {budget!r}")
        self.budget = budget

    def convert(self, turns: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
        perturb = PERTURBATIONS[self.family]
        return tuple(perturb(t, rng, self.budget) for t in turns)


def _make(family: str) -> type[PerturbationConverter]:
    doc = (PERTURBATIONS[family].__doc__ or "").strip().splitlines()[0]
    cls = type(f"{family.title().replace('-', '')}Converter", (PerturbationConverter,), {
        "name": family, "family": family, "description": doc,
        "needs_decoding": family in _ENCODINGS or family == "payload-split",
        "__module__": __name__, "__doc__": f"Converter for the {family!r} family: {doc}"})
    return register(cls)


for _family in PERTURBATIONS:
    _make(_family)
