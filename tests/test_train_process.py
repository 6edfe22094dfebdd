"""Training in real processes: kill -9 and resume, torchrun with 2 processes, DP-SGD."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bastion.common.records import read
from bastion.train import TrainConfig, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--model", "mlp", "--data", "digits", "--eps", "0.1", "--lr", "0.003", "--steps", "2",
        "--val-holdout", "200", "--val-n", "100", "--val-steps", "3", "--eval-n", "100",
        "--eval-steps", "5", "--no-progress"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = torch.load(path, weights_only=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mid_epoch_checkpoint(log: Path) -> bool:
    if not log.exists():
        return False
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return any(line["kind"] == "checkpoint" and line["batch"] > 0 for line in lines)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_rerun_gives_the_weights_of_an_uninterrupted_run(
        tmp_path: Path) -> None:
    # 320 train images / batch 16 = 20 batches per epoch, a checkpoint every 3.
    args = [sys.executable, "-m", "bastion.train", "--method", "trades", "--epochs", "2",
            "--batch-size", "16", "--train-n", "320", "--checkpoint-every", "3", "--seed", "7",
            *TINY]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not mid_epoch_checkpoint(killed / "train.jsonl"):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "last.pt").exists(), "the kill should land before the end"
    subprocess.run([*args, "--out", str(killed)], env=ENV, check=True, capture_output=True)
    subprocess.run([*args, "--out", str(clean)], env=ENV, check=True, capture_output=True)
    resumed = [line for line in read(killed / "train.jsonl") if line["kind"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["position"]["batch"] > 0  # resumed mid-epoch
    for name in ("last.pt", "best.pt"):
        a, b = weights(killed / name), weights(clean / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    epochs_a = [line["val"] for line in read(killed / "train.jsonl") if line["kind"] == "epoch"]
    epochs_b = [line["val"] for line in read(clean / "train.jsonl") if line["kind"] == "epoch"]
    assert epochs_a == epochs_b


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_and_only_rank_0_writes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "bastion.train", "--out", str(out),
           "--method", "pgd", "--epochs", "2", "--batch-size", "64", "--train-n", "320",
           "--checkpoint-every", "2", *TINY]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = read(out / "train.jsonl")
    assert lines[0]["kind"] == "run" and lines[0]["world_size"] == 2
    assert len({line["run_id"] for line in lines}) == 1
    # 320 images over 2 ranks at 32 each: 5 batches, checkpoints at 2, 4 and the end
    assert [line["batch"] for line in lines if line["kind"] == "checkpoint"] == \
        [2, 4, 0, 2, 4, 0]
    assert [line["epoch"] for line in lines if line["kind"] == "epoch"] == [0, 1]
    assert lines[-1]["kind"] == "final" and lines[-1]["clean_test_accuracy"] > 0.2
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == \
        ["best.pt", "last.pt", "state.pt"]
    assert list(out.glob("*.tmp")) == []
    assert done.stderr.count("best epoch") == 1  # one summary: rank 0's


@pytest.mark.slow
def test_dp_sgd_reports_a_finite_epsilon_that_grows_with_epochs(tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    cfg = TrainConfig(method="standard", model="mlp", data="digits", eps=0.1, epochs=2,
                      batch_size=32, lr=0.01, train_n=320, val_holdout=200, val_n=100, val_steps=3,
                      eval_n=100, eval_steps=5, progress=False, dp=True,
                      dp_noise_multiplier=1.0, dp_max_grad_norm=1.0, dp_delta=1e-4)
    with pytest.warns(UserWarning):  # Opacus: "Secure RNG turned off"
        summary = train(cfg, tmp_path, log=lambda _: None)
    assert summary is not None
    eps = [line["dp_epsilon"] for line in read(tmp_path / "train.jsonl")
           if line["kind"] == "epoch"]
    assert len(eps) == 2 and all(0 < e < float("inf") for e in eps)
    assert eps[1] > eps[0]
    final = summary["training"]["dp"]
    assert final["epsilon"] == pytest.approx(eps[1]) and final["delta"] == 1e-4
