"""Threat models beyond L-p balls, and the model × threat matrix (docs/threats.md).

>>> from bastion.threats import SpatialThreat, grid_attack, corrupted_datasets, run_matrix
>>> fooled, params = grid_attack(model, x, y, SpatialThreat(max_angle=30, max_shift=3))
>>> section, _ = run_matrix({"mine": model}, dataset, parse_threats("linf:0.3,l1:10"))
"""

from __future__ import annotations

from bastion.threats.corruptions import NAMES as CORRUPTIONS
from bastion.threats.corruptions import corrupt, corrupted_datasets
from bastion.threats.matrix import MatrixThreat, parse_threats, run_matrix
from bastion.threats.spatial import SpatialThreat, first_order_attack, grid_attack

__all__ = [
    "CORRUPTIONS", "MatrixThreat", "SpatialThreat", "corrupt", "corrupted_datasets",
    "first_order_attack", "grid_attack", "parse_threats", "run_matrix",
]
