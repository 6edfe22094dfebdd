"""JSONL files are split on line feeds only: U+2028, U+2029 and U+0085 are valid inside
a JSON string written with ``ensure_ascii=False`` and must not cut a line."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.common.records import RecordWriter, read
from bastion.guard.corpora import read_jsonl
from bastion.service.export import write_jsonl
from bastion.service.storage import Store

ODD = "line\u2028separator, paragraph\u2029separator and next-line\u0085here"


def test_corpus_lines_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    rows = [{"text": ODD, "label": 1}, {"text": "plain", "label": 0}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    got = read_jsonl(path)
    assert [(e.text, e.label) for e in got] == [(ODD, 1), ("plain", 0)]


def test_review_export_reads_back_as_a_corpus(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    item = store.add_item(kind="verdict", direction="input", text=ODD, verdict="review",
                          score=0.5, layers=[], reason="r", key_id="k", session_id="s")
    store.decide(item, "reject", "reviewer")
    out = tmp_path / "decisions.jsonl"
    assert write_jsonl(store, out) == 1
    store.close()
    assert [(e.text, e.label) for e in read_jsonl(out)] == [(ODD, 1)]


def test_record_lines_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "record.jsonl"
    path.write_text(json.dumps({"kind": "x", "note": ODD}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert read(path) == [{"kind": "x", "note": ODD}]
    RecordWriter(path, "run").write("y", note=ODD)
    assert [r["kind"] for r in read(path)] == ["x", "y"]
