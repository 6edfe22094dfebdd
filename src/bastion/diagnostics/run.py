"""One diagnosis, check by check: the measurements and the order they run in.

:func:`bastion.diagnostics.diagnose` validates its arguments and hands the work to a
:class:`DiagnosisRun`; each check is timed, logged and handed to ``on_check`` as soon
as it is done, so an interrupted run still shows what it found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bastion.attacks.base import Passes
from bastion.diagnostics import compare, gradients, measure
from bastion.diagnostics.binarize import binarization_test
from bastion.diagnostics.curves import convergence_check, security_curve_check
from bastion.diagnostics.result import skipped
from bastion.errors import InputError
from bastion.evaluation.runner import unit_seed
from bastion.threat import ThreatModel

#: samples the cheap checks look at (a seeded pick): randomness and gradient-health,
#: finite differences, the binarization test.
PROBE_POINTS, FD_POINTS, BIN_POINTS = 256, 64, 64

_RANDOM = "the model is randomised (see the randomness check), so this check's numbers " \
          "would describe one random draw"


class DiagnosisRun:
    """State shared by the checks of one diagnosis on inputs ``x`` (N, ...), labels
    ``y`` (N,) already on the model's device."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, params: dict[str, Any], seed: int,
                 log: Callable[[str], None],
                 on_check: Callable[[dict[str, Any]], None] | None) -> None:
        self.began = time.perf_counter()
        self.model, self.x, self.y, self.threat = model, x, y, threat
        self.params, self.seed, self.log, self.on_check = params, seed, log, on_check
        self.n = int(x.shape[0])
        with torch.no_grad():
            right = model(x).argmax(1) == y
        self.clean = int(right.sum()) / self.n
        self.xc, self.yc = x[right], y[right]
        if self.xc.shape[0] == 0:
            raise InputError(f"the model classifies none of the {self.n} samples correctly, "
                             "so there is nothing to attack; check that the data set "
                             "matches the model")
        self.checks: list[dict[str, Any]] = []
        self.curves: dict[str, Any] = {}
        self.passes: dict[str, dict[str, int]] = {}
        self.random = False

    def generator(self, k: int) -> torch.Generator:
        """Check ``k``'s own random source."""
        return torch.Generator(device=self.x.device).manual_seed(unit_seed(self.seed, k))

    def pick(self, among: torch.Tensor, count: int, k: int) -> torch.Tensor:
        """Up to ``count`` of the indices ``among`` (M,), a seeded pick kept in order."""
        order = torch.randperm(among.numel(), generator=torch.Generator().manual_seed(
            unit_seed(self.seed, k, 0)))[:count].sort().values
        return among[order.to(among.device)]

    def record(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        began = time.perf_counter()
        result = run()
        result["seconds"] = round(time.perf_counter() - began, 3)
        self.checks.append(result)
        state = "skipped" if result.get("skipped") else result["verdict"]
        self.log(f"[{len(self.checks)}] {result['name']}: {state} ({result['seconds']:.1f} s)")
        if self.on_check is not None:
            self.on_check(result)
        return result

    def count(self, label: str, passes: Passes) -> None:
        into = self.passes.setdefault(label, {"forward": 0, "backward": 0})
        into["forward"] += passes.forward
        into["backward"] += passes.backward

    def all(self, surrogate: nn.Module | None, surrogate_name: str) -> None:
        """Run every check, cheapest first."""
        m, xc, yc, threat = self.model, self.xc, self.yc, self.threat
        every = torch.arange(self.n, device=self.x.device)
        mine = torch.arange(xc.shape[0], device=xc.device)
        probe = self.pick(every, PROBE_POINTS, 0)
        rand = self.record(lambda: gradients.randomness(m, self.x[probe]))
        self.random = rand["verdict"] != "pass"
        some = self.pick(mine, PROBE_POINTS, 1)
        self.record(lambda: gradients.gradient_health(m, xc[some], yc[some]))
        few = self.pick(mine, FD_POINTS, 2)
        self.record(lambda: skipped("finite-differences", _RANDOM) if self.random else
                    gradients.finite_differences(m, xc[few], yc[few], threat, self.generator(2)))
        self.record(self._security_curve)
        self.record(self._single_step)
        self.record(self._convergence)
        self.record(self._black_box)
        self.record(lambda: self._transfer(surrogate, surrogate_name))
        bins = self.pick(mine, BIN_POINTS, 8)
        self.record(lambda: skipped("binarization-test", _RANDOM) if self.random else
                    binarization_test(m, xc[bins], threat, steps=self.params["steps"],
                                      step_size=None, generator=self.generator(8)))

    @property
    def base_label(self) -> str:
        restarts = self.params["restarts"]
        return f"pgd-{self.params['steps']}" + (f"x{restarts}" if restarts > 1 else "")

    def _security_curve(self) -> dict[str, Any]:
        steps, restarts = self.params["steps"], self.params["restarts"]
        curve = measure.security_curve(self.model, self.xc, self.yc, self.n, self.threat,
                                       steps=steps, restarts=restarts,
                                       generator=lambda i: self.generator(100 + i),
                                       log=self.log)
        self.main = curve.main
        self.count(self.base_label, curve.passes)
        self.curves["security"] = curve.points
        self.curves["loss"] = {"attack": self.base_label, "loss": "ce",
                               "mean_best_loss": curve.main.loss, "robust": curve.main.robust}
        self.white = self.main.success.clone()
        self.base_acc = (self.xc.shape[0] - int(self.main.success.sum())) / self.n
        return security_curve_check(curve.points, self.n)

    def _single_step(self) -> dict[str, Any]:
        broken, passes = measure.fgsm(self.model, self.xc, self.yc, self.threat)
        self.count("fgsm", passes)
        fgsm_only = int((broken & ~self.main.success).sum())
        self.white |= broken
        fgsm_acc = (self.xc.shape[0] - int(broken.sum())) / self.n
        return compare.single_step_check(self.base_acc, fgsm_acc, self.n,
                                         pgd_label=self.base_label, fgsm_only=fgsm_only)

    def _convergence(self) -> dict[str, Any]:
        steps, restarts = 2 * self.params["steps"], self.params["restarts"] + 1
        label = f"pgd-{steps}x{restarts}"
        self.log(f"convergence: {label} at eps {self.threat.eps:g}")
        broken, passes = measure.strong_pgd(self.model, self.xc, self.yc, self.threat,
                                            steps=steps, restarts=restarts,
                                            generator=self.generator(5))
        self.count(label, passes)
        newly = int((broken & ~self.main.success).sum())
        self.white |= broken
        strong = (self.xc.shape[0] - int(broken.sum())) / self.n
        return convergence_check(self.base_acc, strong, self.n, base_label=self.base_label,
                                 strong_label=label, loss=self.main.loss[:self.params["steps"] + 1],
                                 newly_broken=newly)

    def _black_box(self) -> dict[str, Any]:
        queries = self.params["square_queries"]
        standing = (~self.white).nonzero().squeeze(1)
        chosen = self.pick(standing, self.params["black_box_points"], 6)
        label = f"square-{queries}"
        self.log(f"black-box: {label} on {chosen.numel()} white-box-robust samples")
        broken = torch.zeros(0, dtype=torch.bool)
        if chosen.numel():
            broken, passes = measure.square(self.model, self.xc[chosen], self.yc[chosen],
                                            self.threat, queries=queries,
                                            generator=self.generator(6))
            self.count(label, passes)
        return compare.beaten_check("black-box", attack_label=label, white_label="the "
                                    "white-box attacks (pgd, fgsm)", checked=chosen.numel(),
                                    broken=int(broken.sum()), n=self.n,
                                    extra={"white_box_robust": standing.numel()})

    def _transfer(self, surrogate: nn.Module | None, name: str) -> dict[str, Any]:
        if surrogate is None:
            return skipped("transfer", "no surrogate model was given for this data set; "
                           "pass one (--surrogate NAME) to run it")
        steps = self.params["steps"]
        label = f"pgd-{steps} on {name}"
        self.log(f"transfer: {label}")
        broken, passes = measure.transfer(self.model, surrogate, self.xc, self.yc,
                                          self.threat, steps=steps, generator=self.generator(7))
        self.count(f"transfer-pgd-{steps}", passes)
        standing = ~self.white
        return compare.beaten_check("transfer", attack_label=f"Transfer ({label})",
                                    white_label="the white-box attacks (pgd, fgsm)",
                                    checked=int(standing.sum()),
                                    broken=int((broken & standing).sum()), n=self.n,
                                    extra={"surrogate": name,
                                           "transfer_robust_accuracy":
                                           (self.xc.shape[0] - int(broken.sum())) / self.n})
