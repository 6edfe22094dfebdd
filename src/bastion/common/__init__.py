"""Torch-free helpers both halves of bastion use: resume files (:mod:`.state`), run
records (:mod:`.records`) and interval statistics (:mod:`.intervals`); and, imported only
by the classic half, per-sample random streams (:mod:`.draws`, which needs torch).

Nothing here imports another part of bastion but :mod:`bastion.errors`, so the guard,
the service and the classic half can all lean on it.
"""

from __future__ import annotations

from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.common.state import StateFile, fingerprint

__all__ = ["RecordWriter", "StateFile", "fingerprint", "interval_list", "new_run_id",
           "versions", "wilson_interval"]
