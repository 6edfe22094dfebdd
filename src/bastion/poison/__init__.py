"""Training-time attacks, for evaluation, and the checks that catch them (docs/poison.md).

- attacks (one file each): :class:`BadNets` patch, :class:`Blended` pattern,
  :class:`CleanLabel` (labels untouched), :class:`LabelFlip`; from text with
  :func:`parse_poison` (``badnets:rate=0.1,target=0``); registry :data:`ATTACKS`.
- curation detectors over penultimate features: :class:`SpectralSignature`,
  :class:`ActivationClustering`, :class:`KnnOutlier` (registry :data:`DETECTORS`), run
  together by :func:`audit`.
- model scan :class:`NeuralCleanse`; inference filter :class:`Strip` and the
  :class:`StripFiltered` wrapper.
"""

from __future__ import annotations

from bastion.poison.audit import DETECTORS, audit
from bastion.poison.badnets import BadNets
from bastion.poison.base import PoisonAttack, Poisoned
from bastion.poison.blended import Blended
from bastion.poison.clean_label import CleanLabel
from bastion.poison.cleanse import NeuralCleanse
from bastion.poison.clustering import ActivationClustering
from bastion.poison.label_flip import LabelFlip
from bastion.poison.outlier import KnnOutlier
from bastion.poison.registry import ATTACKS, parse_poison
from bastion.poison.spectral import SpectralSignature
from bastion.poison.strip import Strip, StripFiltered

__all__ = ["ATTACKS", "DETECTORS", "ActivationClustering", "BadNets", "Blended", "CleanLabel",
           "KnnOutlier", "LabelFlip", "NeuralCleanse", "PoisonAttack", "Poisoned",
           "SpectralSignature", "Strip", "StripFiltered", "audit", "parse_poison"]
