"""The pipeline: order, text flow, verdict combination, early exit, failures and budgets."""

from __future__ import annotations

import json
import math
import time

import pytest

from bastion.errors import ConfigError, InputError
from bastion.guard import Finding, Layer, Pipeline, ScanContext, Scanner


class Fixed(Scanner):
    """Always the same score; rewrites the text to ``rewrite`` when given."""

    kind = "fixed"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", score: float = 0.0, rewrite: str | None = None) -> None:
        self._init_common(name, threshold, action)
        self.score = score
        self.rewrite = rewrite

    def _scan(self, text: str, context: ScanContext) -> Finding:
        return Finding(score=self.score, reason=f"fixed {self.score}", sanitized=self.rewrite)


class Upper(Scanner):
    """A sanitizer stand-in: upper-cases the text, never objects."""

    kind = "upper"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "flag") -> None:
        self._init_common(name, threshold, action)

    def _scan(self, text: str, context: ScanContext) -> Finding:
        return Finding(score=0.0, sanitized=text.upper())


class Recorder(Scanner):
    """Records every text it is given."""

    kind = "recorder"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "flag") -> None:
        self._init_common(name, threshold, action)
        self.seen: list[str] = []

    def _scan(self, text: str, context: ScanContext) -> Finding:
        self.seen.append(text)
        return Finding(score=0.0)


class Boom(Scanner):
    """A buggy scanner."""

    kind = "boom"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "flag", error: BaseException | None = None) -> None:
        self._init_common(name, threshold, action)
        self.error = error or RuntimeError("kaput")

    def _scan(self, text: str, context: ScanContext) -> Finding:
        raise self.error


class Slow(Scanner):
    """Sleeps, then blocks and rewrites: a late result worth discarding."""

    kind = "slow"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", seconds: float = 0.03) -> None:
        self._init_common(name, threshold, action)
        self.seconds = seconds

    def _scan(self, text: str, context: ScanContext) -> Finding:
        time.sleep(self.seconds)
        return Finding(score=0.9, reason="slow but sure", sanitized="rewritten late")


def test_layers_run_in_order_and_each_sees_the_previous_sanitized_text():
    first, last = Recorder(name="first"), Recorder(name="last")
    result = Pipeline([first, Upper(), last]).run("Hello")
    assert [r.scanner for r in result.layers] == ["first", "upper", "last"]
    assert first.seen == ["Hello"]
    assert last.seen == ["HELLO"]
    assert result.sanitized == "HELLO"
    assert result.verdict == "allow" and result.score == 0.0
    assert result.skipped == [] and result.failed == []


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
def test_verdict_is_the_most_severe_and_score_the_highest_whatever_the_order(order):
    scanners = [Fixed(name="f", action="flag", threshold=0.1, score=0.95),
                Fixed(name="rv", action="review", threshold=0.1, score=0.4),
                Fixed(name="rd", action="redact", threshold=0.1, score=0.6)]
    result = Pipeline([scanners[i] for i in order]).run("x")
    assert result.verdict == "review"
    assert result.score == pytest.approx(0.95)
    assert len(result.layers) == 3


def test_scores_below_threshold_allow():
    result = Pipeline([Fixed(score=0.49, threshold=0.5)]).run("x")
    assert result.verdict == "allow"
    assert result.score == pytest.approx(0.49)


def test_an_empty_pipeline_allows_the_text_unchanged():
    result = Pipeline([]).run("anything")
    assert (result.verdict, result.score, result.sanitized, result.layers) == (
        "allow", 0.0, "anything", [])


def test_early_exit_stops_at_the_first_block_and_names_the_skipped_layers():
    a, b = Recorder(name="a"), Recorder(name="b")
    result = Pipeline([Upper(), Fixed(name="stop", score=1.0), a, b]).run("text")
    assert result.verdict == "block"
    assert result.skipped == ["a", "b"]
    assert [r.scanner for r in result.layers] == ["upper", "stop"]
    assert a.seen == [] and b.seen == []
    assert result.sanitized == "TEXT"


def test_without_early_exit_every_layer_runs_after_a_block():
    a = Recorder(name="a")
    result = Pipeline([Fixed(name="stop", score=1.0), a], early_exit=False).run("text")
    assert result.verdict == "block"
    assert result.skipped == []
    assert a.seen == ["text"]


def test_review_and_redact_do_not_exit_early():
    a = Recorder(name="a")
    result = Pipeline([Fixed(name="r", action="review", score=1.0), a]).run("t")
    assert result.verdict == "review" and a.seen == ["t"]


def test_a_raising_layer_blocks_when_fail_closed_and_says_why():
    after = Recorder(name="after")
    result = Pipeline([Boom(), after]).run("x")
    boom = result.by_name["boom"]
    assert boom.verdict == "block" and boom.score == 1.0
    assert "RuntimeError" in boom.reason and "kaput" in boom.reason
    assert "fail-closed" in boom.reason
    assert result.verdict == "block"
    assert result.failed == ["boom"]
    assert result.skipped == ["after"]  # a failure's block exits early like any block


def test_a_raising_layer_allows_when_fail_open_but_is_recorded():
    after = Recorder(name="after")
    result = Pipeline([Upper(), Boom(), after], fail_mode="open").run("x")
    boom = result.by_name["boom"]
    assert boom.verdict == "allow" and boom.score == 0.0
    assert "kaput" in boom.reason and "fail-open" in boom.reason
    assert result.verdict == "allow"
    assert result.failed == ["boom"]
    assert after.seen == ["X"]  # the failed layer passes its input on unchanged


def test_keyboard_interrupt_is_not_swallowed_as_a_layer_failure():
    with pytest.raises(KeyboardInterrupt):
        Pipeline([Boom(error=KeyboardInterrupt())]).run("x")


def test_a_layer_over_its_budget_blocks_when_fail_closed():
    result = Pipeline([Layer(Slow(action="flag"), budget_ms=5)]).run("x")
    slow = result.by_name["slow"]
    assert slow.verdict == "block"
    assert "5 ms budget" in slow.reason and "discarded" in slow.reason
    assert slow.latency_ms >= 30
    assert result.failed == ["slow"]
    assert result.sanitized == "x"  # the late rewrite is discarded


def test_a_layer_over_its_budget_allows_when_fail_open_and_its_late_result_is_discarded():
    after = Recorder(name="after")
    result = Pipeline([Layer(Slow(), budget_ms=5), after], fail_mode="open").run("x")
    slow = result.by_name["slow"]
    assert slow.verdict == "allow" and slow.score == 0.0
    assert "budget" in slow.reason and "block" in slow.reason  # what was discarded
    assert result.verdict == "allow" and result.failed == ["slow"]
    assert after.seen == ["x"] and result.sanitized == "x"


def test_a_layer_within_its_budget_keeps_its_result():
    result = Pipeline([Layer(Fixed(score=0.7, action="flag"), budget_ms=10_000)]).run("x")
    assert result.verdict == "flag" and result.failed == []


@pytest.mark.parametrize("fail_mode,verdict,overall", [("closed", "block", "block"),
                                                       ("open", "allow", "flag")])
def test_a_spent_pipeline_budget_skips_the_rest_and_applies_the_fail_mode(fail_mode, verdict,
                                                                          overall):
    a, b = Recorder(name="a"), Recorder(name="b")
    pipe = Pipeline([Slow(action="flag"), a, b], fail_mode=fail_mode, budget_ms=5)
    result = pipe.run("x")
    assert result.skipped == ["a", "b"]
    assert a.seen == [] and b.seen == []
    entry = result.layers[-1]
    assert entry.scanner == "pipeline" and entry.verdict == verdict
    assert "a, b" in entry.reason and "5 ms" in entry.reason
    assert result.verdict == overall
    assert result.by_name["slow"].verdict == "flag"  # the layer itself had no budget


def test_instance_names_must_be_unique():
    with pytest.raises(ConfigError, match=r"'rules'.*unique"):
        Pipeline([Fixed(name="rules"), Upper(), Fixed(name="rules")])


def test_the_pipeline_entry_name_is_reserved():
    with pytest.raises(ConfigError, match="reserved"):
        Pipeline([Fixed(name="pipeline")])


@pytest.mark.parametrize("budget", [0, -1.0, math.nan, math.inf, "5", True])
def test_bad_budgets_are_refused(budget):
    with pytest.raises(ConfigError, match="budget_ms"):
        Layer(Fixed(), budget_ms=budget)
    with pytest.raises(ConfigError, match="budget_ms"):
        Pipeline([], budget_ms=budget)


@pytest.mark.parametrize("kwargs,match", [({"fail_mode": "ajar"}, "fail_mode"),
                                          ({"early_exit": "yes"}, "early_exit")])
def test_bad_pipeline_settings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Pipeline([], **kwargs)


def test_layers_must_be_scanners_with_valid_settings():
    with pytest.raises(ConfigError, match="Scanner"):
        Pipeline(["rules"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="threshold"):
        Pipeline([Fixed(threshold=2.0)])
    with pytest.raises(ConfigError, match="action"):
        Pipeline([Fixed(action="drop")])


def test_text_must_be_str():
    with pytest.raises(InputError, match="bytes"):
        Pipeline([Upper()]).run(b"x")  # type: ignore[arg-type]


def test_to_dict_gives_the_json_contract():
    result = Pipeline([Upper(), Fixed(name="stop", score=1.0), Recorder()]).run("x")
    got = json.loads(json.dumps(result.to_dict()))
    assert {"verdict", "score", "layers", "skipped", "latency_ms", "sanitized"} <= set(got)
    assert got["verdict"] == "block" and got["score"] == 1.0
    assert got["skipped"] == ["recorder"]
    assert [layer["name"] for layer in got["layers"]] == ["upper", "stop"]
    for layer in got["layers"]:
        assert {"name", "verdict", "score", "latency_ms", "reason"} <= set(layer)
    assert got["latency_ms"] >= sum(layer["latency_ms"] for layer in got["layers"])
