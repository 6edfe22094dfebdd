"""DP-SGD through Opacus (Abadi et al., CCS 2016): per-sample clipping plus Gaussian noise.

Opacus is optional (``pip install 'bastion[dp]'`` or ``pip install opacus``) and imported
only here, only when ``--dp`` is given. We keep our own batch drawing: each step, every
training sample joins the batch independently with probability ``q = 1 / steps per
epoch`` (Poisson sampling, what the privacy accountant assumes), drawn from a generator
seeded by (seed, epoch, batch) so resuming is exact. The RDP accountant then reports the
epsilon spent for the given delta.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bastion.errors import ConfigError, MissingDependencyError

INSTALL = "pip install 'bastion[dp]' (or: pip install opacus==1.6.0)"


def _opacus() -> Any:
    try:
        import opacus
    except ImportError:
        raise MissingDependencyError(f"--dp needs Opacus, which is not installed; "
                                     f"{INSTALL}") from None
    return opacus


class Private:
    """A model and optimiser made differentially private.

    Attributes:
        model: Opacus' per-sample-gradient wrapper; train through it.
        optimizer: clips each sample's gradient to ``max_grad_norm`` and adds noise of
            std ``noise_multiplier * max_grad_norm`` before stepping.
        sample_rate: Poisson sampling probability q per step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, n_train: int,
                 batches: int, noise_multiplier: float, max_grad_norm: float,
                 noise_generator: torch.Generator) -> None:
        opacus = _opacus()
        errors = opacus.validators.ModuleValidator.validate(model, strict=False)
        if errors:
            raise ConfigError(
                "this model cannot be trained with DP-SGD: "
                + "; ".join(str(e) for e in errors)
                + ". BatchNorm mixes samples, so per-sample gradients do not exist: pick a "
                "model without BatchNorm (mlp, smallcnn, lenet5, wong-small) or replace it "
                "with GroupNorm (opacus.validators.ModuleValidator.fix does this)")
        self.noise_multiplier = noise_multiplier
        self.engine = opacus.PrivacyEngine(accountant="rdp")
        # Only the loader's length matters to Opacus (sample rate = 1 / len); we draw
        # the Poisson batches ourselves (poisson_sampling=False leaves the loader alone).
        index = TensorDataset(torch.arange(n_train))
        loader = DataLoader(index, batch_size=-(-n_train // batches))
        self.sample_rate = 1.0 / len(loader)
        self.model, self.optimizer, _ = self.engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader,
            noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
            poisson_sampling=False, noise_generator=noise_generator)

    @contextmanager
    def hooks_off(self) -> Iterator[None]:
        """Input-gradient attacks must not leave per-sample gradients behind."""
        self.model.disable_hooks()
        try:
            yield
        finally:
            self.model.enable_hooks()

    def account_empty_step(self) -> None:
        """An empty Poisson batch still releases a (pure-noise) step: count it."""
        self.engine.accountant.step(noise_multiplier=self.noise_multiplier,
                                    sample_rate=self.sample_rate)

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far for ``delta`` (RDP accountant); 0 before any step."""
        if not self.engine.accountant.history:
            return 0.0
        return float(self.engine.accountant.get_epsilon(delta=delta))

    def state_dict(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.engine.accountant.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.accountant.history = [tuple(h) for h in state["history"]]
