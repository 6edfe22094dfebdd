"""bastion's own guarded proxy as a red-team target, started and stopped for one run.

:func:`start_proxy` runs ``python -m bastion serve`` in a child process with the
embedded SmolLM2 upstream, a fresh SQLite database in a temporary folder, an API key
made with ``bastion keys create``, on a free local port; waits for ``/readyz``; and
hands back an :class:`~bastion.redteam.targets.OpenAITarget` that sends the key and
bastion's request options (canary, documents). Everything the proxy does is met as a
client meets it: the guard on both sides, the rate limit, anomaly escalation (its
throttle answers 429, recorded as ``throttled``).

    with start_proxy(max_tokens=48) as target:
        reply = target.send(attempt, app)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bastion.errors import ConfigError
from bastion.redteam.targets import OpenAITarget

#: seconds to wait for the service to answer /readyz (it loads torch and the guard).
START_TIMEOUT_S = 240.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bastion(*args: str) -> list[str]:
    return [sys.executable, "-m", "bastion", *args]


def _make_key(database_url: str, env: dict[str, str]) -> str:
    done = subprocess.run(_bastion("keys", "create", "--name", "redteam", "--database-url",
                                   database_url), capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    key = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not key:
        raise ConfigError(f"`bastion keys create` failed ({done.returncode}): "
                          f"{done.stderr.strip()[-400:]}; is bastion[service] installed?")
    return key


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"`bastion serve` exited with {process.returncode} before "
                              f"it was ready: {log.read_text(errors='replace')[-600:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ConfigError(f"`bastion serve` did not answer {url}/readyz within "
                      f"{START_TIMEOUT_S:g} s; see {log}")


@contextmanager
def start_proxy(*, max_tokens: int = 48, timeout_s: float = 300.0) -> Iterator[OpenAITarget]:
    """Run bastion's guarded proxy (embedded upstream, ``max_tokens`` new tokens per
    answer) for the duration of the ``with`` block; yields a target that talks to it."""
    with tempfile.TemporaryDirectory(prefix="bastion-redteam-proxy-") as folder:
        root = Path(folder)
        database_url = f"sqlite:///{root / 'service.db'}"
        config = root / "service.yaml"
        config.write_text(f"upstream:\n  max_tokens: {int(max_tokens)}\n"
                          f"  timeout_s: {float(timeout_s)}\n"
                          f"limits:\n  request_timeout_s: {float(timeout_s)}\n",
                          encoding="utf-8")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        key = _make_key(database_url, env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "serve.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                _bastion("serve", "--config", str(config), "--database-url", database_url,
                         "--port", str(port), "--log-level", "warning"),
                stdout=sink, stderr=subprocess.STDOUT, env=env)
            target = None
            try:
                _wait_healthy(url, process, log)
                target = OpenAITarget(f"{url}/v1", api_key=key, timeout_s=timeout_s,
                                      guard_options=True)
                target.name = "proxy:embedded"
                yield target
            finally:
                if target is not None:
                    target.close()
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
