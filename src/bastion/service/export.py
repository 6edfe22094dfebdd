"""Reviewers' decisions as a labelled corpus (JSONL) for the next guard evaluation or training.

A rejected item is an attack or a leak (``label`` 1); an approved one was fine
(``label`` 0). Each line also says where the label came from, so a corpus built from it
can be audited back to the decision: ``reviewer_key_id`` and ``decided_at`` come from
the audit trail's ``decide`` record (``audit_id``), which is written in the same
transaction as the decision; ``bastion guard train --extra`` reports rows per reviewer key
and checks them (:mod:`bastion.guard.training.extra_checks`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bastion.service.storage import Store

LABELS = {"rejected": 1, "approved": 0}


def example(item: dict[str, Any], record: dict[str, Any] | None = None) -> dict[str, Any]:
    """One decided item as a corpus line; ``record`` is its audit trail's ``decide`` entry
    (``None``: the item's own ``decided_by``/``decided_at`` stand in, ``audit_id`` null)."""
    key = record["actor"] if record else item["decided_by"]
    return {"text": item["text"], "label": LABELS[item["state"]], "source": "bastion-review",
            "item_id": item["id"], "direction": item["direction"], "kind": item["kind"],
            "verdict": item["verdict"], "decision": item["state"],
            "decided_by": item["decided_by"], "reviewer_key_id": key,
            "decided_at": record["at"] if record else item["decided_at"],
            "audit_id": record["id"] if record else None}


def decide_records(store: Store) -> dict[int, dict[str, Any]]:
    """Each item's first ``decide`` audit record (the one that stands), by item id."""
    found: dict[int, dict[str, Any]] = {}
    for record in store.audit_log():
        if record["action"] == "decide" and record["item_id"] is not None:
            found.setdefault(int(record["item_id"]), record)
    return found


def write_jsonl(store: Store, path: Path) -> int:
    """Write every decision to ``path`` (atomically: a temp file, then a rename); the count."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    records = decide_records(store)
    with tmp.open("w", encoding="utf-8") as fh:
        for item in store.decided():
            line = example(item, records.get(int(item["id"])))
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
