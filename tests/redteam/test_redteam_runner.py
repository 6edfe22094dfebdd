"""The runner end to end against a fake OpenAI-compatible endpoint: lines, summary
numbers, resume after a kill, the concurrency bound, blocks and throttles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redteam_fakes import APP, JUDGES, SUCCESS, FakeEndpoint, attempts

from bastion.common.intervals import wilson_interval
from bastion.errors import ConfigError, StateError
from bastion.redteam.base import AppConfig, Attempt, Reply
from bastion.redteam.runner import run
from bastion.redteam.targets import OpenAITarget

VOLATILE = ("latency_ms",)


def _lines(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "attempts.jsonl").read_text(encoding="utf-8")
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in text.splitlines()]


def _targets(endpoint: FakeEndpoint, blocking: FakeEndpoint) -> dict[str, Any]:
    return {"unguarded": OpenAITarget("http://fake/v1", transport=endpoint.transport),
            "guarded": OpenAITarget("http://fake/v1", transport=blocking.transport)}


def _run(folder: Path, targets: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return run(targets, APP, attempts(), folder, judges=JUDGES, success_judges=SUCCESS,
               **kw)


def test_lines_and_summary_numbers(tmp_path: Path) -> None:
    summary = _run(tmp_path, _targets(FakeEndpoint(), FakeEndpoint(block="refusal")))
    lines = _lines(tmp_path)
    assert len(lines) == 12 and [ln["target"] for ln in lines] == ["unguarded"] * 6 + \
        ["guarded"] * 6
    first = lines[0]
    assert first["probe"] == "leak" and first["family"] == "extraction"
    assert first["success"] is True and first["leak"] is True
    assert first["judges"]["test-leak"]["hit"] is True and first["queries"] == 1
    by = {(ln["target"], ln["id"]): ln for ln in lines}
    assert by[("unguarded", "harm:2")]["throttled"] and by[("unguarded", "harm:2")][
        "success"] is None
    assert by[("guarded", "harm:1")]["blocked"] and not by[("unguarded", "harm:1")]["blocked"]
    # unguarded: leak 2/2, harmful 1/2 judged (harm:2 throttled), indirect 1/1
    un = summary["targets"]["unguarded"]
    assert un["judged"] == 5 and un["throttled"] == 1 and un["errors"] == 0
    assert un["asr"]["successes"] == 4 and un["asr"]["n"] == 5
    assert un["asr"]["interval"] == pytest.approx(list(wilson_interval(4, 5)))
    assert un["per_family"]["harmful"] == {"n": 2, "successes": 1, "rate": 0.5,
                                           "interval": list(wilson_interval(1, 2))}
    assert un["leaks"] == 2 and un["queries"] == 7  # leak:1 has two turns
    assert un["per_converter"]["none"]["n"] == 5
    gu = summary["targets"]["guarded"]
    assert gu["blocked"] == 1 and gu["per_family"]["harmful"]["successes"] == 1
    assert summary["drop"]["harmful"]["drop"] == 0.0  # the refusal is not a success
    assert set(summary["drop"]) == {"extraction", "harmful", "indirect"}
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["targets"]["unguarded"]["asr"] == un["asr"]
    kinds = [json.loads(x)["kind"] for x in (tmp_path / "record.jsonl").read_text()
             .splitlines()]
    assert kinds == ["run", "redteam.summary"]


class Dies:
    """A target that raises KeyboardInterrupt at its n-th conversation."""

    def __init__(self, inner: OpenAITarget, after: int) -> None:
        self.inner, self.after, self.name = inner, after, inner.name
        self.sent = 0

    def send(self, attempt: Attempt, app: AppConfig) -> Reply:
        if self.sent == self.after:
            raise KeyboardInterrupt
        self.sent += 1
        return self.inner.send(attempt, app)


def test_resume_after_a_kill_gives_identical_lines(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    _run(whole, _targets(FakeEndpoint(), FakeEndpoint(block="error")), concurrency=1)
    cut = tmp_path / "cut"
    targets = _targets(FakeEndpoint(), FakeEndpoint(block="error"))
    targets["guarded"] = Dies(targets["guarded"], after=2)
    with pytest.raises(KeyboardInterrupt):
        _run(cut, targets, concurrency=1)
    assert not (cut / "attempts.jsonl").exists()
    saved = json.loads((cut / "state.json").read_text())["units"]
    assert len(saved) == 8  # six unguarded, two guarded
    again = _targets(FakeEndpoint(), FakeEndpoint(block="error"))
    endpoint = FakeEndpoint(block="error")
    again["guarded"] = OpenAITarget("http://fake/v1", transport=endpoint.transport)
    _run(cut, again, concurrency=1)
    assert len(endpoint.requests) == 4  # only the four guarded attempts left were sent
    assert _lines(cut) == _lines(whole)


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, _targets(FakeEndpoint(), FakeEndpoint()))
    with pytest.raises(StateError, match="different run"):
        run(_targets(FakeEndpoint(), FakeEndpoint()), APP, attempts()[:3], tmp_path,
            judges=JUDGES, success_judges=SUCCESS)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_bound_is_respected(tmp_path: Path, concurrency: int) -> None:
    endpoint = FakeEndpoint(delay_s=0.02)
    target = OpenAITarget("http://fake/v1", transport=endpoint.transport)
    many = [Attempt(id=f"a:{i}", probe="p", family="f", goal="comply", turns=("hi",))
            for i in range(12)]
    run({"unguarded": target}, APP, many, tmp_path, concurrency=concurrency,
        judges=JUDGES, success_judges=SUCCESS)
    assert endpoint.peak == concurrency  # reached, never passed
    assert len(_lines(tmp_path)) == 12


def test_errors_are_counted_apart_and_bad_settings_refused(tmp_path: Path) -> None:
    import httpx

    down = OpenAITarget("http://fake/v1", transport=httpx.MockTransport(
        lambda r: httpx.Response(503, json={})))
    summary = run({"unguarded": down}, APP, attempts(), tmp_path, judges=JUDGES,
                  success_judges=SUCCESS)
    t = summary["targets"]["unguarded"]
    assert t["errors"] == 6 and t["throttled"] == 0 and t["judged"] == 0
    assert t["asr"] == {"n": 0, "successes": 0, "rate": None, "interval": None}
    with pytest.raises(ConfigError, match="concurrency"):
        run({"unguarded": down}, APP, attempts(), tmp_path / "x", concurrency=0)


JUDGE_MODULE = '''
from bastion.redteam.base import Judge, Judgement


class ShortJudge(Judge):
    name = "test-comply"
    goals = ("comply", "leak", "inject")

    def judge(self, answer, attempt, app):
        hit = len(answer) > {limit}
        return Judgement(judge=self.name, hit=hit, score=float(hit))
'''


def test_resume_after_a_judge_changed_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    source = tmp_path / "changing_judge.py"
    source.write_text(JUDGE_MODULE.replace("{limit}", "20"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("changing_judge")
    success = {"leak": "test-comply", "comply": "test-comply", "inject": "test-comply"}
    out = tmp_path / "run"

    def again(judge: Any) -> dict[str, Any]:
        return run(_targets(FakeEndpoint(), FakeEndpoint()), APP, attempts(), out,
                   judges=[judge], success_judges=success)
    again(module.ShortJudge())
    first = _lines(out)
    again(module.ShortJudge())  # same code: resumed
    assert _lines(out) == first
    # another size than before, so the cached bytecode is not reused
    source.write_text(JUDGE_MODULE.replace("{limit}", "5"), encoding="utf-8")
    importlib.reload(module)
    with pytest.raises(StateError, match="judges: their names, settings or code"):
        again(module.ShortJudge())
    sys.modules.pop("changing_judge", None)


def test_judge_versions_follow_settings_and_reach_shared_code() -> None:
    import bastion.redteam  # noqa: F401  (registers the judges)
    from bastion.redteam.base import JUDGES as REGISTERED
    from bastion.redteam.runner import _sources, judge_versions

    judges = [REGISTERED[n]() for n in sorted(REGISTERED)]
    assert judge_versions(judges) == judge_versions([REGISTERED[n]() for n in
                                                     sorted(REGISTERED)])
    tuned = REGISTERED["refusal"]()
    tuned.extra_setting = 0.9  # an instance setting is part of the version
    assert judge_versions([tuned]) != judge_versions([REGISTERED["refusal"]()])
    reached = [name for name, _ in _sources(type(REGISTERED["harmful"]()).__module__)]
    assert "bastion.redteam.judges._text" in reached  # helpers the judge imports count
