"""``bastion redteam search``: adaptive black-box search against the guard, from the shell.

    bastion redteam search --target guard --budget 50 --out search/
    bastion redteam search --target http://127.0.0.1:8000 --budget 50 --out search/

Takes the first ``--n`` attack prompts (label 1) of ``--corpus`` in an order shuffled by
``--seed`` and searches each with :func:`bastion.redteam.search.search_many`: up to
``--budget`` queries, query 1 the unchanged prompt. ``--target guard`` asks an in-process
:class:`~bastion.guard.Guard` (``--policy FILE`` or the bundled default); a URL asks the
guard service's HTTP API (``POST /v1/scan/input``) with the client key in
``BASTION_REDTEAM_API_KEY``, so the service's rate limit and anomaly escalation are part
of what the search meets. Prints the attack success rate at each budget up to
``--budget`` (Wilson 95% intervals) over the prompts the guard blocked unchanged and, for
a URL, where the first escalation and the first refusal (429) came. Writes
``state.json`` (resume: rerun the same command), ``searches.jsonl`` and ``summary.json``
under ``--out``.

Exit status: 0 done, 2 bad options or input, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError, ConfigError

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
API_KEY_ENV = "BASTION_REDTEAM_API_KEY"
#: budgets reported (those up to ``--budget``, and ``--budget`` itself).
REPORTED = (1, 5, 10, 25, 50, 100, 200)
SESSIONS = ("one", "rotate", "shared")
_err = Console(stderr=True)


def _attacks(corpus: str, n: int, seed: int) -> list[Any]:
    """The first ``n`` attacks (label 1) of ``corpus`` in the order ``seed`` shuffles."""
    from bastion.guard.corpora import load_corpus
    from bastion.redteam.base import Attempt

    name = Path(corpus).stem if corpus.endswith(".jsonl") else corpus
    texts = [e.text for e in load_corpus(Path(corpus) if corpus.endswith(".jsonl")
                                         else corpus) if e.label == 1]
    if not texts:
        raise ConfigError(f"--corpus {corpus} holds no attack (label 1) prompt")
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return [Attempt(id=f"{name}:{i}", probe=name, family="injection", goal="comply",
                    turns=(texts[i],)) for i in order[:n]]


def _service_client() -> Any:
    """The HTTP client for a URL target; ``None`` lets the oracle make one (tests hand
    it a FastAPI test client here)."""
    return None


def _oracle(target: str, policy: Path | None, session: str, wait: float,
            go_on: bool) -> tuple[Any, str]:
    """The oracle for ``target`` and the label that ties the resume file to it."""
    from bastion.redteam.oracle import GuardOracle, ServiceOracle

    if target == "guard":
        from bastion.guard import Guard

        if policy is not None and not policy.is_file():
            raise ConfigError(f"--policy {policy} is not a file; pass a guard policy YAML")
        return GuardOracle(Guard(policy)), f"guard:{policy or 'default'}"
    if not target.startswith(("http://", "https://")):
        raise ConfigError(f"--target {target!r} is not a target: pass guard or the base "
                          "URL of bastion's guard service (http://host:port)")
    if policy is not None:
        raise ConfigError("--policy applies to --target guard only; the service scans "
                          "with its own policy")
    key = os.environ.get(API_KEY_ENV, "")
    if not key:
        raise ConfigError(f"a URL target needs a client key in {API_KEY_ENV} (make one "
                          "with `bastion keys create --name NAME`)")
    oracle = ServiceOracle(target, key, session_id=None if session == "shared"
                           else "bastion-search", rotate_sessions=session == "rotate",
                           stop_on_escalation=not go_on, client=_service_client(),
                           wait_s=wait)
    return oracle, f"service:{target}:{session}:{go_on}"


def summarise(results: list[Any], budget: int) -> dict[str, Any]:
    """Success vs budget over the prompts blocked unchanged, and the campaign as the
    target saw it (queries in order over all prompts: the first escalation, first 429)."""
    from bastion.redteam.search_io import campaign, success_by_budget

    blocked = [r for r in results if r.blocked_at_start]
    budgets = sorted({b for b in REPORTED if b < budget} | {budget})
    seen = campaign(results)
    stopped = {k: sum(r.stopped == k for r in results)
               for k in sorted({r.stopped for r in results})}
    return {"prompts": len(results), "blocked_unchanged": len(blocked),
            "passed_unchanged": len(results) - len(blocked),
            "by_budget": success_by_budget(blocked, budgets),
            "queries": seen["queries"], "stopped": stopped,
            "throttled_prompts": sum(r.throttled for r in results),
            "first_escalation_at": seen["first_escalation_at"],
            "first_429_at": seen["first_429_at"]}


def _print(summary: dict[str, Any], out: Path) -> None:
    table = Table(title="attack success vs query budget (95% Wilson interval)")
    for column in ("budget", "found", "success"):
        table.add_column(column, justify="right")
    for r in summary["by_budget"]:
        cell = "n/a" if r["asr"] is None else (f"{100 * r['asr']:.0f}% [{100 * r['asr_ci'][0]:.0f}"
                                               f", {100 * r['asr_ci'][1]:.0f}]")
        table.add_row(str(r["budget"]), f"{r['found']}/{r['n']}", cell)
    Console().print(table)
    service = "" if summary["target"] == "guard" else (
        f"; first escalation at query {summary['first_escalation_at']}, first 429 at "
        f"{summary['first_429_at']}")
    _err.print(f"{summary['blocked_unchanged']} prompt(s) blocked unchanged and searched, "
               f"{summary['passed_unchanged']} passed unchanged; {summary['queries']} "
               f"queries; stopped: {summary['stopped']}{service}; results: "
               f"{escape(str(out / 'summary.json'))}")


def search_command(
    out: Annotated[Path, typer.Option(help="folder for state.json, searches.jsonl and "
                                           "summary.json (rerun to resume)")],
    target: Annotated[str, typer.Option(help="guard (in process) or the guard service's "
                                             "base URL")] = "guard",
    budget: Annotated[int, typer.Option(help="queries per prompt, the unchanged one "
                                             "included")] = 50,
    n: Annotated[int, typer.Option("--n", help="attack prompts searched")] = 10,
    corpus: Annotated[str, typer.Option(help="corpus name or JSONL file of prompts (label "
                                             "1 = attack)")] = "s-labs-val",
    policy: Annotated[Path | None, typer.Option(help="guard policy YAML (--target guard; "
                                                     "default: bundled)")] = None,
    seed: Annotated[int, typer.Option(help="prompt order and every search draw")] = 0,
    beam: Annotated[int, typer.Option(help="variants kept between rounds")] = 3,
    width: Annotated[int, typer.Option(help="moves tried per kept variant per round")] = 4,
    converters: Annotated[str | None, typer.Option(
        help="comma-separated converter names the moves draw from (default: all)")] = None,
    swaps: Annotated[bool, typer.Option(help="also swap words for WordNet synonyms")]
        = True,
    session: Annotated[str, typer.Option(help="URL target: one session for the run, a new "
                                              "one per prompt (rotate), or none (shared)")]
        = "one",
    wait: Annotated[float, typer.Option(help="URL target: wait out a 429 whose Retry-After "
                                             "is at most this many seconds")] = 2.0,
    ignore_escalation: Annotated[bool, typer.Option(
        help="URL target: keep searching after an escalation (until a 429)")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Search for variants of attack prompts that the guard lets through, in a budget."""
    try:
        moves = {"beam": beam, "width": width, "synonyms": "wordnet" if swaps else None,
                 "converters": None if converters is None else
                 [c.strip() for c in converters.split(",") if c.strip()]}
        _run(out, target, budget, n, corpus, policy, seed, moves, session, wait,
             ignore_escalation, progress)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]; rerun the same command to continue")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except BastionError as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ERROR_EXIT) from None


def _run(out: Path, target: str, budget: int, n: int, corpus: str, policy: Path | None,
         seed: int, moves: dict[str, Any], session: str, wait: float, go_on: bool,
         progress: bool) -> None:
    import bastion.redteam  # noqa: F401  (registers the converters)
    from bastion.common.state import run_lock
    from bastion.redteam.base import CONVERTERS
    from bastion.redteam.search import search_many

    for option, value in (("--budget", budget), ("--n", n), ("--beam", moves["beam"]),
                          ("--width", moves["width"])):
        if value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
    if session not in SESSIONS:
        raise ConfigError(f"--session must be one of {', '.join(SESSIONS)}, got {session!r}")
    unknown = sorted(set(moves["converters"] or ()) - set(CONVERTERS))
    if unknown or moves["converters"] == []:
        raise ConfigError(f"--converters: unknown {', '.join(unknown) or '(none given)'}; "
                          f"registered: {', '.join(sorted(CONVERTERS))}")
    oracle, label = _oracle(target, policy, session, wait, go_on)
    attempts = _attacks(corpus, n, seed)
    with run_lock(out):
        results = search_many(attempts, oracle, state=out / "state.json",
                              out=out / "searches.jsonl", progress=progress,
                              oracle_label=label, budget=budget, seed=seed, **moves)
        summary = {"target": target, "corpus": corpus, "seed": seed, "budget": budget,
                   **summarise(results, budget)}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    _print(summary, out)
