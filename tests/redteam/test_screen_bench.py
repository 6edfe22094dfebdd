"""bench/redteam_screen.py counts what the guard's rule layers stop, per probe and converter."""

from __future__ import annotations

from pathlib import Path

from conftest import load_bench


def test_screen_counts_planted_documents_and_converted_turns(tmp_path: Path) -> None:
    bench = load_bench("redteam_screen.py", "redteam_screen")
    out = tmp_path / "screen.json"
    result = bench.main(["--limit", "4", "--probes", "sysprompt,indirect-reply",
                         "--converters", "none,unicode-tags", "--out", str(out)])
    assert out.exists() and result["policy"] == "rules"
    table = result["results"]
    assert set(table) == {"sysprompt", "indirect-reply"}
    for probe in table.values():
        assert probe["none"]["n"] == 4
        # the sanitizer blocks every text carrying tag characters
        assert probe["unicode-tags"]["stopped"] == 4
        low, high = probe["none"]["ci95"]
        assert 0 <= low <= probe["none"]["rate"] <= high <= 1
