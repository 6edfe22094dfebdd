"""A model behind ``bastion serve-model`` (or any endpoint speaking its protocol), as an
``nn.Module``, so extraction runs over HTTP exactly as against a Python model.

    from bastion.privacy.remote import RemoteClassifier
    victim = RemoteClassifier("http://127.0.0.1:8000", api_key="bst_...")
    result = extract(victim, pool_x, test_x, test_y, budgets=[2000])

``forward`` POSTs ``{"inputs": rows}`` to ``/v1/predict`` in batches of ``batch`` and
turns each answer into (N, K) rows: ``probs`` as sent, ``labels`` as one-hot rows,
``top_k`` as rows with the sent classes filled and the rest 0 (what
:func:`bastion.privacy.extraction.answers_to_targets` reads). ``queries`` counts the
inputs sent. A 429 is retried after its ``Retry-After`` up to ``max_wait_s`` in all; an
error answer raises :class:`~bastion.errors.InputError` with the server's message.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from bastion.errors import InputError
from bastion.extras import missing


class RemoteClassifier(nn.Module):
    """``/v1/predict`` of ``url`` as (N, C, H, W) -> (N, K) rows.

    Args:
        url: the endpoint's base URL (``http://host:port``).
        api_key: a client key (``bastion keys create``).
        classes: K; read from ``GET /v1/model`` when not given.
        batch: inputs per request (at most the server's ``predict.max_batch``).
        decimals: input values are rounded to this many places (smaller requests).
        max_wait_s: total seconds of 429 back-off before giving up.
    """

    def __init__(self, url: str, api_key: str, *, classes: int | None = None, batch: int = 64,
                 decimals: int = 5, timeout_s: float = 60.0, max_wait_s: float = 60.0) -> None:
        super().__init__()
        try:
            import httpx
        except ModuleNotFoundError as exc:
            raise missing(exc, "extraction over HTTP", "service") from exc
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s,
                                   headers={"Authorization": f"Bearer {api_key}"})
        self.batch = batch
        self.decimals = decimals
        self.max_wait_s = max_wait_s
        self.queries = 0
        self.classes = classes if classes is not None else int(self._get("/v1/model")["classes"])

    def _get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path)
        if response.status_code != 200:
            raise InputError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    def _post(self, rows: list[list[float]]) -> dict[str, Any]:
        waited = 0.0
        while True:
            response = self.client.post("/v1/predict", json={"inputs": rows})
            if response.status_code == 429 and waited < self.max_wait_s:
                pause = float(response.headers.get("retry-after", "1"))
                time.sleep(pause)
                waited += pause
                continue
            if response.status_code != 200:
                raise InputError(f"POST /v1/predict: HTTP {response.status_code}: "
                                 f"{response.text[:300]}")
            body: dict[str, Any] = response.json()
            return body

    def _rows(self, answer: dict[str, Any], n: int) -> torch.Tensor:
        if "probs" in answer:
            return torch.tensor(answer["probs"], dtype=torch.float32)
        out = torch.zeros(n, self.classes)
        if "labels" in answer:
            out[torch.arange(n), torch.tensor(answer["labels"])] = 1.0
            return out
        for i, entry in enumerate(answer["top_k"]):
            out[i, torch.tensor(entry["labels"])] = torch.tensor(entry["probs"])
        return out / out.sum(1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().reshape(len(x), -1).round(decimals=self.decimals)
        parts = []
        for i in range(0, len(flat), self.batch):
            chunk = flat[i:i + self.batch]
            parts.append(self._rows(self._post(chunk.tolist()), len(chunk)))
            self.queries += len(chunk)
        return torch.cat(parts) if parts else torch.zeros(0, self.classes)

    def close(self) -> None:
        self.client.close()
