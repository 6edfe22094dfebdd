"""Certified robustness: proofs that no input in a ball changes the prediction.

- bound propagation (:mod:`~bastion.certify.bounds`, :mod:`~bastion.certify.crown`,
  :mod:`~bastion.certify.alpha`): IBP, CROWN, CROWN-IBP and alpha-CROWN bounds on the
  margins of feed-forward ReLU networks, Linf and L2 (deterministic certificates);
- randomized smoothing (:mod:`~bastion.certify.smoothing`): L2 radii of the smoothed
  classifier, with probability >= 1 - alpha (any model);
- certified training (:mod:`~bastion.certify.training`): IBP and CROWN-IBP losses.

>>> from bastion.certify import certify
>>> cert = certify(model, x, y, ThreatModel("Linf", 0.1), method="crown")
>>> cert.certified.float().mean()          # certified accuracy
"""

from __future__ import annotations

from bastion.certify.alpha import alpha_crown_margins
from bastion.certify.api import METHODS, Certificate, SmoothingConfig, certify
from bastion.certify.bounds import (
    Network,
    compile_network,
    ibp_margins,
    interval_bounds,
    margin_spec,
)
from bastion.certify.chain import Normalize, layers_of
from bastion.certify.crown import crown_margins
from bastion.certify.ops import Operator
from bastion.certify.registry import OPERATORS
from bastion.certify.training import (
    Schedule,
    certified_loss,
    robust_cross_entropy,
    train_certified,
)

__all__ = [
    "METHODS",
    "OPERATORS",
    "Certificate",
    "Network",
    "Normalize",
    "Operator",
    "Schedule",
    "SmoothingConfig",
    "alpha_crown_margins",
    "certified_loss",
    "certify",
    "compile_network",
    "crown_margins",
    "ibp_margins",
    "interval_bounds",
    "layers_of",
    "margin_spec",
    "robust_cross_entropy",
    "train_certified",
]
