"""``bastion text-attack``: edit flagged texts until a text classifier lets them pass.

    bastion text-attack --target toxicity --texts insults.txt --recipe charbug
    bastion text-attack --target injection --texts prompts.jsonl --json out.json
    bastion text-attack --target mypkg.model:score --threshold 0.7 --texts t.txt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError

_out = Console()
_err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def read_texts(path: Path) -> list[str]:
    """Texts from a file: a ``.jsonl`` file gives each line's ``"text"``; any other file
    gives one text per non-blank line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if path.suffix != ".jsonl":
        return [line for line in lines if line.strip()]
    texts: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text = item["text"] if isinstance(item, dict) else None
        except (ValueError, KeyError):
            text = None
        if not isinstance(text, str):
            raise _fail(f"{path}:{number}: each line must be a JSON object with a "
                        "\"text\" string")
        texts.append(text)
    return texts


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print(summary: dict[str, Any], target: str, threshold: float) -> None:
    table = Table(title=f"text attack on {escape(target)} (flagged at >= {threshold:.3f})")
    # short headers: the table must fit an 80-column terminal
    for col in ("recipe", "attacked", "skipped", "passed", "rate", "95% CI",
                "queries median", "mean", "words"):
        table.add_column(col, justify="left" if col == "recipe" else "right")
    ci = summary["success_ci"]
    table.add_row(escape(summary["recipe"]), str(summary["attacked"]),
                  str(summary["skipped"]), str(summary["successes"]),
                  _num(summary["success_rate"]),
                  "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]",
                  _num(summary["queries_per_success_median"], 1),
                  _num(summary["queries_per_success_mean"], 1),
                  _num(summary["words_changed_mean"], 2))
    _out.print(table)
    _out.print("passed: edited texts the target lets through; queries and words: per "
               "passed text (mean words edited)")


def text_attack(
    target: Annotated[str, typer.Option(help="toxicity, injection, or module:callable "
                                             "(a function from a list of texts to risk "
                                             "scores in [0, 1])")],
    texts: Annotated[Path, typer.Option(help="one text per line, or .jsonl with a "
                                             "\"text\" field per line")],
    recipe: Annotated[str, typer.Option(help="charbug, charbug-ascii, deepwordbug, synonym "
                                             "or glove")] = "charbug",
    threshold: Annotated[float | None, typer.Option(help="flagged at or above this "
                                                         "(default: the target's own)")] = None,
    max_queries: Annotated[int, typer.Option(help="texts scored per text, at most")] = 500,
    max_fraction: Annotated[float | None, typer.Option(
        help="share of a text's words that may be edited (default: the recipe's)")] = None,
    limit: Annotated[int | None, typer.Option(help="attack the first N texts")] = None,
    seed: Annotated[int, typer.Option(help="seed for the random edits")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write every text's "
                                                                  "result here")] = None,
    record: Annotated[Path | None, typer.Option(help="append a run record (JSON lines: "
                                                     "settings, versions, summary)")] = None,
    state: Annotated[Path | None, typer.Option(help="resume file, saved after every text; "
                                                    "rerun with it after an interruption")
                     ] = None,
) -> None:
    """Edit texts the target flags (character edits or synonym swaps, greedy by word
    importance) until it lets them pass; print the success rate and queries per success.

    Exits 0 when the measurement ran; 2 for bad input; 130 when interrupted.
    """
    from bastion.common.records import RecordWriter, new_run_id, versions
    from bastion.redteam.text_attack import attack
    from bastion.redteam.text_targets import load_target

    items = read_texts(texts)
    if limit is not None:
        if limit < 1:
            raise _fail(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    try:
        chosen = load_target(target, threshold)
        result = attack(items, chosen.scorer, threshold=chosen.threshold, recipe=recipe,
                        max_queries=max_queries, max_fraction=max_fraction, seed=seed,
                        progress=_err.is_terminal, state=state, target=target)
    except BastionError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        _err.print("[yellow]interrupted[/]; " + (f"rerun to resume from {state}" if state
                                                 else "pass --state FILE to resume"))
        raise typer.Exit(130) from None
    out = {"target": target, "texts_file": str(texts), **result.to_dict()}
    try:
        if json_path is not None:
            json_path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        if record is not None:
            writer = RecordWriter(record, new_run_id())
            writer.write("run", seed=seed, versions=versions(),
                         params={k: v for k, v in out.items() if k not in ("texts",
                                                                           "summary")})
            writer.write("summary", **result.summary())
    except OSError as exc:
        raise _fail(f"cannot write results: {exc}") from None
    _print(result.summary(), target, chosen.threshold)


def register(app: typer.Typer) -> None:
    """Add the ``text-attack`` command to ``app``."""
    app.command(name="text-attack")(text_attack)
