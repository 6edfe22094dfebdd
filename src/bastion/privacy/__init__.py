"""Model theft and privacy: output defences, model extraction, membership inference,
DP-SGD audits and model inversion.

    from bastion.privacy import ATTACKS, Recipe, build_defense, extract, membership_audit, steal
    from bastion.privacy.dp_audit import one_run_audit
    from bastion.privacy.inversion import invert_classes
    from bastion.privacy.stealing import make_extraction
"""

from __future__ import annotations

from bastion.privacy._train import Recipe
from bastion.privacy.defenses import DEFENSES, build_defense
from bastion.privacy.extraction import ExtractionResult, extract, steal
from bastion.privacy.membership import MembershipResult, membership_audit
from bastion.privacy.mia import ATTACKS, MembershipAttack, Observations, get_attack
from bastion.privacy.stealing import make_extraction

__all__ = ["ATTACKS", "DEFENSES", "ExtractionResult", "MembershipAttack", "MembershipResult",
           "Observations", "Recipe", "build_defense", "extract", "get_attack",
           "make_extraction", "membership_audit", "steal"]
