"""Model theft and privacy: output defences, model extraction, membership inference.

    from bastion.privacy import build_defense, extract, membership_audit
"""

from __future__ import annotations

from bastion.privacy.defenses import DEFENSES, build_defense
from bastion.privacy.extraction import ExtractionResult, extract
from bastion.privacy.membership import MembershipResult, membership_audit

__all__ = ["DEFENSES", "ExtractionResult", "MembershipResult", "build_defense", "extract",
           "membership_audit"]
