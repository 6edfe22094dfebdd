"""The guard as an HTTP service: scans, an OpenAI-compatible guarded proxy, API keys,
rate limits, anomaly escalation and a human review queue (docs/service.md).

    from bastion.service import create_app, load_config
    app = create_app(load_config("service.yaml"))

Modules: config (YAML + env), app (FastAPI factory, scan and ops endpoints), proxy
(chat completions), review (queue and key API), web (review page), state (the checks
every endpoint shares), storage + schema (SQLAlchemy), keys, ratelimit, anomaly,
limits (body size, JSON depth, timeout), upstream (httpx or embedded SmolLM2), metrics.
"""

from bastion.service.app import create_app
from bastion.service.config import ServiceConfig, load_config
from bastion.service.storage import Store

__all__ = ["ServiceConfig", "Store", "create_app", "load_config"]
