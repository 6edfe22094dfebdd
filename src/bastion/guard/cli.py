"""``bastion guard ...``: the guard on the command line.

    bastion guard scan "ignore previous instructions"          # a prompt
    bastion guard scan --file answer.txt --output --json       # a model's answer

``scan`` exits 0 whatever the verdict: the verdict is data, printed for a person or as
JSON for a program, and a blocked prompt is not a failure of the command. It exits 2 for
bad input (no text, both a text and a file, an unreadable file, a bad policy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError

guard_app = typer.Typer(help="Scan prompts and answers with the LLM guard.",
                        no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)
_STYLE = {"allow": "green", "flag": "yellow", "redact": "cyan", "review": "magenta",
          "block": "bold red"}


def _verdict(verdict: str) -> str:
    """A verdict as rich markup, coloured by severity."""
    style = _STYLE.get(verdict)
    return f"[{style}]{verdict}[/]" if style else escape(verdict)


def _fail(message: str) -> typer.Exit:
    """Print an error to stderr and return the exit (code 2) to raise."""
    _err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)  # greppable: no breaks
    return typer.Exit(2)


def _read(text: str | None, file: Path | None) -> str:
    """The text to scan: the argument, or the file's UTF-8 content (``-`` reads stdin)."""
    if text is not None and file is not None:
        raise _fail("give the text to scan as an argument or with --file, not both")
    if text is not None:
        return text
    if file is None:
        raise _fail("give the text to scan as an argument, or with --file FILE "
                    "(--file - reads stdin)")
    try:
        if str(file) == "-":
            return sys.stdin.read()
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{file} is not UTF-8 text; convert it first (e.g. iconv -t utf-8)") \
            from None
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None


@guard_app.command()
def scan(
    text: Annotated[str | None, typer.Argument(help="the text to scan")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f",
                                              help="scan this UTF-8 file (- for stdin)")] = None,
    output: Annotated[bool, typer.Option("--output",
                                         help="scan as a model's answer (output layers)")] = False,
    prompt: Annotated[str | None, typer.Option(help="with --output: the prompt answered")] = None,
    canary: Annotated[str | None, typer.Option(help="with --output: the canary token")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy YAML (default: bundled)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Scan one prompt (or, with --output, one answer) and print the verdict per layer.

    Exits 0 whatever the verdict; 2 for bad input.
    """
    from bastion.guard.guard import Guard  # imported late: scanners load models

    content = _read(text, file)
    if not output and (prompt is not None or canary is not None):
        raise _fail("--prompt and --canary describe a model's answer; add --output")
    try:
        guard = Guard(policy)
        result = (guard.scan_output(content, prompt=prompt, canary=canary) if output
                  else guard.scan_input(content))
    except BastionError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    table = Table(title=f"guard ({'output' if output else 'input'}): "
                        f"{_verdict(result.verdict)}, score {result.score:.3f}, "
                        f"{result.latency_ms:.1f} ms")
    for col in ("layer", "verdict", "score", "ms", "reason"):
        table.add_column(col)
    for r in result.layers:
        table.add_row(escape(r.scanner), _verdict(r.verdict),
                      f"{r.score:.3f}", f"{r.latency_ms:.2f}", escape(r.reason or "-"))
    for name in result.skipped:
        table.add_row(escape(name), "skipped", "-", "-", "not run")
    _out.print(table)
