"""``bastion serve``, ``bastion serve-model``, ``bastion keys ...``, ``bastion review export``.

    bastion serve                                   # SQLite file, embedded SmolLM2 upstream
    bastion serve-model --model mnist-smallcnn-std --defense round:decimals=2 --answer topk:3
    bastion serve --config service.yaml --port 8080 --workers 2
    bastion keys create --name app --role client    # prints the key once
    bastion keys list | bastion keys revoke ID
    bastion review export --out decisions.jsonl     # labelled corpus for `bastion guard ...`

Every command takes ``--config FILE`` and ``--database-url URL`` (the latter beats the
file and ``BASTION_DATABASE_URL``), so the keys land in the database the server uses.
Exit codes: 0 done, 2 bad input or unusable configuration.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.errors import BastionError
from bastion.service.config import ServiceConfig, config_from_dict, load_config

keys_app = typer.Typer(help="Create, list and revoke the guard service's API keys.",
                       no_args_is_help=True)
review_app = typer.Typer(help="The guard service's review queue.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)
#: how `bastion serve --workers N` hands the resolved configuration to each worker.
CONFIG_ENV = "BASTION_SERVICE_CONFIG_JSON"

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="service YAML file")]
DbOpt = Annotated[str | None, typer.Option("--database-url",
                                           help="SQLAlchemy URL; beats config and env")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def _config(path: Path | None, database_url: str | None, **overrides: Any) -> ServiceConfig:
    try:
        config = load_config(path)
        changes = {k: v for k, v in overrides.items() if v is not None}
        if database_url:
            changes["database_url"] = database_url
        return dataclasses.replace(config, **changes)
    except BastionError as exc:
        raise _fail(str(exc)) from None


def _store(path: Path | None, database_url: str | None) -> Any:
    from bastion.service.storage import Store

    config = _config(path, database_url)
    try:
        return Store(config.database_url)
    except BastionError as exc:
        raise _fail(str(exc)) from None


def app_from_env() -> Any:
    """uvicorn's factory for ``--workers N``: each worker rebuilds the app from the
    configuration the parent resolved (env var :data:`CONFIG_ENV`)."""
    from bastion.service.app import create_app
    from bastion.service.protocol import NoDelayH11Protocol

    config = config_from_dict(json.loads(os.environ[CONFIG_ENV]), source=CONFIG_ENV)
    NoDelayH11Protocol.header_timeout_s = config.limits.header_timeout_s
    return create_app(config, warm=True)


def uvicorn_settings(cfg: ServiceConfig) -> dict[str, Any]:
    """The connection limits ``bastion serve`` gives uvicorn (tests reuse them)."""
    # h11 rather than httptools: the same header-size cap (16 KiB of request head) on
    # every install, so huge headers get a 4xx, not unbounded buffering. With
    # TCP_NODELAY set per connection and a deadline on each request head (see
    # bastion.service.protocol).
    return {"http": "bastion.service.protocol:NoDelayH11Protocol",
            "h11_max_incomplete_event_size": 16 * 1024, "timeout_keep_alive": 5,
            "limit_concurrency": cfg.limits.max_connections, "timeout_graceful_shutdown": 10}


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for shared limits")] = None,
    upstream_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible base URL (…/v1); default: the embedded SmolLM2")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the guard service (HTTP API, guarded OpenAI-compatible proxy, review page)."""
    import uvicorn

    cfg = _config(config, database_url, host=host, port=port, redis_url=redis_url)
    if upstream_url:
        cfg = dataclasses.replace(cfg, upstream=dataclasses.replace(cfg.upstream,
                                                                    url=upstream_url))
    if workers < 1:
        raise _fail(f"--workers must be at least 1, got {workers}")
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One check before forking workers: a bad database URL fails here, once, clearly.
    store = _store(None, cfg.database_url)
    store.close()
    _err.print(f"bastion guard service on http://{cfg.host}:{cfg.port} (database "
               f"{escape(store.engine.url.render_as_string(hide_password=True))}, rate limits "
               f"{'redis' if cfg.redis_url else 'in-process'}, upstream "
               f"{escape(cfg.upstream.url or 'embedded SmolLM2-135M')})")
    os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(cfg))
    extra = uvicorn_settings(cfg)
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # A worker imports torch and builds the guard before it can answer the
        # supervisor's health check: seconds on a busy machine, past uvicorn's default
        # of 5 s, after which a healthy worker is killed and restarted.
        extra["timeout_worker_healthcheck"] = 120
    uvicorn.run("bastion.service.cli:app_from_env", factory=True, host=cfg.host,
                port=cfg.port, workers=workers, log_level=log_level, **extra)


def serve_model(
    model: Annotated[str, typer.Option(help="zoo name, or FILE.py[:factory]")],
    defense: Annotated[str, typer.Option(
        help="output defence NAME[:key=value,...]: none, round, top-k, label-only, "
             "reverse-sigmoid, noise")] = "none",
    answer: Annotated[str, typer.Option(help="label, topk:K or probs")] = "label",
    input_shape: Annotated[str | None, typer.Option(
        help="C,H,W of one input (needed for a model from a file)")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for shared limits")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve a classifier: POST /v1/predict behind API keys, rate limits, an output
    defence and a PRADA extraction monitor per key (one worker: the monitor is in-process)."""
    cfg = _config(config, database_url, host=host, port=port, redis_url=redis_url)
    try:
        import uvicorn

        from bastion.service.model_app import create_model_app
        from bastion.service.predict import load_served
        from bastion.service.protocol import NoDelayH11Protocol
    except ModuleNotFoundError as exc:
        from bastion.extras import missing
        raise _fail(str(missing(exc, "bastion serve-model", "service"))) from None
    try:
        served = load_served(model, defense=defense, answer=answer, input_shape=input_shape)
        app = create_model_app(cfg, served)
    except BastionError as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _err.print(f"bastion model endpoint on http://{cfg.host}:{cfg.port}: {escape(model)}, "
               f"defence {escape(defense)}, answers {escape(answer)}, rate limits "
               f"{'redis' if cfg.redis_url else 'in-process'}, PRADA "
               f"{'on' if cfg.predict.prada else 'off'}")
    NoDelayH11Protocol.header_timeout_s = cfg.limits.header_timeout_s
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=log_level,
                **uvicorn_settings(cfg))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what uses the key")],
    role: Annotated[str, typer.Option(help="client, reviewer or admin")] = "client",
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Make an API key and print it once (only its SHA-256 is stored)."""
    store = _store(config, database_url)
    try:
        made = store.create_key(name, role)
    except BastionError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    _err.print(f"key {made.key_id} ({escape(role)}) for {escape(name)}; shown only now:")
    typer.echo(made.key)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, database_url: DbOpt = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key's id, name, role and dates (never the key)."""
    store = _store(config, database_url)
    rows = store.list_keys()
    store.close()
    if as_json:
        typer.echo(json.dumps({"keys": rows}))
        return
    table = Table(title="bastion service keys")
    for col in ("id", "name", "role", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], escape(r["name"]), r["role"], (r["created_at"] or "")[:19],
                      (r["revoked_at"] or "-")[:19])
    _out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (keys list)")],
                config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Revoke a key: refused from now on (within seconds on other replicas)."""
    store = _store(config, database_url)
    try:
        store.revoke_key(key_id)
    except BastionError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    _out.print(f"revoked {escape(key_id)}")


@review_app.command("export")
def review_export(
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Write every decided item as a labelled example: rejected = 1 (attack), approved = 0.

    Lines are ``{"text", "label", ...}``, the corpus format `bastion guard eval --corpus`
    reads, with the item id, direction, kind, verdict and who decided when.
    """
    from bastion.service.export import write_jsonl

    store = _store(config, database_url)
    try:
        n = write_jsonl(store, out)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        store.close()
    _out.print(f"wrote {n} decisions to {escape(str(out))}")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``serve-model``, ``keys`` and ``review`` to the ``bastion`` command."""
    app.command(name="serve")(serve)
    app.command(name="serve-model")(serve_model)
    app.add_typer(keys_app, name="keys")
    app.add_typer(review_app, name="review")
