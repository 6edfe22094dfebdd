"""``bastion redteam``: attack an LLM application and report what got through.

    bastion redteam --target embedded --compare --out rt/          # the default run
    bastion redteam --target http://localhost:8000/v1 --config app.yaml --out rt/
    bastion redteam --target proxy --compare --budget 20 --out rt/ # bastion's own proxy
    bastion redteam search --target guard --budget 50 --out search/ # adaptive search

``--target`` is ``embedded`` (SmolLM2-135M-Instruct in process), ``proxy`` (bastion's
guarded proxy, started for the run) or the base URL of any OpenAI-compatible endpoint
(its key in ``BASTION_REDTEAM_API_KEY``). ``--compare`` also runs the same attempts
through bastion's guard (for ``proxy``: also straight to the embedded model), so the
report shows guarded and unguarded side by side. Writes ``attempts.jsonl``,
``summary.json``, ``record.jsonl``, ``card.json`` and ``card.html`` under ``--out``.

Exit status: 0 done, 2 bad options or input, 130 interrupted (rerun the same command
to continue where it stopped). ``bastion redteam search`` is in
:mod:`bastion.redteam.search_cli`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from bastion.errors import BastionError, ConfigError

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
#: attempts written by all probes together (before converters) in the default run,
#: chosen so that `--target embedded --compare` ends within 15 minutes on 2 CPU cores.
DEFAULT_BUDGET = 16
#: new tokens per answer of the embedded model.
DEFAULT_MAX_TOKENS = 48
#: converters applied to every attempt by default (each alone, beside the attempt as is):
#: one the model reads without decoding (a 135M model cannot decode base64 or Morse).
DEFAULT_CONVERTERS = ("leet-mix",)
API_KEY_ENV = "BASTION_REDTEAM_API_KEY"
_err = Console(stderr=True)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [n.strip() for n in text.split(",") if n.strip()]


def _check_target(target: str) -> str:
    if target in ("embedded", "proxy") or target.startswith(("http://", "https://")):
        return target
    raise ConfigError(f"--target {target!r} is not a target: pass embedded, proxy or the "
                      "base URL of an OpenAI-compatible API (http://host:port/v1)")


def _check_numbers(budget: int, concurrency: int, max_tokens: int) -> None:
    for option, value in (("--budget", budget), ("--concurrency", concurrency),
                          ("--max-tokens", max_tokens)):
        if value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")


def _load_app(path: Path | None) -> Any:
    if path is not None and not path.is_file():
        raise ConfigError(f"--config {path} is not a file; pass an application YAML "
                          "(see docs/redteam.md for its format)")
    from bastion.redteam.app import load_app

    return load_app(path)


@contextmanager
def _targets(target: str, compare: bool, max_tokens: int, model: str | None
             ) -> Iterator[dict[str, Any]]:
    """Label -> target for the run; the proxy (if any) runs until the block ends."""
    from bastion.redteam.targets import EmbeddedTarget, GuardedTarget, OpenAITarget

    def guard() -> Any:
        from bastion.guard import Guard
        return Guard()

    with ExitStack() as stack:
        if target == "proxy":
            from bastion.redteam.proxy import start_proxy
            out: dict[str, Any] = {"unguarded": EmbeddedTarget(max_tokens=max_tokens)} \
                if compare else {}
            out["guarded"] = stack.enter_context(start_proxy(max_tokens=max_tokens))
            yield out
            return
        if target == "embedded":
            inner: Any = EmbeddedTarget(max_tokens=max_tokens)
        else:
            inner = OpenAITarget(target, api_key=os.environ.get(API_KEY_ENV), model=model,
                                 max_tokens=max_tokens)
            stack.callback(inner.close)
        out = {"unguarded": inner}
        if compare:
            out["guarded"] = GuardedTarget(inner, guard())
        yield out


def _print(summary: dict[str, Any], out: Path) -> None:
    table = Table(title="attack success rate by probe family (95% Wilson interval)")
    labels = list(summary["targets"])
    table.add_column("family")
    for label in labels:
        table.add_column(label, justify="right")
    families = sorted({f for t in summary["targets"].values() for f in t["per_family"]})
    for family in families:
        cells = []
        for label in labels:
            r = summary["targets"][label]["per_family"].get(family)
            cells.append("n/a" if not r or r["rate"] is None else
                         f"{100 * r['rate']:.0f}% [{100 * r['interval'][0]:.0f}, "
                         f"{100 * r['interval'][1]:.0f}] ({r['n']})")
        table.add_row(family, *cells)
    Console().print(table)
    leaks = ", ".join(f"{k} {v}" for k, v in summary["leaks"].items())
    _err.print(f"leaks reaching the user: {leaks}; {summary['queries']} queries in "
               f"{summary['wall_s']:.0f} s; report: {escape(str(out / 'card.html'))}")


def redteam(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="folder for attempts.jsonl, summary and "
                                                  "card (required)")] = None,
    target: Annotated[str, typer.Option(help="embedded, proxy, or an API base URL")]
        = "embedded",
    config: Annotated[Path | None, typer.Option(help="application YAML (system prompt, "
                                                     "canary, documents, tools)")] = None,
    compare: Annotated[bool, typer.Option(help="also run through bastion's guard")] = False,
    budget: Annotated[int, typer.Option(help="attempts from all probes, before "
                                             "converters")] = DEFAULT_BUDGET,
    probes: Annotated[str | None, typer.Option(help="comma-separated probe names "
                                                    "(default: all)")] = None,
    converters: Annotated[str | None, typer.Option(
        help="comma-separated converter names; '' for none")] = ",".join(DEFAULT_CONVERTERS),
    concurrency: Annotated[int, typer.Option(help="conversations in flight")] = 2,
    max_tokens: Annotated[int, typer.Option(help="new tokens per answer")]
        = DEFAULT_MAX_TOKENS,
    model: Annotated[str | None, typer.Option(help="model name sent to a URL target")]
        = None,
    seed: Annotated[int, typer.Option(help="seed of probes and converters")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Red-team an LLM application: probes x converters against a target, judged.
    `bastion redteam search --help`: adaptive search against the guard."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        if out is None:
            raise ConfigError("--out is required: the folder for attempts.jsonl, the "
                              "summary and the card")
        _run(out, target, config, compare, budget, _names(probes), _names(converters) or [],
             concurrency, max_tokens, model, seed, progress)
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]; rerun the same command to continue")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except BastionError as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ERROR_EXIT) from None


def _run(out: Path, target: str, config: Path | None, compare: bool, budget: int,
         probes: list[str] | None, converters: list[str], concurrency: int,
         max_tokens: int, model: str | None, seed: int, progress: bool) -> None:
    import bastion.redteam  # noqa: F401  (registers probes, converters, judges)
    from bastion.common.records import new_run_id, versions
    from bastion.redteam.runner import plan, run
    from bastion.report import write_redteam_card

    target = _check_target(target)
    _check_numbers(budget, concurrency, max_tokens)
    app = _load_app(config)
    attempts = plan(app, probes, converters, budget=budget, seed=seed)
    params = {"target": target, "max_tokens": max_tokens, "model": model,
              "compare": compare}
    with _targets(target, compare, max_tokens, model) as targets, \
            Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=_err, disable=not progress) as bar:
        task = bar.add_task("red team", total=len(attempts) * len(targets))
        summary = run(targets, app, attempts, out, concurrency=concurrency, seed=seed,
                      params=params,
                      on_done=lambda done, total: bar.update(task, completed=done))
    command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_redteam_card(out, summary, run={"run_id": new_run_id(), "seed": seed,
                                          "versions": versions(), "command": command})
    _print(summary, out)


def register(app: typer.Typer) -> None:
    """Attach ``bastion redteam`` (and ``bastion redteam search``) to the main command."""
    from bastion.redteam.search_cli import search_command

    group = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    group.callback()(redteam)
    group.command("search")(search_command)
    app.add_typer(group, name="redteam")
