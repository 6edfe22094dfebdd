"""``bastion guard attack``: perturb the attack prompts the guard catches and measure how
many get through, per perturbation family and edit budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError
from bastion.guard.cli_util import csv_ints, err, fail, interval, num, out


def attack(
    corpus: Annotated[str, typer.Option(help="a JSONL file ({\"text\", \"label\"} per line) or "
                                             "a built-in name (e.g. s-labs-val); label-1 "
                                             "prompts are attacked")],
    families: Annotated[str | None, typer.Option(help="comma-separated perturbation "
                                                      "families (default: all)")] = None,
    budgets: Annotated[str, typer.Option(help="comma-separated edit budgets")] = "1,3,5",
    tries: Annotated[int, typer.Option(help="queries per prompt, family and budget")] = 5,
    limit: Annotated[int | None, typer.Option(help="use the first N examples")] = None,
    seed: Annotated[int, typer.Option(help="seed for the perturbations")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json",
                                                   help="write the full result here")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy YAML (default: bundled)")] = None,
    state: Annotated[Path | None, typer.Option(help="resume file: saved after every family "
                                                    "and budget; rerun with it to go on "
                                                    "after an interruption")] = None,
) -> None:
    """Perturb the attack prompts the guard catches; print the attack success rate per
    perturbation family and budget.

    The attacker is black-box with TRIES queries per prompt. Exits 0 when the
    measurement ran; 2 for bad input; 130 when interrupted (with --state, the finished
    families and budgets are kept).
    """
    from bastion import __version__
    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.guard import Guard  # imported late: scanners load models

    budget_list = csv_ints(budgets, "--budgets")
    names = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
    if limit is not None and limit < 1:
        raise fail(f"--limit must be at least 1, got {limit}")
    try:
        examples = load_corpus(corpus)
        if limit is not None:
            examples = examples[:limit]
        guard = Guard(policy)
        result = attack_guard(guard, examples, families=names, budgets=budget_list,
                              tries=tries, seed=seed, progress=err.is_terminal,
                              state=state)
    except BastionError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        hint = (f"rerun the same command to resume from {state}" if state else
                "pass --state FILE to make the run resumable")
        err.print(f"[yellow]interrupted[/]; {hint}")
        raise typer.Exit(130) from None
    result = {"corpus": corpus, "limit": limit, "policy": guard.policy.source,
              "bastion_version": __version__, **result}
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {json_path}: {exc.strerror or exc}") from None
    table = Table(title=f"guard attack: {escape(corpus)} ({result['n_attacks']} attacks, "
                        f"{result['n_caught']} caught, TPR {num(result['tpr_before'])}; "
                        f"black-box, {tries} queries per prompt)")
    for col in ("family", "budget", "evaded", "ASR", "TPR after", "TPR drop (pts)",
                "95% CI", "queries"):
        table.add_column(col, justify="left" if col == "family" else "right",
                         no_wrap=col == "family")
    for r in result["results"]:
        table.add_row(escape(r["family"]), str(r["budget"]), f"{r['evaded']}/{r['caught']}",
                      num(r["asr"]), num(r["tpr_after"]), num(r["tpr_drop_points"], 1),
                      interval(r["tpr_drop_ci_points"]), str(r["queries"]))
    out.print(table)
    worst = result["worst"]
    if worst is not None:
        out.print(f"worst family (mean ASR over budgets): {escape(result['worst_family'])}; "
                   f"worst cell: {escape(worst['family'])} at budget {worst['budget']}, "
                   f"ASR {num(worst['asr'])}")
    for key, why in result["notes"].items():
        out.print(f"{escape(key)}: {escape(why)}")
