"""The evaluation runner: aggregation, honesty checks, determinism and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import bastion.evaluation.runner as runner
from bastion import FGSM, PGD, ThreatModel, evaluate
from bastion.attacks.base import Attack, AttackResult, Passes
from bastion.errors import BastionError, ConfigError, StateError


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)).eval()


def tiny_data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = tiny_model()(x).argmax(1)  # the model is right on every sample
    y[:6] = (y[:6] + 1) % 3  # ...except these six
    return x, y


def numbers(result: runner.Evaluation) -> dict:
    out = result.to_dict()
    out.pop("seconds")
    return out


def test_accuracies_are_consistent():
    x, y = tiny_data()
    res = evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.2), [FGSM(), PGD(steps=10)],
                   eps_sweep=[0.05, 0.1], batch_size=16)
    assert res.n == 60
    assert res.clean_accuracy == pytest.approx(54 / 60)
    assert [s["eps"] for s in res.sweep] == [0.05, 0.1, 0.2]
    for point in res.sweep:
        assert point["robust_accuracy"] <= min(point["per_attack"].values()) + 1e-12
        assert max(point["per_attack"].values()) <= res.clean_accuracy + 1e-12
    assert res.per_attack == res.sweep[-1]["per_attack"]
    assert res.robust_accuracy == res.sweep[-1]["robust_accuracy"]
    # PGD works from the same start as FGSM's direction and iterates: it must break more here.
    assert res.per_attack["pgd"] <= res.per_attack["fgsm"]
    assert res.passes["pgd"]["backward"] > res.passes["fgsm"]["backward"] > 0


def test_zero_eps_gives_clean_accuracy():
    x, y = tiny_data()
    res = evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.0), [PGD(steps=3)])
    assert res.robust_accuracy == res.clean_accuracy


def test_same_seed_same_numbers_other_seed_may_differ():
    x, y = tiny_data()
    model, threat = tiny_model(), ThreatModel("L2", 0.6)
    a = evaluate(model, (x, y), threat, [PGD(steps=5)], seed=3, batch_size=16)
    b = evaluate(model, (x, y), threat, [PGD(steps=5)], seed=3, batch_size=16)
    assert numbers(a) == numbers(b)


class Noisy(nn.Module):
    """A randomized defense: Gaussian noise on the input, drawn from torch's global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + 0.3 * torch.randn_like(x))


def test_randomized_model_same_seed_same_numbers_and_caller_rng_untouched():
    x, y = tiny_data()
    threat = ThreatModel("Linf", 0.1)
    first, second = Noisy().eval(), Noisy().eval()  # (tiny_model seeds the global RNG)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = evaluate(first, (x, y), threat, [PGD(steps=5)], seed=3, batch_size=16)
    assert torch.equal(torch.get_rng_state(), before)  # evaluate leaves the caller's RNG alone
    torch.manual_seed(999)  # a different global state must not change the numbers
    b = evaluate(second, (x, y), threat, [PGD(steps=5)], seed=3, batch_size=16)
    assert numbers(a) == numbers(b)
    # The noise really is drawn: without the per-unit seeding, two forwards differ.
    model = Noisy().eval()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


class Liar(Attack):
    """Claims success everywhere but returns the clean inputs."""

    name = "liar"

    def _run(self, model, x, y, threat, target, generator):
        return AttackResult(x_adv=x.clone(), success=torch.ones_like(y, dtype=torch.bool),
                            passes=Passes())


class Escaper(Attack):
    """Returns points far outside the ball."""

    name = "escaper"

    def _run(self, model, x, y, threat, target, generator):
        return AttackResult(x_adv=threat.clip(x + 0.9), success=torch.ones_like(y,
                            dtype=torch.bool), passes=Passes())


def test_claimed_successes_are_rechecked():
    x, y = tiny_data()
    res = evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), [Liar()])
    assert res.robust_accuracy == res.clean_accuracy


def test_attack_leaving_the_ball_is_an_error():
    x, y = tiny_data()
    with pytest.raises(BastionError, match="outside the threat model"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), [Escaper()])


def test_bad_arguments_are_refused():
    x, y = tiny_data()
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), batch_size=0)
    with pytest.raises(ConfigError, match="at least one attack"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), [])
    with pytest.raises(ConfigError, match="eps"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), eps_sweep=[-1.0])


def test_duplicate_attack_names_are_made_unique():
    named = runner.name_attacks([PGD(steps=1), PGD(steps=2), FGSM()])
    assert list(named) == ["pgd", "pgd-2", "fgsm"]


def test_resume_after_interrupt_gives_identical_numbers(tmp_path, monkeypatch):
    x, y = tiny_data()
    model, threat = tiny_model(), ThreatModel("Linf", 0.15)
    kwargs = dict(eps_sweep=[0.05], batch_size=16, seed=7)
    reference = evaluate(model, (x, y), threat, [FGSM(), PGD(steps=8)], **kwargs)

    state = tmp_path / "state.json"
    real_unit = runner._run_unit
    calls = {"n": 0}

    def interrupted_unit(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_unit(*args, **kw)

    monkeypatch.setattr(runner, "_run_unit", interrupted_unit)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, (x, y), threat, [FGSM(), PGD(steps=8)], state=state, **kwargs)
    assert len(json.loads(state.read_text())["units"]) == 2

    ran = {"n": 0}

    def counting_unit(*args, **kw):
        ran["n"] += 1
        return real_unit(*args, **kw)

    monkeypatch.setattr(runner, "_run_unit", counting_unit)
    resumed = evaluate(model, (x, y), threat, [FGSM(), PGD(steps=8)], state=state, **kwargs)
    assert ran["n"] == 8 - 2  # 2 eps x 4 batches, two of them already done
    assert numbers(resumed) == numbers(reference)


def test_state_of_another_run_is_refused(tmp_path):
    x, y = tiny_data()
    state = tmp_path / "state.json"
    evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), [FGSM()], state=state)
    with pytest.raises(StateError, match="different run"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.2), [FGSM()], state=state)
    state.write_text("{not json")
    with pytest.raises(StateError, match="delete it"):
        evaluate(tiny_model(), (x, y), ThreatModel("Linf", 0.1), [FGSM()], state=state)


@pytest.mark.slow
def test_kill_9_then_rerun_matches_uninterrupted_run(tmp_path):
    """A real SIGKILL mid-run, then the same command again: same numbers as a clean run."""
    base = [sys.executable, "-m", "bastion.cli", "evaluate", "--model", "advertorch-lenet5-adv",
            "--n", "200", "--batch-size", "25", "--attack", "pgd", "--steps", "20",
            "--no-progress", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    state = tmp_path / "state.json"
    proc = subprocess.Popen([*base, "--state", str(state), "--json", str(tmp_path / "a.json")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and len(json.loads(state.read_text())["units"]) >= 2:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads(state.read_text())["units"])
    assert 2 <= done_before < 8, "the kill should land mid-run"
    assert not (tmp_path / "a.json").exists()
    subprocess.run([*base, "--state", str(state), "--json", str(tmp_path / "a.json")],
                   env=env, check=True, capture_output=True)
    subprocess.run([*base, "--json", str(tmp_path / "b.json")], env=env, check=True,
                   capture_output=True)
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    for key in ("clean_accuracy", "robust_accuracy", "per_attack", "sweep", "passes", "n"):
        assert a[key] == b[key]
    assert 0.8 <= a["robust_accuracy"] <= 0.97
