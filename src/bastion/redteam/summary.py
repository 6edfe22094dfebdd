"""The numbers of a red-team run, from its JSON lines.

:func:`summarize` gives, for each target label: the attack success rate (ASR) overall,
per probe family, per converter (``none`` for attempts sent as written) and per probe,
each ``{"n", "successes", "rate", "interval"}`` with a two-sided 95% Wilson interval;
how many attempts were blocked, throttled (HTTP 429), failed (errors), and how many let
the canary or system-prompt text reach the user (``leaks``); queries and summed latency.
With both ``unguarded`` and ``guarded`` it adds ``drop``: per family (every family,
including those the guard does not help), the unguarded ASR minus the guarded one.

Denominators count judged attempts only: an error or a throttle got no answer to judge,
so it is neither a success nor a failure (they are counted on their own).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bastion.common.intervals import interval_list, wilson_interval

NO_CONVERTER = "none"


def rate(successes: int, n: int) -> dict[str, Any]:
    """``{"n", "successes", "rate", "interval"}``; rate and interval are None at n = 0."""
    return {"n": n, "successes": successes, "rate": successes / n if n else None,
            "interval": interval_list(wilson_interval(successes, n))}


def _rates(lines: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    counts: dict[str, list[int]] = {}
    for line in lines:
        name = str(line[key]) if key != "converter" else converter_of(line)
        k_n = counts.setdefault(name, [0, 0])
        k_n[0] += bool(line["success"])
        k_n[1] += 1
    return {name: rate(k, n) for name, (k, n) in sorted(counts.items())}


def converter_of(line: dict[str, Any]) -> str:
    """The converter chain of a line as one label (``none`` when sent as written)."""
    return "+".join(line["converters"]) or NO_CONVERTER


def judged(line: dict[str, Any]) -> bool:
    """The attempt got an answer and a success judge ruled on it."""
    return line["success"] is not None and not line["error"] and not line["throttled"]


def target_summary(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of one target's lines."""
    ruled = [line for line in lines if judged(line)]
    return {
        "attempts": len(lines),
        "judged": len(ruled),
        "asr": rate(sum(bool(line["success"]) for line in ruled), len(ruled)),
        "per_family": _rates(ruled, "family"),
        "per_converter": _rates(ruled, "converter"),
        "per_probe": _rates(ruled, "probe"),
        "blocked": sum(bool(line["blocked"]) for line in lines),
        "throttled": sum(bool(line["throttled"]) for line in lines),
        "errors": sum(bool(line["error"]) for line in lines),
        "unjudged": sum(not line["error"] and not line["throttled"]
                        and line["success"] is None for line in lines),
        "leaks": sum(bool(line["leak"]) for line in lines),
        "leak_rate": rate(sum(bool(line["leak"]) for line in lines), len(lines)),
        "queries": sum(int(line["queries"]) for line in lines),
        "latency_s": round(sum(float(line["latency_ms"]) for line in lines) / 1000, 3),
    }


def drop(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per family of ``before`` or ``after``: unguarded ASR, guarded ASR (with their
    intervals) and their difference (positive: the guard stopped attacks)."""
    out: dict[str, Any] = {}
    for family in sorted(set(before["per_family"]) | set(after["per_family"])):
        b = before["per_family"].get(family, rate(0, 0))
        a = after["per_family"].get(family, rate(0, 0))
        diff = (b["rate"] - a["rate"]) if b["rate"] is not None and a["rate"] is not None \
            else None
        out[family] = {"unguarded": b, "guarded": a, "drop": diff}
    return out


def summarize(lines: Sequence[dict[str, Any]], labels: Sequence[str], *,
              wall_s: float) -> dict[str, Any]:
    """The run's summary (see the module docstring); ``wall_s`` is the run's wall time in
    seconds (this session's part, when it was resumed)."""
    per_target = {label: target_summary([ln for ln in lines if ln["target"] == label])
                  for label in labels}
    summary: dict[str, Any] = {"targets": per_target, "wall_s": round(wall_s, 1),
                               "queries": sum(t["queries"] for t in per_target.values()),
                               "leaks": {k: t["leaks"] for k, t in per_target.items()}}
    if "unguarded" in per_target and "guarded" in per_target:
        summary["drop"] = drop(per_target["unguarded"], per_target["guarded"])
    return summary
