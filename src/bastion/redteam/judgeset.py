"""The labelled judge set: answers with a person's labels, to measure the judges.

``data/judge_set.jsonl`` holds one labelled answer per line::

    {"id": "harmful-w-012", "split": "test", "source": "written", "app": "assistant",
     "goal": "comply", "prompt": "...", "documents": [], "marker": null,
     "answer": "...", "labels": {"harmful": true, "refusal": false}, "origin": "bastion"}

``source`` is ``"model"`` (an answer of SmolLM2-135M-Instruct, greedy, labelled by hand,
with the labeller's ``note``;
``bench/redteam_judge_answers.py`` regenerates them) or ``"written"`` (a hard case written
for bastion). ``app`` names an application in ``data/judge_apps.json``. ``split`` is
``"dev"`` (answers the judges were built and tuned on; ``"was_test": true`` marks the
rows of an earlier test split, evaluated once and then moved to dev) or ``"test"`` (a
frozen held-out set, written and labelled blind to the judges, read once to measure).
An optional ``request`` keeps the plain behaviour when ``prompt`` wraps it in a
jailbreak template (the harmful judge reads it, as it reads a probe's kept behaviour).

    cases = load_judge_set()
    scores = evaluate(cases, split="test")   # {judge: {"precision": ..., ...}}
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.common.intervals import wilson_interval
from bastion.errors import InputError
from bastion.redteam.base import GOALS, JUDGES, AppConfig, Attempt

DATA = Path(__file__).resolve().parent / "data"
JUDGE_SET = DATA / "judge_set.jsonl"
APPS = DATA / "judge_apps.json"
SPLITS = ("dev", "test")
SOURCES = ("model", "written")
_FIELDS = ("id", "split", "source", "app", "goal", "prompt", "answer", "labels")


@dataclass(frozen=True)
class Case:
    """One labelled answer: ``labels`` maps judge name to the person's yes/no."""

    id: str
    split: str
    source: str
    answer: str
    labels: dict[str, bool]
    attempt: Attempt
    app: AppConfig


def load_apps(path: Path = APPS) -> dict[str, AppConfig]:
    """The named applications the judge set refers to."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: AppConfig(system_prompt=a["system_prompt"], canary=a["canary"],
                            documents=tuple(a.get("documents", ())), name=name)
            for name, a in raw.items()}


def _case(row: dict[str, Any], apps: dict[str, AppConfig], where: str) -> Case:
    missing = [f for f in _FIELDS if f not in row]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    if row["app"] not in apps:
        raise InputError(f"{where}: unknown app {row['app']!r}; define it in {APPS.name}")
    if row["split"] not in SPLITS or row["source"] not in SOURCES:
        raise InputError(f"{where}: split must be one of {SPLITS} and source one of {SOURCES}")
    labels = row["labels"]
    if (not isinstance(labels, dict) or not labels or row["goal"] not in GOALS
            or any(k not in JUDGES or not isinstance(v, bool) for k, v in labels.items())):
        raise InputError(f"{where}: labels must map registered judge names to true/false "
                         f"and goal be one of {GOALS}")
    attempt = Attempt(id=row["id"], probe="judge-set", family="judge-set", goal=row["goal"],
                      turns=(row["prompt"],), documents=tuple(row.get("documents") or ()),
                      marker=row.get("marker"),
                      meta={"origin": row.get("origin", ""),
                            **({"request": row["request"]} if row.get("request") else {})})
    return Case(id=row["id"], split=row["split"], source=row["source"], answer=row["answer"],
                labels=dict(labels), attempt=attempt, app=apps[row["app"]])


def load_judge_set(path: Path = JUDGE_SET, apps: Path = APPS) -> list[Case]:
    """Every case of the judge set, checked; :class:`InputError` names a bad line."""
    known = load_apps(apps)
    cases, seen = [], set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        case = _case(json.loads(line), known, f"{Path(path).name} line {number}")
        if case.id in seen:
            raise InputError(f"{Path(path).name} line {number}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def _rate(k: int, n: int) -> dict[str, Any]:
    interval = wilson_interval(k, n)
    return {"value": k / n if n else None, "k": k, "n": n,
            "interval": list(interval) if interval else None}


def evaluate(cases: Sequence[Case], judges: Sequence[str] | None = None,
             split: str | None = None) -> dict[str, dict[str, Any]]:
    """Precision, recall (each with its Wilson 95% interval), F1, counts and mean
    milliseconds per answer for each judge on the cases that label it (of ``split``)."""
    names = sorted(JUDGES) if judges is None else list(judges)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        judge = JUDGES[name]()
        mine = [c for c in cases if name in c.labels and (split is None or c.split == split)]
        tp = fp = fn = tn = 0
        began = time.perf_counter()
        for case in mine:
            hit = judge.judge(case.answer, case.attempt, case.app).hit
            truth = case.labels[name]
            tp, fp = tp + (hit and truth), fp + (hit and not truth)
            fn, tn = fn + (truth and not hit), tn + (not hit and not truth)
        elapsed = time.perf_counter() - began
        precision, recall = _rate(tp, tp + fp), _rate(tp, tp + fn)
        p, r = precision["value"] or 0.0, recall["value"] or 0.0
        out[name] = {"n": len(mine), "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn,
                     "tn": tn, "precision": precision, "recall": recall,
                     "f1": 2 * p * r / (p + r) if p + r else 0.0,
                     "ms_per_answer": 1000.0 * elapsed / len(mine) if mine else None}
    return out
