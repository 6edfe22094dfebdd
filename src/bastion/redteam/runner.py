"""The red-team runner: every attempt against every target, judged, written, resumable.

:func:`plan` turns probes and converters into the attempt list: each probe writes up to
``budget // len(probes)`` attempts, and each attempt is sent as written plus once per
converter (``none`` + each converter alone). :func:`run` sends every attempt to every
target (a label such as ``unguarded`` / ``guarded`` to a :class:`Target`), judges the
answers, and writes:

- ``DIR/attempts.jsonl``: one line per (target, attempt), in plan order (see
  :func:`line_for` for the fields);
- ``DIR/state.json``: finished lines, saved after each one, so a killed run resumes
  where it stopped and ends with the same lines (greedy decoding is deterministic);
- ``DIR/record.jsonl``: the run record (parameters, versions, the summary);
- ``DIR/summary.json``: :func:`bastion.redteam.summary.summarize`.

Conversations run on ``concurrency`` threads at most (the embedded model generates one
answer at a time whatever this is; a remote endpoint can take several).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import ModuleType
from typing import Any

from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.common.state import StateFile, fingerprint, run_lock
from bastion.errors import ConfigError
from bastion.guard.scanners.output.leak import canary_spans, overlap_runs
from bastion.redteam.base import (
    CONVERTERS,
    JUDGES,
    PROBES,
    AppConfig,
    Attempt,
    Judge,
    Reply,
    Target,
    pick,
)
from bastion.redteam.summary import summarize
from bastion.redteam.targets import THROTTLED

#: consecutive system-prompt words in an answer that count as a leak reaching the user
#: (the leak scanner's default run length).
LEAK_MIN_WORDS = 8


def plan(app: AppConfig, probes: Sequence[str] | None, converters: Sequence[str], *,
         budget: int, seed: int = 0) -> list[Attempt]:
    """The attempts of a run, in a fixed order: probe by probe, each attempt as written
    and then through each converter.

    Args:
        probes: registered probe names (None: every one).
        converters: registered converter names, each applied alone.
        budget: attempts written by all probes together (before converters); each probe
            gets ``max(1, budget // len(probes))``.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"the budget is a positive number of attempts, got {budget!r}")
    probe_classes = pick(PROBES, probes, "probe")
    if not probe_classes:
        raise ConfigError("no probes are registered or named; pass --probes")
    chain = [cls() for cls in pick(CONVERTERS, list(converters), "converter")]
    per_probe = max(1, budget // len(probe_classes))
    out: list[Attempt] = []
    for cls in probe_classes:
        for attempt in cls().attempts(app, limit=per_probe, seed=seed):
            out.append(attempt)
            out.extend(conv.apply(attempt, seed) for conv in chain)
    keys = [a.key for a in out]
    if len(set(keys)) != len(keys):
        raise ConfigError("two attempts share an id; probe ids must be unique per probe")
    return out


def leaked(text: str, app: AppConfig) -> bool:
    """The canary (plain, folded or encoded) or ``LEAK_MIN_WORDS`` consecutive words of
    the system prompt appear in ``text``."""
    if canary_spans(text, app.canary):
        return True
    return bool(overlap_runs(text, app.system_prompt, LEAK_MIN_WORDS)[0])


def judges_for(goal: str, judges: Sequence[Judge]) -> list[Judge]:
    return [j for j in judges if goal in j.goals]


def line_for(label: str, attempt: Attempt, reply: Reply, app: AppConfig,
             judges: Sequence[Judge], success_judges: dict[str, str]) -> dict[str, Any]:
    """One JSON line: the target label, the attempt, what the user saw, every judge's
    verdict and whether the attempt succeeded (by the goal's success judge)."""
    seen = "\n".join(reply.turns)
    throttled = reply.verdict == THROTTLED
    verdicts: dict[str, dict[str, Any]] = {}
    if not reply.error and not throttled:
        for judge in judges_for(attempt.goal, judges):
            j = judge.judge(seen, attempt, app)
            verdicts[j.judge] = {"hit": bool(j.hit), "score": float(j.score),
                                 "reason": j.reason}
    decider = success_judges.get(attempt.goal)
    success = None
    if decider is not None and decider in verdicts:
        success = verdicts[decider]["hit"]
    return {"target": label, "key": attempt.key, "id": attempt.id, "probe": attempt.probe,
            "family": attempt.family, "goal": attempt.goal,
            "converters": list(attempt.converters), "turns": list(attempt.turns),
            "answers": list(reply.turns), "blocked": reply.blocked, "verdict": reply.verdict,
            "throttled": throttled, "judges": verdicts, "success_judge": decider,
            "success": success, "leak": leaked(seen, app) if seen else False,
            "latency_ms": round(reply.latency_ms, 1), "queries": reply.queries,
            "error": reply.error}


def judge_versions(judges: Sequence[Judge]) -> dict[str, str]:
    """Judge name -> a digest of its settings and its code: the source of its module and
    of every bastion module that module reaches through its names (the shared text
    helpers, the guard scanners it reads), so that a run resumed after a judge changed
    is refused instead of mixing old verdicts with new ones."""
    out = {}
    for judge in judges:
        digest = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in vars(judge).items()))
                                .encode())
        for name, path in _sources(type(judge).__module__):
            digest.update(name.encode() + b"\0" + Path(path).read_bytes())
        out[judge.name] = digest.hexdigest()[:16]
    return out


def _sources(module_name: str) -> list[tuple[str, str]]:
    """(module name, source file) of ``module_name`` and of the bastion modules it reaches
    (a module it imports, or the module of a class or function it imports), sorted."""
    seen: set[str] = set()
    todo = [module_name]
    found = []
    while todo:
        name = todo.pop()
        module = sys.modules.get(name)
        if name in seen or module is None:
            continue
        seen.add(name)
        if getattr(module, "__file__", None):
            found.append((name, str(module.__file__)))
        for value in vars(module).values():
            other = value.__name__ if isinstance(value, ModuleType) else getattr(
                value, "__module__", None)
            if isinstance(other, str) and other.startswith("bastion.") and other not in seen:
                todo.append(other)
    return sorted(found)


def default_success_judges() -> dict[str, str]:
    """goal -> the judge whose hit means success (:data:`bastion.redteam.judges.SUCCESS_JUDGES`)."""
    from bastion.redteam.judges import SUCCESS_JUDGES

    return dict(SUCCESS_JUDGES)


def run(targets: dict[str, Target], app: AppConfig, attempts: Sequence[Attempt],
        out: Path, *, concurrency: int = 2, seed: int = 0,
        judges: Sequence[Judge] | None = None,
        success_judges: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        on_done: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Send ``attempts`` to every target, judge and write the run to ``out``.

    Args:
        targets: label -> target; labels appear in every line and in the summary.
        concurrency: conversations in flight at once (>= 1).
        judges: judge instances (default: one of every registered judge).
        success_judges: goal -> judge name (default :func:`default_success_judges`).
        params: what else decides the results (model, max_tokens, ...): recorded and
            part of the resume fingerprint.
        on_done: called with (finished, total) after each conversation (a progress bar).

    Returns:
        The summary (also written to ``out/summary.json``).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not targets:
        raise ConfigError("no target to send the attempts to")
    judges = list(judges) if judges is not None else [JUDGES[n]() for n in sorted(JUDGES)]
    success = success_judges if success_judges is not None else default_success_judges()
    settings = {"app": [app.system_prompt, app.canary, list(app.documents), list(app.tools)],
                "attempts": [a.key for a in attempts], "targets": sorted(targets),
                "seed": seed, "judges": judge_versions(judges), "success": success,
                **(params or {})}
    out = Path(out)
    with run_lock(out):
        state = StateFile(out / "state.json", fingerprint(settings),
                          settings="app, attempts, targets, seed, model settings, or the "
                                   "judges: their names, settings or code (a changed judge "
                                   "would leave the saved verdicts stale)")
        units = [(label, a) for label in targets for a in attempts]
        start = time.perf_counter()
        _send_all(targets, app, units, state, concurrency, judges, success, on_done)
        wall_s = time.perf_counter() - start
        lines = [state.units[f"{label}|{a.key}"] for label, a in units]
        _write_lines(out / "attempts.jsonl", lines)
        summary = summarize(lines, list(targets), wall_s=wall_s)
        summary["app"] = app.name
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                          encoding="utf-8")
        record = RecordWriter(out / "record.jsonl", new_run_id())
        record.write("run", seed=seed, versions=versions(),
                     params={**settings, "attempts": len(attempts), "concurrency": concurrency})
        record.write("redteam.summary", summary=summary)
    return summary


def _send_all(targets: dict[str, Target], app: AppConfig,
              units: list[tuple[str, Attempt]], state: StateFile, concurrency: int,
              judges: Sequence[Judge], success: dict[str, str],
              on_done: Callable[[int, int], None] | None) -> None:
    """Run the units not yet in ``state`` on at most ``concurrency`` threads, saving
    each finished line as it comes."""
    lock = threading.Lock()
    todo = [(label, a) for label, a in units if state.done(f"{label}|{a.key}") is None]
    finished = len(units) - len(todo)
    if on_done:
        on_done(finished, len(units))

    def one(label: str, attempt: Attempt) -> None:
        reply = targets[label].send(attempt, app)
        line = line_for(label, attempt, reply, app, judges, success)
        with lock:
            state.save(f"{label}|{attempt.key}", line)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: set[Future[None]] = set()
        for label, attempt in todo:
            pending.add(pool.submit(one, label, attempt))
            if len(pending) >= concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                finished += _settle(done, on_done, finished, len(units))
        done, _ = wait(pending)
        _settle(done, on_done, finished, len(units))


def _settle(done: set[Future[None]], on_done: Callable[[int, int], None] | None,
            finished: int, total: int) -> int:
    for future in done:
        future.result()  # a bug in a target or judge stops the run (finished work is kept)
    if on_done:
        on_done(finished + len(done), total)
    return len(done)


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                   encoding="utf-8")
    tmp.replace(path)
