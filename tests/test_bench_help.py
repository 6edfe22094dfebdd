"""Every benchmark script parses its command line: the commands docs/benchmarks.md cites
start with ``python bench/NAME.py``, so each must at least answer ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))


def test_bench_folder_holds_scripts():
    assert SCRIPTS, f"no benchmark scripts found in {BENCH}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_answers_help(script: str):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
