"""Training objectives: standard, PGD-AT, TRADES, MART, FGSM with a random start, and
Gaussian noise augmentation (the base classifier of randomized smoothing).

Every method is two phases, kept apart so the trainer can run them on different views
of the model (the inner maximisation on the bare module, the outer loss through
DistributedDataParallel or Opacus' per-sample-gradient wrapper):

- ``perturb(model, x, y, threat, generator, settings) -> x_adv`` (N, ...): the inner
  maximisation; computes input gradients only, leaves no ``.grad`` on parameters.
- ``objective(model, x, x_adv, y, settings) -> loss``: the scalar the optimiser
  minimises, averaged over the batch.

:func:`method_loss` runs both, which is the one-call form of each method
(``method_loss("trades", model, x, y, threat, generator)``).

Mode during the attack (BatchNorm and dropout behave differently in train and eval):
PGD-AT, TRADES and MART craft their examples in **eval** mode, as the TRADES and MART
reference implementations do, so attack iterates neither update BatchNorm running
statistics nor see dropout noise. FGSM-RS crafts its single step in **train** mode, as
Wong et al. do: the step is part of the same training pass. The previous mode is
restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bastion.attacks.steps import ascent_step, input_gradient
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


@dataclass(frozen=True)
class LossSettings:
    """Hyper-parameters of the methods.

    Attributes:
        steps: inner-maximisation steps of PGD-AT, TRADES and MART (K in "PGD-K").
        step_size: size of each inner step in input units; None means ``2.5 * eps / steps``
            (Madry et al.'s rule).
        beta: weight of the robustness term: TRADES' beta (Zhang et al. use 6 on MNIST
            and CIFAR-10) and MART's lambda.
        fgsm_alpha: FGSM-RS step as a multiple of eps (Wong et al. recommend 1.25).
        noise_sigma: std of the Gaussian noise of the ``gaussian`` method, in input units
            (the sigma the model will be smoothed with, Cohen et al. 2019).
    """

    steps: int = 10
    step_size: float | None = None
    beta: float = 6.0
    fgsm_alpha: float = 1.25
    noise_sigma: float = 0.25

    def alpha(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps


@contextmanager
def _mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Put ``model`` in train or eval mode for the block, then restore its mode."""
    was = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(was)


def _kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(p || q) (N,) between the softmax distributions of two logit sets."""
    log_p = F.log_softmax(logits_p, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(logits_q, dim=1))).sum(dim=1)


def perturb_none(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 generator: torch.Generator, settings: LossSettings) -> torch.Tensor:
    """Standard training: no perturbation."""
    return x


def perturb_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                generator: torch.Generator, settings: LossSettings) -> torch.Tensor:
    """PGD on cross-entropy from a uniform random start; returns the *last* iterate
    (Madry et al., ICLR 2018), in eval mode. Used by PGD-AT and MART."""
    alpha = settings.alpha(threat.eps)
    x_adv = threat.random_point(x, generator)
    with _mode(model, train=False):
        for _ in range(settings.steps):
            _, _, grad = input_gradient(model, x_adv, y, None, "ce")
            x_adv = threat.project(ascent_step(x_adv, grad, alpha, threat.norm), x)
    return x_adv.detach()


def perturb_trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                   generator: torch.Generator, settings: LossSettings) -> torch.Tensor:
    """TRADES' inner maximisation (Zhang et al., ICML 2019), in eval mode: start at
    ``x + 0.001 * N(0, I)`` and ascend KL(p(x) || p(x')), which needs no label."""
    alpha = settings.alpha(threat.eps)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_adv = threat.project(x + 0.001 * noise, x)
    with _mode(model, train=False):
        with torch.no_grad():
            clean = model(x)
        for _ in range(settings.steps):
            with torch.enable_grad():
                x_var = x_adv.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(_kl(clean, model(x_var)).sum(), x_var)
            x_adv = threat.project(ascent_step(x_adv, grad, alpha, threat.norm), x)
    return x_adv.detach()


def perturb_fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                    generator: torch.Generator, settings: LossSettings) -> torch.Tensor:
    """FGSM with a random start (Wong, Rice & Kolter, ICLR 2020, "Fast is better than
    free"), in train mode: a uniform point of the ball, one step of ``fgsm_alpha * eps``
    along the gradient sign (Linf) or direction (L2), projected back."""
    start = threat.random_point(x, generator)
    with _mode(model, train=True):
        _, _, grad = input_gradient(model, start, y, None, "ce")
    step = settings.fgsm_alpha * threat.eps
    return threat.project(ascent_step(start, grad, step, threat.norm), x).detach()


def perturb_gaussian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                     generator: torch.Generator, settings: LossSettings) -> torch.Tensor:
    """Gaussian augmentation ``x + noise_sigma * N(0, I)`` (Cohen, Rosenfeld & Kolter,
    ICML 2019): trains the base classifier of a smoothed one. Not clipped to the input
    bounds, as the smoothed classifier's noise is not either; ``threat`` is unused."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + settings.noise_sigma * noise


def objective_ce(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                 settings: LossSettings) -> torch.Tensor:
    """Mean cross-entropy on ``x_adv`` (the clean batch itself for standard training)."""
    return F.cross_entropy(model(x_adv), y)


def objective_trades(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     settings: LossSettings) -> torch.Tensor:
    """TRADES: ``CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x'_i))``. Larger beta trades
    clean accuracy for robustness."""
    logits = model(x)
    logits_adv = model(x_adv)
    return F.cross_entropy(logits, y) + settings.beta * _kl(logits, logits_adv).mean()


def objective_mart(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   settings: LossSettings) -> torch.Tensor:
    """MART (Wang et al., ICLR 2020): boosted cross-entropy on the adversarial example,
    ``-log p_y(x') - log(1 - max_{k != y} p_k(x'))``, plus ``lambda * KL(p(x) || p(x'))``
    weighted per sample by ``1 - p_y(x)`` so misclassified clean samples count more."""
    logits = model(x)
    logits_adv = model(x_adv)
    probs_adv = F.softmax(logits_adv, dim=1)
    others = probs_adv.scatter(1, y[:, None], 0.0)
    # 1e-12 keeps the log finite when the runner-up class takes all the mass.
    bce = F.cross_entropy(logits_adv, y) - torch.log(1 - others.amax(dim=1) + 1e-12).mean()
    p_true = F.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return bce + settings.beta * (_kl(logits, logits_adv) * (1 - p_true)).mean()


Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor, ThreatModel, torch.Generator,
                    LossSettings], torch.Tensor]
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, LossSettings],
                     torch.Tensor]

#: method name -> (inner maximisation, outer objective).
METHODS: dict[str, tuple[Perturb, Objective]] = {
    "standard": (perturb_none, objective_ce),
    "pgd": (perturb_pgd, objective_ce),
    "trades": (perturb_trades, objective_trades),
    "mart": (perturb_pgd, objective_mart),
    "fgsm": (perturb_fgsm_rs, objective_ce),
    "gaussian": (perturb_gaussian, objective_ce),
}

#: methods whose models are judged by clean accuracy (they do not train against eps).
CLEAN_METHODS = ("standard", "gaussian")


def get_method(name: str) -> tuple[Perturb, Objective]:
    """The (perturb, objective) pair of method ``name``."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown training method {name!r}; choose one of "
                          f"{', '.join(METHODS)}") from None


def method_loss(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                threat: ThreatModel, generator: torch.Generator,
                settings: LossSettings | None = None) -> torch.Tensor:
    """Scalar training loss of method ``name`` on a batch ``x`` (N, ...), ``y`` (N,).

    Example:
        >>> loss = method_loss("trades", model, x, y, ThreatModel("Linf", 0.3), gen,
        ...                    LossSettings(beta=6.0))
        >>> loss.backward()
    """
    perturb, objective = get_method(name)
    settings = settings or LossSettings()
    x_adv = perturb(model, x, y, threat, generator, settings)
    return objective(model, x, x_adv, y, settings)


def standard_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                  generator: torch.Generator) -> torch.Tensor:
    """Plain cross-entropy on clean inputs (the baseline; ``threat`` is unused)."""
    return method_loss("standard", model, x, y, threat, generator)


def pgd_at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                generator: torch.Generator, *, steps: int = 10,
                step_size: float | None = None) -> torch.Tensor:
    """PGD adversarial training (Madry et al., 2018): CE on PGD-``steps`` examples."""
    return method_loss("pgd", model, x, y, threat, generator,
                       LossSettings(steps=steps, step_size=step_size))


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                generator: torch.Generator, *, beta: float = 6.0, steps: int = 10,
                step_size: float | None = None) -> torch.Tensor:
    """TRADES (Zhang et al., 2019): clean CE + beta * KL to the KL-maximising example."""
    return method_loss("trades", model, x, y, threat, generator,
                       LossSettings(steps=steps, step_size=step_size, beta=beta))


def mart_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
              generator: torch.Generator, *, beta: float = 6.0, steps: int = 10,
              step_size: float | None = None) -> torch.Tensor:
    """MART (Wang et al., 2020): boosted CE on PGD examples + weighted KL."""
    return method_loss("mart", model, x, y, threat, generator,
                       LossSettings(steps=steps, step_size=step_size, beta=beta))


def fgsm_rs_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 generator: torch.Generator, *, alpha: float = 1.25) -> torch.Tensor:
    """FGSM-RS (Wong et al., 2020): CE on one random-start FGSM step of ``alpha * eps``."""
    return method_loss("fgsm", model, x, y, threat, generator, LossSettings(fgsm_alpha=alpha))
