"""The whole configuration of one training run, as given on the command line."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.train.losses import CLEAN_METHODS, METHODS, LossSettings
from bastion.train.schedules import LR_SCHEDULES
from bastion.zoo.models import ARCHITECTURES

#: fields that do not change the trained weights: a resumed run may change them.
_NOT_FINGERPRINTED = ("progress", "checkpoint_every", "eval_n", "eval_steps", "out_name",
                      "manifest", "allow_unverified")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Units: eps in input units, lr per step,
    ``eps_ramp_epochs`` in epochs (may be fractional), accuracies as fractions.

    Attributes:
        method: ``standard``, ``pgd`` (PGD-AT), ``trades``, ``mart``, ``fgsm`` (FGSM-RS) or
            ``gaussian`` (noise augmentation with ``noise_sigma``, for smoothing).
        model: architecture name from :data:`bastion.zoo.models.ARCHITECTURES`.
        data: ``bastion.data`` name. Its ``val`` split validates when it has one (MNIST:
            10,000 images); otherwise the last ``val_holdout`` train images are held out.
        batch_size: global batch size, split evenly over torchrun processes.
        lr_schedule: ``constant``, ``piecewise`` (divide by 10 at each fraction of training
            in ``lr_milestones``) or ``onecycle`` (see :mod:`bastion.train.schedules`).
        train_n: use only the first ``train_n`` training images (None: all).
        val_n, val_steps: validation samples per epoch and PGD steps of the robust check.
        eval_n, eval_steps: test samples and PGD steps of the final evaluation (the card).
        co_drop: catastrophic-overfitting guard: stop when robust validation accuracy
            falls more than this below its best while clean accuracy stays above the
            robust one by more than it (None: off).
        checkpoint_every: save a resumable checkpoint every this many batches (and at
            every epoch end).
        dp, dp_noise_multiplier, dp_max_grad_norm, dp_delta: DP-SGD through Opacus.
        also: further threat models to train against, as (norm, eps) pairs, beside
            (norm, eps); ``combine`` says how (``max`` or ``avg``,
            :mod:`bastion.train.multi`). Validation and the card use (norm, eps).
        poison: plant a poisoning attack in the training data, e.g.
            ``badnets:rate=0.1,target=0`` (:mod:`bastion.poison`), to measure a backdoor.
        manifest: provenance manifest the training data must verify against
            (:mod:`bastion.data.manifest`); ``allow_unverified`` trains anyway and says so.
    """

    method: str = "pgd"
    model: str = "smallcnn"
    data: str = "mnist"
    norm: str = "Linf"
    eps: float = 0.3
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "piecewise"
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    eps_ramp_epochs: float = 0.0
    steps: int = 10
    step_size: float | None = None
    beta: float = 6.0
    fgsm_alpha: float = 1.25
    noise_sigma: float = 0.25
    train_n: int | None = None
    val_n: int = 1000
    val_holdout: int = 5000
    val_steps: int = 20
    eval_n: int = 1000
    eval_steps: int = 40
    co_drop: float | None = 0.2
    seed: int = 0
    checkpoint_every: int = 100
    device: str = "cpu"
    dp: bool = False
    dp_noise_multiplier: float = 1.0
    dp_max_grad_norm: float = 1.0
    dp_delta: float = 1e-5
    progress: bool = True
    out_name: str = ""
    also: tuple[tuple[str, float], ...] = ()
    combine: str = "max"
    poison: str | None = None
    manifest: str | None = None
    allow_unverified: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of "
                              f"{', '.join(METHODS)}")
        if self.model not in ARCHITECTURES:
            raise ConfigError(f"unknown model {self.model!r}; choose one of "
                              f"{', '.join(ARCHITECTURES)}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got "
                              f"{self.lr_schedule!r}")
        if any(not 0 < m < 1 for m in self.lr_milestones):
            raise ConfigError(f"lr milestones are fractions of training in (0, 1), got "
                              f"{list(self.lr_milestones)}")
        for name in ("epochs", "batch_size", "steps", "val_n", "val_steps", "eval_n",
                     "eval_steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "dp_noise_multiplier", "dp_max_grad_norm", "fgsm_alpha",
                     "noise_sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value}")
        if self.beta < 0 or self.eps_ramp_epochs < 0 or self.weight_decay < 0:
            raise ConfigError("beta, eps_ramp_epochs and weight_decay must be >= 0")
        if not 0 < self.dp_delta < 1:
            raise ConfigError(f"dp_delta must be in (0, 1), got {self.dp_delta}; use about "
                              "1/number of training samples or less")
        if self.train_n is not None and self.train_n < 2:
            raise ConfigError(f"train_n must be >= 2, got {self.train_n}")
        if self.combine not in ("max", "avg"):
            raise ConfigError(f"combine must be max or avg, got {self.combine!r}")
        for norm, eps in self.also:  # ThreatModel validates norm and eps
            ThreatModel(norm=norm, eps=eps)
        if self.also and self.method in CLEAN_METHODS:
            raise ConfigError(f"method {self.method} trains on no threat; drop --also")
        if self.co_drop is not None and not 0 < self.co_drop < 1:
            raise ConfigError(f"co_drop is a fraction in (0, 1), got {self.co_drop}")
        if self.poison is not None:
            from bastion.poison.base import check_rate
            from bastion.poison.registry import parse_poison

            check_rate(parse_poison(self.poison).rate)

    @property
    def losses(self) -> LossSettings:
        return LossSettings(steps=self.steps, step_size=self.step_size, beta=self.beta,
                            fgsm_alpha=self.fgsm_alpha, noise_sigma=self.noise_sigma)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lr_milestones"] = list(self.lr_milestones)
        out["also"] = [list(pair) for pair in self.also]
        return out

    def fingerprint(self) -> str:
        """Hash of every field that decides the trained weights."""
        kept = {k: v for k, v in self.to_dict().items() if k not in _NOT_FINGERPRINTED}
        if self.method != "gaussian":
            # only gaussian training reads it; run folders from before it existed resume
            kept.pop("noise_sigma")
        if not self.also:  # single-threat run folders from before these fields resume
            kept.pop("also")
            kept.pop("combine")
        if self.poison is None:  # run folders from before poisoning existed resume
            kept.pop("poison")
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if "lr_milestones" in kept:
            kept["lr_milestones"] = tuple(kept["lr_milestones"])
        if "also" in kept:
            kept["also"] = tuple((str(n), float(e)) for n, e in kept["also"])
        return cls(**kept)
