"""Out-of-distribution detectors, their adaptive evaluation, and a guarded deployment.

    >>> from bastion.ood import make, load_set, detection, Guarded
    >>> det = make("mahalanobis").fit(model, bastion.data.load("mnist", "train", 10000))
    >>> detection(det.score(x_id), det.score(load_set("fashion-mnist", 1000))).auroc

Every detector follows one protocol (:class:`Detector`): ``fit(model, data)``, then
``score(x) -> (N,)``, higher = more anomalous. See docs/ood.md.
"""

from bastion.ood.adaptive import ScoreAttack, attack_all, attack_scores
from bastion.ood.base import Detector
from bastion.ood.energy import Energy
from bastion.ood.guarded import Guarded
from bastion.ood.knn import KNN
from bastion.ood.mahalanobis import Mahalanobis, RelativeMahalanobis
from bastion.ood.maxlogit import MaxLogit
from bastion.ood.metrics import (
    Detection,
    aupr,
    auroc,
    detection,
    fpr_at_tpr,
    threshold_at_tpr,
)
from bastion.ood.msp import MSP
from bastion.ood.odin import ODIN
from bastion.ood.registry import DETECTORS, make
from bastion.ood.sets import SETS, load_set, to_shape
from bastion.ood.vim import ViM

__all__ = [
    "DETECTORS", "KNN", "MSP", "ODIN", "SETS", "Detection", "Detector", "Energy", "Guarded",
    "Mahalanobis", "MaxLogit", "RelativeMahalanobis", "ScoreAttack", "ViM", "attack_all",
    "attack_scores", "aupr", "auroc", "detection", "fpr_at_tpr", "load_set", "make",
    "threshold_at_tpr", "to_shape",
]
