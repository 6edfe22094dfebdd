"""Model theft and privacy: output defences, model extraction, membership inference.

    from bastion.privacy import build_defense, extract, make_extraction, membership_audit, steal
"""

from __future__ import annotations

from bastion.privacy.defenses import DEFENSES, build_defense
from bastion.privacy.extraction import ExtractionResult, extract, steal
from bastion.privacy.membership import MembershipResult, membership_audit
from bastion.privacy.stealing import make_extraction

__all__ = ["DEFENSES", "ExtractionResult", "MembershipResult", "build_defense", "extract",
           "make_extraction", "membership_audit", "steal"]
