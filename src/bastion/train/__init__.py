"""Adversarial training: PGD-AT, TRADES, MART, FGSM-RS and plain training, resumable,
under ``torchrun``, optionally with DP-SGD. See docs/training.md.

>>> from bastion.train import TrainConfig, train
>>> train(TrainConfig(method="trades", model="smallcnn", eps=0.3, epochs=10), Path("out"))
"""

from __future__ import annotations

from bastion.train.config import TrainConfig
from bastion.train.losses import (
    METHODS,
    LossSettings,
    fgsm_rs_loss,
    mart_loss,
    method_loss,
    pgd_at_loss,
    standard_loss,
    trades_loss,
)
from bastion.train.trainer import train

__all__ = [
    "METHODS", "LossSettings", "TrainConfig", "fgsm_rs_loss", "mart_loss", "method_loss",
    "pgd_at_loss", "standard_loss", "trades_loss", "train",
]
