"""``bastion guard scan``: the JSON contract, the table, exit codes, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.guard import Finding, ScanContext, Scanner, scanners

runner = CliRunner()
LAYER_KEYS = {"name", "verdict", "score", "latency_ms", "reason"}


class Needle(Scanner):
    """Scores 1.0 when ``needle`` (or, for answers, the canary) occurs in the text."""

    kind = "needle"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", needle: str = "attack") -> None:
        self._init_common(name, threshold, action)
        self.needle = needle

    def _scan(self, text: str, context: ScanContext) -> Finding:
        hit = self.needle in text or bool(context.canary and context.canary in text)
        return Finding(score=float(hit), reason="needle found" if hit else "clean")


@pytest.fixture
def policy(monkeypatch, tmp_path):
    monkeypatch.setitem(scanners.REGISTRY, "needle", Needle)
    path = tmp_path / "policy.yaml"
    path.write_text("input:\n"
                    "  - {kind: needle, name: soft, needle: maybe, action: flag}\n"
                    "  - {kind: needle, name: hard}\n"
                    "  - {kind: needle, name: last}\n"
                    "output:\n"
                    "  - {kind: needle, name: answer, needle: secret, action: redact}\n",
                    encoding="utf-8")
    return str(path)


def scan(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["guard", "scan", *args], input=stdin, catch_exceptions=False)


def test_json_output_follows_the_contract_and_a_block_still_exits_0(policy):
    res = scan("maybe an attack", "--policy", policy, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert {"verdict", "score", "layers"} <= set(got)
    assert got["verdict"] == "block" and got["score"] == 1.0
    assert [layer["name"] for layer in got["layers"]] == ["soft", "hard"]
    assert [layer["verdict"] for layer in got["layers"]] == ["flag", "block"]
    for layer in got["layers"]:
        assert set(layer) >= LAYER_KEYS
        assert isinstance(layer["latency_ms"], float) and isinstance(layer["reason"], str)
    assert got["skipped"] == ["last"]


def test_an_allowed_text_exits_0_too(policy):
    res = scan("hello", "--policy", policy, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["verdict"] == "allow"


def test_output_scans_the_answer_with_the_output_layers(policy):
    res = scan("the secret is out", "--output", "--policy", policy, "--json")
    got = json.loads(res.stdout)
    assert [layer["name"] for layer in got["layers"]] == ["answer"]
    assert got["verdict"] == "redact"
    res = scan("token XYZ", "--output", "--canary", "XYZ", "--policy", policy, "--json")
    assert json.loads(res.stdout)["verdict"] == "redact"


def test_file_and_stdin_are_read_as_utf8(policy, tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("an attack, café", encoding="utf-8")
    res = scan("--file", str(path), "--policy", policy, "--json")
    assert json.loads(res.stdout)["sanitized"] == "an attack, café"
    res = scan("--file", "-", "--policy", policy, "--json", stdin="via stdin")
    assert json.loads(res.stdout)["sanitized"] == "via stdin"


def test_the_table_shows_verdict_score_and_reason_per_layer(policy):
    res = scan("maybe an attack", "--policy", policy)
    assert res.exit_code == 0
    for text in ("block", "soft", "flag", "hard", "needle found", "1.000", "skipped", "last"):
        assert text in res.stdout, text


@pytest.mark.parametrize("args,message", [
    ((), "as an argument"),
    (("text", "--file", "x.txt"), "not both"),
    (("--file", "/nonexistent/prompt.txt"), "cannot read"),
    (("text", "--canary", "XYZ"), "add --output"),
])
def test_bad_input_exits_2_with_a_message(policy, args, message):
    res = scan(*args, "--policy", policy)
    assert res.exit_code == 2
    assert message in res.stderr


def test_a_file_that_is_not_utf8_exits_2(policy, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9")
    res = scan("--file", str(path), "--policy", policy)
    assert res.exit_code == 2 and "not UTF-8" in res.stderr


def test_a_bad_policy_exits_2_naming_the_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input:\n  - kind: no-such-scanner\n", encoding="utf-8")
    res = scan("text", "--policy", str(path))
    assert res.exit_code == 2
    assert "unknown scanner kind" in res.stderr and "no-such-scanner" in res.stderr
