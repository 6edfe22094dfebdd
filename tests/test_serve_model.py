"""`bastion serve-model`: keys, answers in each mode after the output defence, 422 for
bad inputs, rate limits (in-process and Redis), a PRADA-flagged key escalated and
throttled without being told, and extraction over a real HTTP port."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient

import test_service_support as support
from bastion import zoo
from bastion.privacy.defenses import build_defense
from bastion.privacy.extraction import extract, steal
from bastion.privacy.remote import RemoteClassifier
from bastion.privacy.stealing import Jacobian
from bastion.service.model_app import create_model_app
from bastion.service.predict import ServedModel, load_served
from test_service_support import config, free_port

# fixtures, by name
redis_url, redis_prefix = support.redis_url, support.redis_prefix
MODEL = "mnist-smallcnn-std"


@functools.cache
def served(defense: str = "none", answer: str = "label") -> ServedModel:
    return load_served(MODEL, defense=defense, answer=answer)


@functools.cache
def images(n: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.rand((n, 1, 28, 28), generator=gen) ** 3  # mostly dark, like digits


def app_with_key(tmp_path: Path, model: ServedModel, **overrides: Any) -> tuple[Any, dict]:
    app = create_model_app(config(tmp_path, **overrides), model)
    store = app.state.service.store
    headers = {role: {"Authorization": f"Bearer {store.create_key(role, role).key}"}
               for role in ("client", "reviewer")}
    return app, headers


def rows(x: torch.Tensor) -> list[list[float]]:
    return x.reshape(len(x), -1).tolist()


def test_a_key_is_required(tmp_path: Path) -> None:
    app, _ = app_with_key(tmp_path, served())
    client = TestClient(app)
    body = {"inputs": rows(images(1))}
    assert client.post("/v1/predict", json=body).status_code == 401
    wrong = client.post("/v1/predict", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "unknown" in wrong.json()["error"]["message"]


@pytest.mark.parametrize("answer", ["label", "topk:3", "probs"])
def test_answers_in_each_mode_match_the_model(tmp_path: Path, answer: str) -> None:
    app, h = app_with_key(tmp_path, served(answer=answer))
    got = TestClient(app).post("/v1/predict", json={"inputs": rows(images())},
                               headers=h["client"])
    assert got.status_code == 200
    with torch.no_grad():
        probs = torch.softmax(zoo.load(MODEL)(images()), dim=1)
    if answer == "label":
        assert got.json()["labels"] == probs.argmax(1).tolist()
    elif answer == "probs":
        assert torch.allclose(torch.tensor(got.json()["probs"]), probs, atol=1e-5)
    else:
        top = got.json()["top_k"]
        assert [t["labels"] for t in top] == probs.topk(3, dim=1).indices.tolist()
        assert all(len(t["probs"]) == 3 for t in top)


def test_the_output_defence_is_applied(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(defense="label-only", answer="probs"))
    probs = torch.tensor(TestClient(app).post("/v1/predict", json={"inputs": rows(images())},
                                              headers=h["client"]).json()["probs"])
    assert set(probs.flatten().tolist()) == {0.0, 1.0} and (probs.sum(1) == 1).all()
    (tmp_path / "r").mkdir()
    app, h = app_with_key(tmp_path / "r", served(defense="round:decimals=1", answer="probs"))
    probs = torch.tensor(TestClient(app).post("/v1/predict", json={"inputs": rows(images())},
                                              headers=h["client"]).json()["probs"])
    model = zoo.load(MODEL)
    with torch.no_grad():
        rounded = build_defense("round", model, decimals=1)(images())
        plain = torch.softmax(model(images()), dim=1)
    assert torch.allclose(probs, rounded, atol=1e-6)
    assert not torch.allclose(probs, plain, atol=1e-3)


@pytest.mark.parametrize(("inputs", "words"), [
    ([[0.0] * 783], "row 0 has 783 values"),
    ([[0.0] * 784, [1.5] * 784], "row 1, value 0 is 1.5, outside [0, 1]"),
    ([[-0.1] + [0.0] * 783], "outside [0, 1]"),
    ([["dark"] * 784], "inputs.0.0"),
    ("not a list", "inputs"),
    ([], "got 0 rows"),
    ([[0.0] * 784] * 5, "got 5 rows; 'inputs' is a list of 1 to 4 rows"),
])
def test_bad_inputs_get_422_saying_what_is_expected(tmp_path: Path, inputs: Any,
                                                    words: str) -> None:
    app, h = app_with_key(tmp_path, served(), predict={"max_batch": 4})
    got = TestClient(app).post("/v1/predict", json={"inputs": inputs}, headers=h["client"])
    assert got.status_code == 422
    assert words in got.json()["error"]["message"]


def test_rate_limit_answers_429(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(), rate_limit={"rate_per_s": 0.5, "burst": 2})
    client = TestClient(app)
    codes = [client.post("/v1/predict", json={"inputs": rows(images(1))},
                         headers=h["client"]).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "bastion_rate_limited_total 1.0" in client.get("/metrics").text


def test_redis_limits_hold_across_two_replicas(tmp_path: Path, redis_url: str,
                                               redis_prefix: str) -> None:
    cfg = {"redis_url": redis_url, "redis_prefix": redis_prefix,
           "rate_limit": {"rate_per_s": 0.01, "burst": 3}}
    app_a, h = app_with_key(tmp_path, served(), **cfg)
    app_b = create_model_app(config(tmp_path, **cfg), served())  # same database and Redis
    a, b = TestClient(app_a), TestClient(app_b)
    body = {"inputs": rows(images(1))}
    codes = [c.post("/v1/predict", json=body, headers=h["client"]).status_code
             for c in (a, b, a, b)]
    assert codes == [200, 200, 200, 429]


def extraction_like(n: int) -> torch.Tensor:
    """Noise images each followed by two near copies: far and very near distances."""
    gen = torch.Generator().manual_seed(1)
    far = torch.rand((n // 3 + 1, 1, 28, 28), generator=gen)
    near = [far + 0.01 * torch.randn(far.shape, generator=gen) for _ in range(2)]
    return torch.stack([far, *near], dim=1).reshape(-1, 1, 28, 28)[:n].clamp(0, 1)


def test_a_prada_flagged_key_is_escalated_throttled_and_not_told(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(), predict={
        "prada_min_distances": 20, "prada_window": 60},
        anomaly={"throttle_rate_per_s": 0.01}, rate_limit={"rate_per_s": 100, "burst": 100})
    client = TestClient(app)
    queries = extraction_like(60)
    answers = [client.post("/v1/predict", json={"inputs": rows(queries[i:i + 10])},
                           headers=h["client"]) for i in range(0, 30, 10)]
    assert [r.status_code for r in answers] == [200] * 3
    assert all(set(r.json()) == {"labels"} for r in answers)  # nothing about the flag
    items = client.get("/v1/review/items", headers=h["reviewer"]).json()["items"]
    assert len(items) == 1 and items[0]["kind"] == "escalation"
    layer = items[0]["layers"][0]
    assert layer["name"] == "prada" and 20 <= layer["flagged_at"] <= 30
    assert layer["w_at_flag"] < app.state.service.config.predict.prada_delta
    assert 'bastion_escalations_total{signal="prada"} 1.0' in client.get("/metrics").text
    # throttled: one more answer, then a 429 that reads like any rate limit's
    body = {"inputs": rows(queries[:1])}
    assert client.post("/v1/predict", json=body, headers=h["client"]).status_code == 200
    refused = client.post("/v1/predict", json=body, headers=h["client"])
    assert refused.status_code == 429
    assert "over its rate limit" in refused.json()["error"]["message"]
    assert "PRADA" not in refused.text and "escalat" not in refused.text


def test_the_query_distribution_test_escalates_an_other_domain_key(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(), predict={
        "prada": False, "share_reference": "mnist:train", "share_reference_n": 400},
        anomaly={"throttle_rate_per_s": 0.01}, rate_limit={"rate_per_s": 100, "burst": 100})
    client = TestClient(app)
    noise = torch.rand((30, 1, 28, 28), generator=torch.Generator().manual_seed(2))
    answers = [client.post("/v1/predict", json={"inputs": rows(noise[i:i + 10])},
                           headers=h["client"]) for i in range(0, 30, 10)]
    assert [r.status_code for r in answers[:2]] == [200, 200]
    items = client.get("/v1/review/items", headers=h["reviewer"]).json()["items"]
    assert len(items) == 1 and items[0]["layers"][0]["name"] == "share"
    assert items[0]["layers"][0]["flagged_at"] == 20
    assert 'bastion_escalations_total{signal="share"} 1.0' in client.get("/metrics").text


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on a real loopback port in a thread; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the model endpoint did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_extraction_runs_over_a_real_port(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(answer="topk:2"),
                          rate_limit={"rate_per_s": 100, "burst": 100})
    key = h["client"]["Authorization"].split()[1]
    with serving(app) as url:
        victim = RemoteClassifier(url, key, batch=16)
        assert victim.classes == 10
        pool, test = extraction_like(48), images(16)
        result = extract(victim, pool, test, torch.zeros(16, dtype=torch.long), budgets=[48],
                         steps=5)
        victim.close()
    assert victim.queries == 48 + 16  # the pool, then the test images for fidelity
    row = result.rows[0]
    assert row["queries"] == 48 and 0 <= row["fidelity"] <= 1


def test_jacobian_extraction_runs_over_a_real_port(tmp_path: Path) -> None:
    app, h = app_with_key(tmp_path, served(answer="label"),
                          rate_limit={"rate_per_s": 1000, "burst": 1000})
    key = h["client"]["Authorization"].split()[1]
    with serving(app) as url:
        victim = RemoteClassifier(url, key, batch=16)
        test = images(16)
        labels = victim(test).argmax(1)  # 16 queries: the victim's own labels as truth
        result = steal(Jacobian(seed_size=8), victim, extraction_like(8), test, labels,
                       budgets=[8, 20], label_only=True, steps=5, transfer=4)
        victim.close()
    # 16 + 16 test images (the labels, then fidelity), 20 Jacobian queries, 2 x 4 transfer
    assert victim.queries == 16 + 16 + 20 + 2 * 4
    assert [r["queries"] for r in result.rows] == [8, 20]
    assert all(r["transfer_n"] == 4 for r in result.rows)


@pytest.mark.parametrize(("args", "words"), [
    (["--answer", "top3"], "--answer must be label, topk:K"),
    (["--answer", "topk:11"], "more classes than the model's 10"),
    (["--defense", "round:decimals"], "key=value pairs"),
    (["--defense", "blur"], "unknown output defence 'blur'"),
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--model", "{tmp}/net.py"], "give its input shape with --input-shape"),
    (["--input-shape", "28,28"], "three positive integers"),
])
def test_serve_model_command_refuses_bad_options(tmp_path: Path, args: list[str],
                                                 words: str) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    (tmp_path / "net.py").write_text(
        "from torch import nn\n\ndef make_model():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n")
    base = ["serve-model", "--model", MODEL, "--database-url",
            f"sqlite:///{tmp_path / 'cli.db'}"]
    got = CliRunner().invoke(app, base + [a.format(tmp=tmp_path) for a in args])
    assert got.exit_code == 2, got.output
    assert words in " ".join(got.output.split())
