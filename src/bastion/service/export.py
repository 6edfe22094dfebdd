"""Reviewers' decisions as a labelled corpus (JSONL) for the next guard evaluation or training.

A rejected item is an attack or a leak (``label`` 1); an approved one was fine
(``label`` 0). Each line also says where the label came from, so a corpus built from it
can be audited back to the decision.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bastion.service.storage import Store

LABELS = {"rejected": 1, "approved": 0}


def example(item: dict[str, Any]) -> dict[str, Any]:
    """One decided item as a corpus line."""
    return {"text": item["text"], "label": LABELS[item["state"]], "source": "bastion-review",
            "item_id": item["id"], "direction": item["direction"], "kind": item["kind"],
            "verdict": item["verdict"], "decision": item["state"],
            "decided_by": item["decided_by"], "decided_at": item["decided_at"]}


def write_jsonl(store: Store, path: Path) -> int:
    """Write every decision to ``path`` (atomically: a temp file, then a rename); the count."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for item in store.decided():
            fh.write(json.dumps(example(item), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
