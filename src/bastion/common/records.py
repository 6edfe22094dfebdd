"""Run records: JSON lines that carry everything needed to reproduce a number.

Each line is one JSON object with ``kind`` (what the line is), ``schema_version``,
``run_id`` and ``time``; the first line of a run (kind ``run``) also holds the seed, the
package versions and the parameters. Later lines carry results.
"""

from __future__ import annotations

import json
import platform
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide numerical results."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("bastion", "torch", "numpy"):
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            found[pkg] = "not installed"
    return found


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RecordWriter:
    """Appends JSON lines to ``path``; every line gets kind, schema_version, run_id, time."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        line = {"kind": kind, "schema_version": SCHEMA_VERSION, "run_id": self.run_id,
                "time": now(), **fields}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=False) + "\n")
        return line


def read(path: Path) -> list[dict[str, Any]]:
    """All lines of a record file, parsed (split on line feeds only: ``str.splitlines``
    would also cut at U+2028/U+2029/U+0085, which JSON strings may hold as they are)."""
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]
