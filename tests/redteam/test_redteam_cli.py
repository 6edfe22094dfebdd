"""``bastion redteam``: bad options get a clear error and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app

runner = CliRunner()


def _call(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["redteam", *args])
    return result.exit_code, result.output


def test_help_lists_the_options() -> None:
    code, out = _call("--help")
    assert code == 0
    for option in ("--target", "--compare", "--budget", "--probes", "--converters",
                   "--concurrency", "--seed", "--out", "--config"):
        assert option in out


@pytest.mark.parametrize(("args", "message"), [
    (("--target", "localhost:8000"), "is not a target"),
    (("--target", "gpt"), "embedded, proxy or the base URL"),
    (("--budget", "0"), "--budget must be at least 1"),
    (("--concurrency", "0"), "--concurrency must be at least 1"),
    (("--max-tokens", "0"), "--max-tokens must be at least 1"),
    (("--config", "no-such-app.yaml"), "is not a file"),
])
def test_bad_options_exit_2_with_a_reason(tmp_path: Path, args: tuple[str, ...],
                                          message: str) -> None:
    code, out = _call("--out", str(tmp_path), *args)
    assert code == 2, out
    assert message in " ".join(out.split())
    assert not (tmp_path / "attempts.jsonl").exists()


def test_a_url_run_writes_lines_summary_and_card(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from redteam_fakes import FakeEndpoint

    from bastion.redteam import targets

    endpoint = FakeEndpoint()
    real_client = httpx.Client

    def client(**kw: object) -> httpx.Client:
        return real_client(**{**kw, "transport": endpoint.transport})  # type: ignore[arg-type]

    monkeypatch.setattr(targets.httpx, "Client", client)
    code, out = _call("--out", str(tmp_path), "--target", "http://fake/v1", "--probes",
                      "sysprompt,canary-exfil", "--budget", "4", "--converters", "casing",
                      "--no-progress")
    assert code == 0, out
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == 8 == len(endpoint.requests)  # 2 probes x 2 attempts x 2 forms
    for name in ("summary.json", "record.jsonl", "card.json", "card.html"):
        assert (tmp_path / name).is_file()
    assert "attack success rate by probe family" in " ".join(out.split())
