"""Sharded evaluation: the split is a partition, and N processes give one process's numbers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion import FGSM, PGD, ThreatModel, evaluate
from bastion.errors import ConfigError
from bastion.evaluation.shard import Shard, rank_device, shard_from_env

THREAT = ThreatModel("Linf", 0.2)


@given(st.integers(1, 9), st.integers(0, 200))
def test_every_unit_runs_on_exactly_one_rank(world: int, units: int) -> None:
    owners = [[r for r in range(world) if Shard(r, world).owns(k)] for k in range(units)]
    assert all(len(o) == 1 for o in owners)
    # round-robin: no rank gets more than one unit above another
    counts = [sum(o == [r] for o in owners) for r in range(world)]
    assert max(counts) - min(counts) <= 1


def test_state_path_gets_a_rank_suffix_only_when_sharded() -> None:
    assert Shard(1, 4).state_path(Path("out/s.json")) == Path("out/s.rank1-of-4.json")
    assert Shard(0, 1).state_path(Path("out/s.json")) == Path("out/s.json")


def test_environment_of_torchrun_is_read() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    shard = shard_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert shard is not None and (shard.rank, shard.world_size, shard.local_rank) == (3, 4, 1)
    assert rank_device("cuda", shard) == "cuda:1" and rank_device("cpu", shard) == "cpu"
    with pytest.raises(ConfigError, match="RANK"):
        shard_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ConfigError, match="integers"):
        shard_from_env({"WORLD_SIZE": "two"})


def thread_ranks(world: int) -> list[Shard]:
    """Shards whose exchange is a barrier between threads: torch.distributed's
    all_gather_object semantics without processes."""
    slots: list[Any] = [None] * world
    barrier = threading.Barrier(world, timeout=60)

    def exchange_for(rank: int) -> Any:
        def exchange(obj: Any) -> list[Any]:
            slots[rank] = obj
            barrier.wait()
            out = list(slots)
            barrier.wait()
            return out
        return exchange

    return [Shard(r, world, exchange=exchange_for(r)) for r in range(world)]


def numbers(result: Any) -> dict[str, Any]:
    out = result.to_dict()
    out.pop("seconds")
    return out


def test_two_ranks_give_the_single_process_numbers_and_keep_own_state(
    trained_mlp, digits_test, tmp_path
) -> None:
    data = (digits_test[0][:60], digits_test[1][:60])
    kwargs: dict[str, Any] = dict(eps_sweep=[0.1], batch_size=16, seed=4)
    attacks = [FGSM(), PGD(steps=4)]
    single = evaluate(trained_mlp, data, THREAT, attacks, **kwargs)
    results: list[Any] = [None, None]

    def run(shard: Shard) -> None:
        results[shard.rank] = evaluate(trained_mlp, data, THREAT, attacks, shard=shard,
                                       state=tmp_path / "state.json", **kwargs)

    threads = [threading.Thread(target=run, args=(s,)) for s in thread_ranks(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert numbers(results[0]) == numbers(results[1]) == numbers(single)
    files = [json.loads((tmp_path / f"state.rank{r}-of-2.json").read_text())["units"]
             for r in range(2)]
    assert not set(files[0]) & set(files[1])
    assert len(files[0]) + len(files[1]) == 2 * 4  # 2 eps x 4 batches, each run once
    assert not (tmp_path / "state.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.slow
def test_torchrun_two_processes_killed_and_resumed_match_one_process(tmp_path) -> None:
    """The real launcher: kill -9 the whole sharded run mid-way, rerun, compare with the
    numbers of one process (computed in this process, which saves starting another)."""
    from bastion import data, zoo
    from bastion.jobs import EvalSpec, build_attacks

    args = ["evaluate", "--model", "mnist-smallcnn-std", "--samples", "80",
            "--batch-size", "20", "--attack", "fgsm", "--attack", "pgd:steps=10",
            "--seed", "3", "--no-progress", "--out", str(tmp_path / "out"),
            "--json", str(tmp_path / "a.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def sharded() -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port()), "-m", "bastion.cli", *args]

    proc = subprocess.Popen(sharded(), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    states = [tmp_path / "out" / "state" / f"00-mnist-smallcnn-std.rank{r}-of-2.json"
              for r in range(2)]

    def done() -> int:
        return sum(len(json.loads(s.read_text())["units"]) for s in states if s.exists())

    deadline = time.time() + 120
    while time.time() < deadline and done() == 0:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.02)
    # torchrun puts its workers in sessions of their own: kill them by pid, then it.
    for pid in _children(proc.pid):
        os.kill(pid, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)  # a surviving worker would go on saving units
    assert 1 <= done() < 4, "the kill should land mid-run"
    assert not (tmp_path / "a.json").exists()
    rerun = subprocess.run(sharded(), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "rank 1/2: evaluating" in rerun.stderr
    assert done() == 4
    spec = EvalSpec(model="mnist-smallcnn-std", n=80, attacks=("fgsm", "pgd:steps=10"),
                    seed=3, batch_size=20)
    single = evaluate(zoo.load(spec.model), data.load("mnist", "test", 80),
                      ThreatModel("Linf", 0.3), build_attacks(spec), batch_size=20, seed=3)
    got = json.loads((tmp_path / "a.json").read_text())
    for key, value in numbers(single).items():
        assert got[key] == json.loads(json.dumps(value)), key
    kinds = [json.loads(line)["kind"]
             for line in (tmp_path / "out" / "record.jsonl").read_text().splitlines()]
    assert kinds[-2:] == ["run", "evaluation"] and kinds.count("evaluation") == 1
