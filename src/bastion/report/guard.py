"""The card's ``guard`` section: the LLM guard beside the classifier (``bastion demo``).

The section is :func:`bastion.demo.guard_section`'s result with empty values dropped::

    {"policy": str, "seconds": float,
     "prompts": [{"text", "kind": "benign"|"attack", "note", "verdict", "score",
                  "layer", "reason"}],
     "corpus": {"name", "limit", "n", "positives", "negatives",
                "confusion": {"tp", "fp", "tn", "fn"}, "tpr", "tpr_ci", "fpr", "fpr_ci",
                "precision", "auroc", "failed_scans", "latency_ms": {"p50", "p99"},
                "notes"}}

Rates and AUROC are fractions, intervals two-sided 95% Wilson, latency in milliseconds.
:func:`check_guard` checks what the schema cannot: the counts add up and each rate is
its count over its class, inside its interval. :func:`guard_view` lays the numbers out
for the page.
"""

from __future__ import annotations

from typing import Any

from bastion.report._schema import invalid
from bastion.report.redteam import redteam_section

_TOL = 1e-9


def guard_card_section(section: dict[str, Any]) -> dict[str, Any]:
    """The guard's result as a card section: ``None`` values (a rate a corpus cannot
    define) dropped, so every schema type stays single; the reason stays in ``notes``."""
    return redteam_section(section)  # the same rule: drop None, keep the rest


def _check_rate(corpus: dict[str, Any], key: str, count: int, total: int, path: str) -> None:
    if key not in corpus:
        return
    rate = corpus[key]
    if abs(rate - count / total) > _TOL:
        raise invalid(f"{path}.{key}", f"{rate} is not {count} / {total}")
    low, high = corpus.get(f"{key}_ci", (rate, rate))
    if not low - _TOL <= rate <= high + _TOL:
        raise invalid(f"{path}.{key}_ci", f"[{low}, {high}] does not hold {rate}")


def check_guard(section: dict[str, Any], path: str = "$.guard") -> None:
    """Raise InputError when the corpus numbers disagree: confusion counts that do not
    add up to the attacks and benign prompts, those not to ``n``, or a TPR / FPR that is
    not its count over its class or lies outside its interval."""
    corpus, where = section["corpus"], f"{path}.corpus"
    c = corpus["confusion"]
    if corpus["positives"] + corpus["negatives"] != corpus["n"]:
        raise invalid(f"{where}.n", f"{corpus['n']} is not {corpus['positives']} attacks "
                      f"+ {corpus['negatives']} benign")
    if c["tp"] + c["fn"] != corpus["positives"]:
        raise invalid(f"{where}.confusion", f"tp + fn = {c['tp'] + c['fn']}, not the "
                      f"{corpus['positives']} attacks")
    if c["fp"] + c["tn"] != corpus["negatives"]:
        raise invalid(f"{where}.confusion", f"fp + tn = {c['fp'] + c['tn']}, not the "
                      f"{corpus['negatives']} benign prompts")
    if corpus["failed_scans"] > corpus["n"]:
        raise invalid(f"{where}.failed_scans", f"{corpus['failed_scans']} is more than n")
    if corpus["positives"]:
        _check_rate(corpus, "tpr", c["tp"], corpus["positives"], where)
    if corpus["negatives"]:
        _check_rate(corpus, "fpr", c["fp"], corpus["negatives"], where)


def guard_view(section: dict[str, Any]) -> dict[str, Any]:
    """Rows for the page: ``prompts`` (kind, note, text cut to 120 characters, verdict,
    score, deciding layer and reason, and whether the verdict matches the kind) and
    ``metrics`` (``(name, value)`` pairs as text, rates in percent)."""
    prompts = []
    for p in section["prompts"]:
        text = p["text"] if len(p["text"]) <= 120 else p["text"][:117] + "..."
        flagged = p["verdict"] != "allow"
        prompts.append({**p, "text": text, "flagged": flagged,
                        "as_expected": flagged == (p["kind"] == "attack")})
    corpus = section["corpus"]

    def pct(key: str) -> str:
        if key not in corpus:
            return "n/a"
        low, high = corpus[f"{key}_ci"]
        return f"{100 * corpus[key]:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"

    c = corpus["confusion"]
    metrics = [("attacks flagged (TPR)", pct("tpr")),
               ("benign prompts flagged (FPR)", pct("fpr")),
               ("precision", f"{100 * corpus['precision']:.1f}%" if "precision" in corpus
                else "n/a"),
               ("AUROC", f"{corpus['auroc']:.3f}" if "auroc" in corpus else "n/a"),
               ("tp / fp / tn / fn", f"{c['tp']} / {c['fp']} / {c['tn']} / {c['fn']}"),
               ("failed scans", str(corpus["failed_scans"]))]
    latency = corpus.get("latency_ms", {})
    if "p50" in latency and "p99" in latency:
        metrics.append(("latency p50 / p99", f"{latency['p50']:.1f} / {latency['p99']:.1f} ms"))
    return {"prompts": prompts, "metrics": metrics}
