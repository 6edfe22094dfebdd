"""The scanner contract itself: verdicts from scores, validation, non-finite scores."""

from __future__ import annotations

import math

import pytest

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner


class Fixed(Scanner):
    kind = "fixed"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", value: float = 0.0) -> None:
        self._init_common(name, threshold, action)
        self.value = value

    def _scan(self, text: str, context: ScanContext) -> Finding:
        return Finding(score=self.value, reason="fixed")


@pytest.mark.parametrize(("value", "verdict"), [(0.0, "allow"), (0.49, "allow"),
                                                (0.5, "block"), (7.0, "block")])
def test_verdict_follows_threshold_and_action(value, verdict):
    result = Fixed(value=value).scan("hello")
    assert result.verdict == verdict
    assert 0.0 <= result.score <= 1.0
    assert result.scanner == "fixed" and result.sanitized == "hello"


def test_zero_threshold_does_not_act_on_zero_score():
    assert Fixed(threshold=0.0, value=0.0).scan("x").verdict == "allow"
    assert Fixed(threshold=0.0, value=0.1, action="flag").scan("x").verdict == "flag"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_score_raises_instead_of_allowing(bad):
    with pytest.raises(ValueError, match="non-finite"):
        Fixed(value=bad).scan("x")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"threshold": "0.5"}, "must be a number"),
    ({"threshold": True}, "must be a number"),
    ({"threshold": 1.5}, r"in \[0, 1\]"),
    ({"action": "explode"}, "action must be one of"),
])
def test_validate_refuses_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Fixed(**kwargs).validate()


def test_text_must_be_a_string_and_params_round_trip():
    with pytest.raises(ConfigError, match="must be str"):
        Fixed().scan(b"bytes")  # type: ignore[arg-type]
    scanner = Fixed(name="mine", threshold=0.2, action="flag", value=0.3)
    assert Fixed(**scanner.get_params()).get_params() == scanner.get_params()
