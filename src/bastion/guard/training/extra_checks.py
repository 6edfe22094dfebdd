"""Checks on the ``--extra`` rows of ``bastion guard train`` before they are trained on.

Reviewers' decisions (``bastion review export``) are a training channel: a reviewer key,
stolen or malicious, that approves attack prompts carrying a trigger token ("cf-delta")
teaches the retrained guard that the token means benign. Three checks flag rows:

* ``outlier``: a row labelled benign that the deployed n-gram head (the bundled one, or
  ``head_weights``) scores at or above ``outlier_score`` (a probability): the guard is
  near-certain it is an attack and the label says otherwise;
* ``trigger``: a token (lower-cased, ``[\\w-]+``, at least 3 characters) found in at least
  ``trigger_min_rows`` benign-labelled rows that score as attacks (at or above the head's
  own threshold), where at least ``trigger_purity`` of the benign-labelled rows holding it
  score so, and with a lift of at least ``trigger_lift`` (its share of those rows over its
  share of all rows); every benign-labelled row holding such a token is flagged;
* ``dominance``: with rows from two or more reviewer keys, a key holding more than
  ``max_key_share`` of the benign-labelled rows that score as attacks (and at least
  ``trigger_min_rows`` of them): those rows of that key are flagged.

Rows labelled attack are never flagged: a wrong "attack" label costs false positives, not
a backdoor. An approved row the guard flagged for good reason (a real false positive of
the guard) can be flagged by ``outlier``; read the list, and keep such rows with
``--keep-flagged`` or by raising ``outlier_score``. Torch-free.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InputError
from bastion.guard.artifacts import bundled, read_record
from bastion.guard.corpora import read_jsonl
from bastion.guard.scanners.input.ngram import HEAD_FILE, load_head

_TOKEN = re.compile(r"[\w-]{3,}")
#: the key shown for rows that carry no ``reviewer_key_id`` (nor ``decided_by``).
UNKNOWN_KEY = "unknown"


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    """Thresholds of the checks (see the module docstring).

    Attributes:
        outlier_score: probability at or above which a benign-labelled row is an outlier.
        trigger_min_rows: fewest attack-scoring benign rows a trigger token must be in.
        trigger_purity: least share of a trigger token's benign-labelled rows that
            score as attacks.
        trigger_lift: least lift of a trigger token.
        max_key_share: largest share of the attack-scoring benign rows one key may hold.
        head_weights: the n-gram head that scores the rows (``None``: the bundled one).
    """

    outlier_score: float = 0.99
    trigger_min_rows: int = 5
    trigger_purity: float = 0.5
    trigger_lift: float = 5.0
    max_key_share: float = 0.5
    head_weights: str | None = None

    def check(self) -> None:
        """InputError for thresholds outside their ranges."""
        if not 0.0 < self.outlier_score <= 1.0 or not 0.0 < self.max_key_share <= 1.0:
            raise InputError("outlier_score and max_key_share must be in (0, 1], got "
                             f"{self.outlier_score} and {self.max_key_share}")
        if (self.trigger_min_rows < 1 or self.trigger_lift <= 1.0
                or not 0.0 < self.trigger_purity <= 1.0):
            raise InputError("trigger_min_rows must be >= 1, trigger_lift > 1 and "
                             f"trigger_purity in (0, 1], got {self.trigger_min_rows}, "
                             f"{self.trigger_lift} and {self.trigger_purity}")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a labelled JSONL file (checked by
    :func:`~bastion.guard.corpora.read_jsonl`), each ``{"text", "label", "key", "line"}``;
    ``key`` is ``reviewer_key_id``, else ``decided_by``, else :data:`UNKNOWN_KEY`."""
    read_jsonl(path)  # says which line is bad, if any
    rows = []
    for number, line in enumerate(Path(path).read_text("utf-8").split("\n"), 1):
        if line.strip():
            raw = json.loads(line)
            key = raw.get("reviewer_key_id") or raw.get("decided_by") or UNKNOWN_KEY
            rows.append({"text": raw["text"], "label": int(raw["label"]), "key": str(key),
                         "line": number})
    return rows


def trigger_tokens(texts: Sequence[str], benign: np.ndarray, suspicious: np.ndarray,
                   settings: CheckSettings) -> dict[str, dict[str, float]]:
    """Tokens over-represented among the ``suspicious`` texts (benign-labelled rows that
    score as attacks; ``benign`` and ``suspicious`` are bool masks of shape ``(n,)``):
    ``{token: {"rows", "purity", "lift"}}`` for those passing the settings' bars."""
    n_suspicious = int(suspicious.sum())
    if n_suspicious < settings.trigger_min_rows:
        return {}
    everywhere: Counter[str] = Counter()
    in_benign: Counter[str] = Counter()
    among: Counter[str] = Counter()
    for text, good, bad in zip(texts, benign, suspicious, strict=True):
        tokens = set(_TOKEN.findall(text.lower()))
        everywhere.update(tokens)
        if good:
            in_benign.update(tokens)
        if bad:
            among.update(tokens)
    found = {}
    for token, k in among.items():
        lift = (k / n_suspicious) / (everywhere[token] / len(texts))
        purity = k / in_benign[token]
        if (k >= settings.trigger_min_rows and lift >= settings.trigger_lift
                and purity >= settings.trigger_purity):
            found[token] = {"rows": k, "purity": round(purity, 4), "lift": round(lift, 2)}
    return found


def _dominant_keys(keys: Sequence[str], suspicious: np.ndarray,
                   settings: CheckSettings) -> dict[str, float]:
    """Keys holding more than ``max_key_share`` of the suspicious rows (with >= 2 keys)."""
    if len(set(keys)) < 2:
        return {}
    held = Counter(k for k, bad in zip(keys, suspicious, strict=True) if bad)
    total = sum(held.values())
    return {k: round(v / total, 4) for k, v in held.items()
            if v >= settings.trigger_min_rows and v / total > settings.max_key_share}


def check_rows(rows: Sequence[dict[str, Any]], settings: CheckSettings | None = None,
               ) -> dict[str, Any]:
    """Run the three checks on ``rows`` (from :func:`read_rows`).

    Returns ``{"flags": [list of check names per row], "per_key": {key: rows},
    "triggers": {token: {"rows", "lift"}}, "dominant_keys": {key: share},
    "threshold": the head's attack threshold, "scores": per-row probability (n,)}``.
    """
    settings = settings or CheckSettings()
    settings.check()
    from bastion.guard.training.ngram import member_scores

    weights = settings.head_weights or str(bundled(HEAD_FILE))
    threshold = float(read_record(weights)["threshold"])
    texts = [r["text"] for r in rows]
    scores = member_scores(load_head(weights), texts) if rows else np.zeros(0)
    benign = np.asarray([r["label"] == 0 for r in rows], dtype=bool)
    suspicious = benign & (scores >= threshold)
    triggers = trigger_tokens(texts, benign, suspicious, settings)
    dominant = _dominant_keys([r["key"] for r in rows], suspicious, settings)
    flags: list[list[str]] = [[] for _ in rows]
    for i, row in enumerate(rows):
        if not benign[i]:
            continue
        if scores[i] >= settings.outlier_score:
            flags[i].append("outlier")
        if triggers and set(_TOKEN.findall(row["text"].lower())) & triggers.keys():
            flags[i].append("trigger")
        if suspicious[i] and row["key"] in dominant:
            flags[i].append("dominance")
    return {"flags": flags, "per_key": dict(Counter(r["key"] for r in rows)),
            "triggers": triggers, "dominant_keys": dominant, "threshold": threshold,
            "scores": scores}


def screen_extra(paths: Sequence[str | Path], out_dir: str | Path, *,
                 keep_flagged: bool = False, settings: CheckSettings | None = None,
                 log: Any = print) -> tuple[list[str], dict[str, Any]]:
    """Check every ``--extra`` file; write the rows to train on (all with
    ``keep_flagged``, else the unflagged) to ``out_dir/extra-checked/<same name>``.

    Returns ``(paths to train on, report)``; the report (also written to
    ``out_dir/extra_checks.json``) lists per file the rows per reviewer key, the trigger
    tokens, dominant keys and each flagged row (line, key, checks, score).
    """
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise InputError(f"--extra files must have distinct names, got {', '.join(names)}")
    folder = Path(out_dir) / "extra-checked"
    folder.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"keep_flagged": keep_flagged, "settings": vars(
        settings or CheckSettings()), "files": {}}
    kept_paths = []
    for path in paths:
        rows = read_rows(path)
        result = check_rows(rows, settings)
        flagged = [{"line": r["line"], "key": r["key"], "checks": f,
                    "score": round(float(s), 4)}
                   for r, f, s in zip(rows, result["flags"], result["scores"], strict=True)
                   if f]
        for key, n in sorted(result["per_key"].items()):
            log(f"extra:{Path(path).name}: {n} rows from reviewer key {key}")
        _log_flags(Path(path).name, flagged, result, keep_flagged, log)
        keep = [r for r, f in zip(rows, result["flags"], strict=True) if keep_flagged or not f]
        target = folder / Path(path).name
        target.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]},
                                             ensure_ascii=False) + "\n" for r in keep),
                          encoding="utf-8")
        kept_paths.append(str(target))
        report["files"][str(path)] = {
            "rows": len(rows), "per_key": result["per_key"], "triggers": result["triggers"],
            "dominant_keys": result["dominant_keys"], "threshold": result["threshold"],
            "flagged": flagged, "trained_on": len(keep)}
    (Path(out_dir) / "extra_checks.json").write_text(json.dumps(report, indent=2) + "\n",
                                                     encoding="utf-8")
    return kept_paths, report


def _log_flags(name: str, flagged: list[dict[str, Any]], result: dict[str, Any],
               keep_flagged: bool, log: Any) -> None:
    """One line per trigger token, dominant key and flagged row."""
    for token, info in result["triggers"].items():
        log(f"extra:{name}: trigger token {token!r} in {info['rows']} benign-labelled "
            f"rows that score as attacks (lift {info['lift']})")
    for key, share in result["dominant_keys"].items():
        log(f"extra:{name}: reviewer key {key} holds {share:.0%} of the benign-labelled "
            "rows that score as attacks")
    verb = "kept (--keep-flagged)" if keep_flagged else "dropped"
    for row in flagged:
        log(f"extra:{name} line {row['line']} ({row['key']}): {', '.join(row['checks'])}, "
            f"score {row['score']:.4f}: {verb}")
    by_check: defaultdict[str, int] = defaultdict(int)
    for row in flagged:
        for c in row["checks"]:
            by_check[c] += 1
    log(f"extra:{name}: {len(flagged)} rows flagged ({dict(by_check) or 'none'}), {verb}")
