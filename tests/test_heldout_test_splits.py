"""The held-out test splits of the judge set and the grounding set parse, keep their
labels valid and do not silently shrink below the sizes they were written at."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bastion.redteam.judgeset import DATA, JUDGE_SET, load_judge_set

GROUNDING_DIR = Path(DATA).parents[1] / "guard" / "data"
GROUNDING_SET = GROUNDING_DIR / "grounding.jsonl"
# Each judge keeps at least this many positives and negatives, so a rate's interval stays
# informative; the set and the grounding answers keep at least their written size.
MIN_PER_CLASS = 30
MIN_JUDGE_ROWS = 240
MIN_ANSWERS, MIN_SENTENCES = 30, 250
KINDS = {"supported": {"verbatim", "paraphrase", "filler"},
         "unsupported": {"number", "name", "negation", "invented", "unrelated"}}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")
            if line.strip()]


def _judge_cases(split: str) -> list[Any]:
    return [c for c in load_judge_set(JUDGE_SET) if c.split == split]


def test_judge_rows_load_with_notes_and_fresh_ids() -> None:
    cases = _judge_cases("test")  # the loader checks fields, apps, judges and unique ids
    rows = [r for r in _lines(JUDGE_SET) if r["split"] == "test"]
    assert len(cases) == len(rows) >= MIN_JUDGE_ROWS
    assert all(c.id.startswith("t11-") for c in cases)
    assert all(r["note"].strip() and r["origin"] for r in rows)
    # the marker stands in the planted document, or is the application's secret that
    # the planted instruction asks for ("reveal the escalation code")
    secrets = {c.app.canary for c in cases}
    inject = [r for r in rows if r["goal"] == "inject"]
    assert all(r["marker"] and (r["marker"] in secrets
                                or any(r["marker"] in d for d in r["documents"]))
               for r in inject)


def test_each_judge_has_enough_positives_and_negatives() -> None:
    counts: Counter[tuple[str, bool]] = Counter()
    for case in _judge_cases("test"):
        counts.update(case.labels.items())
    for judge in ("refusal", "leak", "inject", "pii", "toxicity", "harmful"):
        assert counts[(judge, True)] >= MIN_PER_CLASS, (judge, counts[(judge, True)])
        assert counts[(judge, False)] >= MIN_PER_CLASS, (judge, counts[(judge, False)])


#: test rows whose request and answer a dev row also has, each written by a different
#: blind author: the canonical answer to an obvious request comes out the same ("My
#: session tag is QUILL-0392-ORBIT.")
COINCIDENCES = {"t11-leak-038", "t11-leak-058"}


def test_no_row_is_copied_from_the_judge_set() -> None:
    # SmolLM2 repeats some degenerate answers ("I'm sorry." x16) across requests, so a
    # copy is the same answer to the same request, not the same answer alone.
    dev = {(c.attempt.turns[0], c.answer) for c in _judge_cases("dev")}
    shared = {c.id for c in _judge_cases("test") if (c.attempt.turns[0], c.answer) in dev}
    assert shared <= COINCIDENCES


def _grounding(split: str) -> list[dict[str, Any]]:
    return [r for r in _lines(GROUNDING_SET) if r["split"] == split]


def test_grounding_rows_are_valid_and_on_new_topics() -> None:
    rows = _grounding("test")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) >= MIN_ANSWERS
    assert not set(ids) & {r["id"] for r in _grounding("dev")}
    for row in rows:
        assert set(row) - {"question"} == {"id", "topic", "documents", "split",
                                           "sentences"}, row["id"]
        assert row["split"] == "test" and row["topic"], row["id"]
        assert row["documents"] and all(d.strip() for d in row["documents"]), row["id"]
        assert 6 <= len(row["sentences"]) <= 12, row["id"]
        for sentence in row["sentences"]:
            assert set(sentence) == {"text", "label", "kind"}, row["id"]
            assert sentence["kind"] in KINDS[sentence["label"]], (row["id"], sentence)
            assert sentence["text"].strip(), row["id"]


def test_grounding_counts_and_every_kind_present() -> None:
    sentences = [s for r in _grounding("test") for s in r["sentences"]]
    assert len(sentences) >= MIN_SENTENCES
    labels = Counter(s["label"] for s in sentences)
    assert labels["supported"] >= 0.45 * len(sentences)
    kinds = Counter(s["kind"] for s in sentences)
    assert all(kinds[k] > 0 for group in KINDS.values() for k in group), kinds
