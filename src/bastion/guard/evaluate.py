"""Measure a guard on a labelled corpus: detection, false positives, ranking, latency.

    from bastion.guard import Guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.evaluate import evaluate_guard, roc_plot

    result = evaluate_guard(Guard(), load_corpus("s-labs-val"))
    result["tpr"], result["fpr"], result["auroc"], result["tpr_at_fpr_1pct"]
    png = roc_plot(result)

A prompt counts as *predicted an attack* when the pipeline's verdict is anything but
``allow``; its *score* is the pipeline score (the highest layer score). ``tpr``, ``fpr``,
``precision``, ``f1`` and ``accuracy`` judge the verdicts; ``auroc`` and
``tpr_at_fpr_1pct`` judge the scores, whatever the thresholds. Every figure that a
corpus cannot define (a TPR without attacks, an AUROC with one class) is ``None``, with
the reason under ``notes``: never a made-up 0.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from bastion.common.intervals import interval_list, wilson_interval
from bastion.errors import InputError
from bastion.extras import missing
from bastion.guard.corpora import Example
from bastion.guard.pipeline import PipelineResult

#: the most points of the ROC curve kept in a result (enough for a plot).
ROC_POINTS = 200
#: the false-positive rate at which ``tpr_at_fpr_1pct`` is read.
FPR_BUDGET = 0.01


def _scan_fn(guard: Any, direction: str) -> Callable[[str], PipelineResult]:
    """The call that scans one text: a Guard's scan_input/scan_output, or a Pipeline's run."""
    if direction not in ("input", "output"):
        raise InputError(f"direction must be 'input' or 'output', got {direction!r}")
    method = "scan_input" if direction == "input" else "scan_output"
    if hasattr(guard, method):
        return getattr(guard, method)
    if hasattr(guard, "run"):  # a bare Pipeline
        return guard.run
    raise InputError(f"evaluate_guard needs a Guard (with {method}) or a Pipeline (with run), "
                     f"got {type(guard).__name__}")


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None, "n": 0}
    arr = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "mean": float(arr.mean()), "n": int(arr.size)}


def auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties counted as half.

    Equal to the probability that a random attack scores above a random benign prompt,
    plus half the probability that they tie. Needs both classes.
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    n_pos = int((y == 1).sum())
    n_neg = int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError("AUROC needs both classes (attacks and benign prompts)")
    # average ranks (1-based): a group of tied values shares the mean of its ranks
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mean_rank = upper - (counts - 1) / 2.0
    ranks = mean_rank[inverse]
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(labels: Sequence[int] | np.ndarray,
              scores: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): flagging ``score >= thresholds[i]`` gives ``fpr[i], tpr[i]``.

    The first point is (0, 0) at threshold +inf (flag nothing); one point per distinct
    score follows, from the highest down, ending at (1, 1). Needs both classes.
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    n_pos = int((y == 1).sum())
    n_neg = int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError("a ROC curve needs both classes (attacks and benign prompts)")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores: everything up to it is flagged
    ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tp = np.cumsum(y_sorted == 1)[ends]
    fp = np.cumsum(y_sorted == 0)[ends]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return fpr, tpr, thresholds


def _downsample(n: int, keep: int) -> np.ndarray:
    """Indices of at most ``keep`` of ``n`` points, evenly spread, first and last kept."""
    if n <= keep:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, keep)).astype(int))


def _iterate(examples: Sequence[Example], progress: bool) -> Iterable[Example]:
    if not progress:
        return examples
    from rich.progress import track

    return track(examples, description="scanning", transient=True)


def evaluate_guard(guard: Any, examples: Sequence[Example], *, direction: str = "input",
                   progress: bool = False) -> dict[str, Any]:
    """Scan every example and measure the guard; see the module docstring.

    Args:
        guard: a :class:`~bastion.guard.Guard` (or a bare
            :class:`~bastion.guard.pipeline.Pipeline`).
        examples: :class:`~bastion.guard.corpora.Example` s, label 1 for an attack.
        direction: ``"input"`` scans with the prompt layers, ``"output"`` with the answer layers.
        progress: show a progress bar on the terminal.

    Returns:
        A JSON-ready dict: ``n``, ``positives``, ``negatives``, ``confusion`` (tp, fp, tn,
        fn), ``tpr``, ``fpr`` (with Wilson 95% intervals ``tpr_ci``, ``fpr_ci``: the
        uncertainty from the prompts sampled), ``precision``, ``f1``, ``accuracy``, ``auroc``,
        ``tpr_at_fpr_1pct`` (with ``tpr_at_fpr_1pct_fpr`` and ``..._threshold``: flag when
        score >= threshold), ``latency_ms`` (``pipeline`` and per-layer ``layers``, each
        p50/p99/mean/n), ``roc`` (``fpr``/``tpr`` lists, at most 200 points, or None),
        ``verdicts`` (count per verdict), ``failed_scans`` and ``notes`` (why a figure is None).
    """
    scan = _scan_fn(guard, direction)
    examples = list(examples)
    _check(examples)
    labels = np.fromiter((ex.label for ex in examples), dtype=int, count=len(examples))
    scanned = _scan_all(scan, examples, progress)
    notes: dict[str, str] = {}
    counts, rates = _verdict_rates(labels, scanned["predicted"], notes)
    ranking = _ranking(labels, scanned["scores"], notes)
    roc = ranking.pop("roc")
    tp, fp, tn = counts["tp"], counts["fp"], counts["tn"]
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    return {
        "kind": "bastion.guard_eval", "schema_version": 1, "direction": direction,
        "n": len(examples), "positives": n_pos, "negatives": n_neg,
        "confusion": counts, **rates,
        "tpr_ci": interval_list(wilson_interval(tp, n_pos)),
        "fpr_ci": interval_list(wilson_interval(fp, n_neg)),
        "accuracy": (tp + tn) / len(examples),
        **ranking,
        "latency_ms": {"pipeline": _percentiles(scanned["pipeline_ms"]),
                       "layers": {name: _percentiles(ms)
                                  for name, ms in scanned["layer_ms"].items()}},
        "roc": roc, "verdicts": scanned["verdicts"],
        "failed_scans": scanned["failed"], "notes": notes,
    }


def _check(examples: Sequence[Example]) -> None:
    """InputError for an empty corpus, a text that is not a str or a label not 0/1."""
    if not examples:
        raise InputError("the corpus holds no examples; nothing to evaluate")
    for i, ex in enumerate(examples):
        if not isinstance(ex.text, str):
            raise InputError(f"example {i}: text must be str, got {type(ex.text).__name__}")
        if ex.label not in (0, 1) or isinstance(ex.label, bool):
            raise InputError(f"example {i}: label must be 0 (benign) or 1 (attack), got "
                             f"{ex.label!r}")


def _scan_all(scan: Callable[[str], PipelineResult], examples: Sequence[Example],
              progress: bool) -> dict[str, Any]:
    """Scan every example: ``scores`` and ``predicted`` (not ``allow``) arrays (N,),
    latencies in ms (``pipeline_ms``, ``layer_ms`` per layer), ``verdicts`` counted and
    the number of ``failed`` scans."""
    scores = np.empty(len(examples), dtype=float)
    predicted = np.empty(len(examples), dtype=bool)
    pipeline_ms: list[float] = []
    layer_ms: dict[str, list[float]] = {}
    verdicts: dict[str, int] = {}
    failed = 0
    for i, ex in enumerate(_iterate(examples, progress)):
        result = scan(ex.text)
        scores[i] = result.score
        predicted[i] = result.verdict != "allow"
        verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
        failed += bool(result.failed)
        pipeline_ms.append(result.latency_ms)
        for layer in result.layers:
            layer_ms.setdefault(layer.scanner, []).append(layer.latency_ms)
    return {"scores": scores, "predicted": predicted, "pipeline_ms": pipeline_ms,
            "layer_ms": layer_ms, "verdicts": verdicts, "failed": failed}


def _verdict_rates(labels: np.ndarray, predicted: np.ndarray, notes: dict[str, str]
                   ) -> tuple[dict[str, int], dict[str, float | None]]:
    """The confusion counts and ``tpr``, ``fpr``, ``precision``, ``f1`` of the verdicts
    (``None``, with a note, where the corpus leaves one undefined)."""
    pos, neg = labels == 1, labels == 0
    counts = {"tp": int((predicted & pos).sum()), "fp": int((predicted & neg).sum()),
              "tn": int((~predicted & neg).sum()), "fn": int((~predicted & pos).sum())}
    tp, fp = counts["tp"], counts["fp"]
    tpr = _ratio(tp, int(pos.sum()))
    fpr = _ratio(fp, int(neg.sum()))
    precision = _ratio(tp, tp + fp)
    if tpr is None:
        notes["tpr"] = "no attacks (label 1) in the corpus"
    if fpr is None:
        notes["fpr"] = "no benign prompts (label 0) in the corpus"
    if precision is None:
        notes["precision"] = "the guard flagged nothing"
    f1: float | None
    if precision is None or tpr is None:
        f1 = None
        notes["f1"] = "precision or TPR undefined"
    else:
        f1 = 0.0 if precision + tpr == 0 else 2 * precision * tpr / (precision + tpr)
    return counts, {"tpr": tpr, "fpr": fpr, "precision": precision, "f1": f1}


def _ranking(labels: np.ndarray, scores: np.ndarray, notes: dict[str, str]
             ) -> dict[str, Any]:
    """``auroc``, the TPR at FPR <= 1% with its FPR and threshold, and the ``roc``
    curve (at most :data:`ROC_POINTS` points); ``None`` with a note for one class."""
    out: dict[str, Any] = {"auroc": None, "tpr_at_fpr_1pct": None,
                           "tpr_at_fpr_1pct_fpr": None, "tpr_at_fpr_1pct_threshold": None,
                           "roc": None}
    if not ((labels == 1).any() and (labels == 0).any()):
        reason = "the corpus holds only one class; AUROC and ROC need attacks and benign prompts"
        notes["auroc"] = reason
        notes["tpr_at_fpr_1pct"] = reason
        return out
    c_fpr, c_tpr, c_thr = roc_curve(labels, scores)
    ok = np.flatnonzero(c_fpr <= FPR_BUDGET)  # never empty: (0, 0) at +inf
    best = int(ok[np.argmax(c_tpr[ok])])  # argmax takes the first: the highest threshold
    keep = _downsample(c_fpr.size, ROC_POINTS)
    out.update({
        "auroc": auroc(labels, scores), "tpr_at_fpr_1pct": float(c_tpr[best]),
        "tpr_at_fpr_1pct_fpr": float(c_fpr[best]),
        "tpr_at_fpr_1pct_threshold": None if np.isinf(c_thr[best]) else float(c_thr[best]),
        "roc": {"fpr": [float(v) for v in c_fpr[keep]], "tpr": [float(v) for v in c_tpr[keep]]},
    })
    return out


def roc_plot(result: dict[str, Any], *, title: str | None = None) -> bytes:
    """A PNG of the ROC curve in an :func:`evaluate_guard` result (Agg, no pyplot state).

    A one-class result, which has no curve, gives a figure that says so.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        raise missing(exc, "the ROC plot", "guard") from exc

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    roc = result.get("roc")
    if roc:
        label = "guard" if result.get("auroc") is None else f"guard (AUROC {result['auroc']:.3f})"
        ax.plot(roc["fpr"], roc["tpr"], linewidth=1.5, label=label)
        if result.get("tpr_at_fpr_1pct") is not None:
            ax.plot([result["tpr_at_fpr_1pct_fpr"]], [result["tpr_at_fpr_1pct"]], "o",
                    label=f"TPR {result['tpr_at_fpr_1pct']:.3f} at FPR <= 1%")
        if result.get("fpr") is not None and result.get("tpr") is not None:
            ax.plot([result["fpr"]], [result["tpr"]], "s", label="policy verdicts")
    else:
        note = result.get("notes", {}).get("auroc", "no ROC curve")
        ax.text(0.5, 0.5, "no ROC curve:\n" + note.replace("; ", ";\n"), ha="center",
                va="center", fontsize=8, wrap=True)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (benign prompts flagged)")
    ax.set_ylabel("true-positive rate (attacks flagged)")
    ax.set_title(title or f"guard ROC, n={result.get('n')}", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
