"""Every benchmark script parses its command line: the commands docs/benchmarks.md cites
start with ``python bench/NAME.py``, so each must at least answer ``--help``.

All scripts are asked in one child process (``runpy`` with ``sys.argv`` set), so their
heavy imports (torch, transformers) are paid once, and a script's import-time side
effects cannot touch the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))

_DRIVER = r"""
import contextlib, io, json, os, runpy, sys
out = {}
paths = sys.argv[1:]
# as `python bench/NAME.py` does: the script's folder first, so siblings import
sys.path.insert(0, os.path.dirname(paths[0]))
for path in paths:
    sys.argv = [path, "--help"]
    buf = io.StringIO()
    code = None
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # report, so the test names the script and the error
        code = f"{type(exc).__name__}: {exc}"
    out[path] = {"code": code, "stdout": buf.getvalue()}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def answers() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _DRIVER, *(str(BENCH / s) for s in SCRIPTS)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {Path(k).name: v for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def test_bench_folder_holds_scripts():
    assert SCRIPTS, f"no benchmark scripts found in {BENCH}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_answers_help(script: str, answers: dict[str, Any]):
    answer = answers[script]
    assert answer["code"] in (0, None), f"{script} --help: {answer['code']}"
    assert "usage:" in answer["stdout"], f"{script} --help printed no usage"
