"""Oracles: what an attacker learns from the guard about one attack attempt.

An :data:`Oracle` is any callable ``(Attempt) -> Verdict``. Two ship here:

* :class:`GuardOracle` asks an in-process :class:`bastion.guard.Guard`;
* :class:`ServiceOracle` asks bastion's guard service over HTTP
  (``POST /v1/scan/input`` with a client key), the way an outside attacker would.

Both scan the attempt's user turns in order, as an application would receive them, and
stop at the first turn that does not pass (the conversation would end there). One
oracle call is one *query* of the search budget, however many turns it scans.

    from bastion.guard import Guard
    from bastion.redteam.oracle import GuardOracle

    verdict = GuardOracle(Guard())(attempt)    # Verdict(allowed=..., score=..., ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.errors import BastionError, ConfigError, InputError
from bastion.extras import missing
from bastion.redteam.base import Attempt

#: guard verdicts that let a prompt through, by default: only ``allow`` (the same rule as
#: :func:`bastion.guard.attacks.attack_guard`, and what the service's anomaly detector
#: counts as not flagged).
PASSING: tuple[str, ...] = ("allow",)


@dataclass(frozen=True)
class Verdict:
    """What one query told the attacker.

    Attributes:
        allowed: every user turn passed the guard.
        score: the guard's risk score in [0, 1] (highest over the turns scanned) when
            the oracle exposes it, else ``None``.
        throttled: the oracle refused to answer (HTTP 429) or the service escalated
            the session; the search stops here.
        label: the guard's verdict word of the last turn scanned ("allow", "block", ...).
        reason: why it was throttled, or the review item of an escalation (also when the
            oracle goes on after one), for the record.
    """

    allowed: bool
    score: float | None = None
    throttled: bool = False
    label: str | None = None
    reason: str = ""


Oracle = Callable[[Attempt], Verdict]


def _check_passing(passing: Sequence[str]) -> tuple[str, ...]:
    known = ("allow", "flag", "redact", "review", "block")
    bad = [p for p in passing if p not in known]
    if isinstance(passing, str) or not passing or bad:
        raise ConfigError(f"passing must be a list of guard verdicts from {', '.join(known)}"
                          f", got {passing!r}")
    return tuple(passing)


class GuardOracle:
    """Ask an in-process guard: ``scan_input`` on each user turn, in order.

    Args:
        guard: anything with ``scan_input(text)`` returning ``.verdict`` and ``.score``
            (a :class:`bastion.guard.Guard`).
        passing: verdicts that let a turn through (default :data:`PASSING`).
        expose_score: report the guard's score (an API that returns it); ``False``
            gives a verdict-only oracle.
    """

    def __init__(self, guard: Any, *, passing: Sequence[str] = PASSING,
                 expose_score: bool = True) -> None:
        if not callable(getattr(guard, "scan_input", None)):
            raise ConfigError(f"GuardOracle needs a guard with scan_input(text), got "
                              f"{type(guard).__name__}")
        self.guard = guard
        self.passing = _check_passing(passing)
        self.expose_score = expose_score
        self.calls = 0

    def __call__(self, attempt: Attempt) -> Verdict:
        self.calls += 1
        score = 0.0
        label = "allow"
        for turn in attempt.turns:
            result = self.guard.scan_input(turn)
            score = max(score, float(result.score))
            label = str(result.verdict)
            if label not in self.passing:
                break
        return Verdict(allowed=label in self.passing,
                       score=score if self.expose_score else None, label=label)


class ServiceOracle:
    """Ask bastion's guard service over HTTP, as a client-key holder would.

    Each user turn is one ``POST {url}/v1/scan/input`` with ``Authorization: Bearer
    {api_key}``. A 429 answer (the key's rate limit, or the throttle on an escalated
    session) is a throttled verdict; so is an answer that carries an ``escalation_id``
    (the service filed the session for review) when ``stop_on_escalation`` holds.

    Args:
        url: the service's base URL (``http://127.0.0.1:8000``).
        api_key: a client key (``bastion keys create --name NAME``).
        session_id: sent with every scan (the anomaly detector groups by it); ``None``
            sends none, so all queries share the key's default session.
        rotate_sessions: use a new session per attempt (``{session_id}-{attempt.id}``),
            as an attacker who spreads a search over sessions would.
        passing: verdicts that let a turn through (default :data:`PASSING`).
        stop_on_escalation: report an escalation as throttled.
        client: an ``httpx.Client`` to send with (tests pass a FastAPI ``TestClient``);
            ``None`` makes one.
        timeout_s: per request, seconds.
        wait_s: a 429 asking to retry within this many seconds (the key's rate limit
            answers 1 s; an escalated session's throttle 5 s at its default rate) is
            waited out and the request sent again; ``0`` reports every 429 as throttled.
    """

    def __init__(self, url: str, api_key: str, *, session_id: str | None = None,
                 rotate_sessions: bool = False, passing: Sequence[str] = PASSING,
                 stop_on_escalation: bool = True, client: Any = None,
                 timeout_s: float = 30.0, wait_s: float = 0.0) -> None:
        if not api_key:
            raise ConfigError("ServiceOracle needs a client API key (make one with "
                              "`bastion keys create --name NAME`)")
        if client is None:
            try:
                import httpx
            except ModuleNotFoundError as exc:
                raise missing(exc, "the guard service oracle", "service") from exc
            client = httpx.Client(timeout=timeout_s)
        self.client = client
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.session_id = session_id
        self.rotate_sessions = rotate_sessions
        self.passing = _check_passing(passing)
        self.stop_on_escalation = stop_on_escalation
        self.wait_s = float(wait_s)
        self.calls = 0
        self.requests = 0
        self.waited_s = 0.0

    def _post(self, body: dict[str, Any]) -> Any:
        """One scan request; a 429 whose Retry-After is at most ``wait_s`` is waited out
        and sent again (an attacker honours the key's rate limit but not a throttle)."""
        while True:
            self.requests += 1
            try:
                response = self.client.post(f"{self.url}/v1/scan/input", json=body,
                                            headers=self.headers)
            except Exception as exc:  # a socket error, or httpx's own (not imported here)
                if not (isinstance(exc, OSError)
                        or type(exc).__module__.split(".")[0] == "httpx"):
                    raise
                raise ConfigError(f"cannot reach the guard service at {self.url} ({exc}); "
                                  "check the URL and that `bastion serve` runs") from None
            wait = _retry_after(response) if response.status_code == 429 else None
            if wait is None or wait > self.wait_s:
                return response
            self.waited_s += wait
            time.sleep(wait)

    def _session(self, attempt: Attempt) -> str | None:
        if self.rotate_sessions:
            return f"{self.session_id or 'search'}-{attempt.id}"
        return self.session_id

    def __call__(self, attempt: Attempt) -> Verdict:
        self.calls += 1
        session = self._session(attempt)
        score, label, note = 0.0, "allow", ""
        for turn in attempt.turns:
            body: dict[str, Any] = {"text": turn}
            if session is not None:
                body["session_id"] = session
            response = self._post(body)
            if response.status_code == 429:
                return Verdict(allowed=False, score=None, throttled=True, label=None,
                               reason=f"429: {_message(response)}")
            answer = _answer(response)
            score = max(score, float(answer["score"]))
            label = str(answer["verdict"])
            if answer.get("escalation_id") is not None:
                note = f"escalated: review item {answer['escalation_id']}"
                if self.stop_on_escalation:
                    return Verdict(allowed=label in self.passing, score=score,
                                   throttled=True, label=label, reason=note)
            if label not in self.passing:
                break
        return Verdict(allowed=label in self.passing, score=score, label=label, reason=note)


def _retry_after(response: Any) -> float | None:
    """The Retry-After header in seconds, or ``None`` if absent or not a number."""
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text)[:200]


def _answer(response: Any) -> dict[str, Any]:
    """The scan answer of a 200 response; a clear error for any other status."""
    status = response.status_code
    if status in (401, 403):
        raise ConfigError(f"the guard service refused the key ({status}: "
                          f"{_message(response)}); pass a live client key")
    if status == 404:
        raise ConfigError(f"no scan endpoint at {response.request.url}; pass the service's "
                          "base URL (without /v1)")
    if status in (413, 422):
        raise InputError(f"the guard service refused the prompt ({status}: "
                         f"{_message(response)})")
    if status != 200:
        raise BastionError(f"the guard service answered {status}: {_message(response)}; "
                           "check that it is up (GET /readyz)")
    answer: dict[str, Any] = response.json()
    return answer
