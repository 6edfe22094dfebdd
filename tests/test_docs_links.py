"""Every relative link in the project's markdown files points at a file that exists.

Covers README.md, CHANGELOG.md and every ``*.md`` under docs/. External links
(``http:``, ``https:``, ``mailto:``) and pure in-page anchors are not checked; a link's
``#anchor`` part is dropped before the file is looked up.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
# [text](target) and [text](target "title"); images too. Code spans are removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
EXTERNAL = ("http://", "https://", "mailto:")


def relative_links(text: str) -> list[str]:
    """The link targets of ``text`` that name a local file, without their anchors."""
    targets = (m.group(1) for m in LINK.finditer(CODE.sub("", text)))
    return [t.split("#", 1)[0] for t in targets
            if not t.startswith(EXTERNAL) and not t.startswith("#")]


def test_the_link_finder_sees_links_and_skips_code():
    text = ("see [a](docs/a.md#x), ![img](b.png \"t\") and [web](https://x.org)\n"
            "`[not](c.md)`\n```\n[nor](d.md)\n```\n[anchor](#here)")
    assert relative_links(text) == ["docs/a.md", "b.png"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    missing = [t for t in relative_links(path.read_text(encoding="utf-8"))
               if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"
