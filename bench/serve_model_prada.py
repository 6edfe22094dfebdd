"""serve-model over HTTP: does the PRADA monitor flag extraction sessions and spare benign
ones, and what does each output defence cost and buy?

    OMP_NUM_THREADS=1 python bench/serve_model_prada.py --sessions 5 \
        --json bench/results/serve_model_prada.json
    python bench/serve_model_prada.py --tune     # how delta and window were chosen

Report mode (held-out splits, seeds 1..N): ``mnist-smallcnn-std`` is served by uvicorn on
a loopback port with the service's default PRADA settings (label answers). Each session
is a fresh client key sending its stream in batches of 50 through
:class:`bastion.privacy.remote.RemoteClassifier`: benign = the whole MNIST test set in a
random order; knockoff = 2,000 queries of Fashion-MNIST test, digits test and noise;
jacobian = 100 MNIST test seeds then Jacobian-augmentation rounds to 2,000 queries.
The flag and its query count are read back from the review queue. Then, per output
defence, one endpoint (PRADA throttle off, so the copy gets its whole budget) is copied
from ``--budget`` MNIST val queries; fidelity on ``--test`` MNIST test images, and the
defended answers' accuracy beside the undefended model's.

Tune mode (``--tune``, in-process, MNIST val / Fashion-MNIST train / digits train, seeds
0..N-1): per session the lowest W once 100, 200 or 300 queries are in, and the W after the
last query, at ``--window``; delta and the first test's query count are read from these.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prada_streams as streams
from bastion import data
from bastion.common.intervals import interval_list, wilson_interval
from bastion.privacy.extraction import extract
from bastion.privacy.remote import RemoteClassifier

MODEL = "mnist-smallcnn-std"
DEFENSES = ["none", "round:decimals=1", "top-k:k=1", "label-only",
            "reverse-sigmoid:beta=0.7,gamma=0.4", "noise:sigma=0.1"]


def _server(tmp: Path, defense: str, answer: str, throttle: bool,
            monitor: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """A started uvicorn server thread for one endpoint, and its app."""
    import threading

    import uvicorn

    from bastion.service.config import config_from_dict
    from bastion.service.model_app import create_model_app
    from bastion.service.predict import load_served

    db = tmp / f"db-{abs(hash((defense, answer)))}.sqlite"
    cfg = config_from_dict({"database_url": f"sqlite:///{db}",
                            "rate_limit": {"rate_per_s": 1000, "burst": 1000},
                            "predict": {"prada_throttle": throttle, **(monitor or {})}})
    app = create_model_app(cfg, load_served(MODEL, defense=defense, answer=answer))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, app


def _url(server: Any) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _labeller(victim: RemoteClassifier) -> streams.Labeller:
    return lambda x: victim(x).argmax(1)


def _session(url: str, app: Any, kind: str, seed: int, queries: int) -> dict[str, Any]:
    from bastion.errors import InputError

    made = app.state.service.store.create_key(f"{kind}-{seed}", "client")
    victim = RemoteClassifier(url, made.key, classes=10, batch=50, max_wait_s=0)
    stopped = None
    try:
        if kind == "benign":
            victim(streams.benign("test", 10_000, seed))
        elif kind == "knockoff":
            victim(streams.knockoff("test", queries, seed))
        else:
            seeds = streams.benign("test", 100, seed + 1000)
            streams.jacobian(seeds, _labeller(victim), queries, seed)
    except InputError as exc:  # a 429: the throttle of a flagged key stopped the session
        stopped = str(exc)[:80]
    victim.close()
    items = app.state.service.store.list_items(None, 500, 0)
    mine = [i for i in items if i["key_id"] == made.key_id]
    layer = mine[0]["layers"][0] if mine else {}
    return {"kind": kind, "seed": seed, "sent": victim.queries, "flagged": bool(mine),
            "flagged_at": layer.get("flagged_at"), "w_at_flag": layer.get("w_at_flag"),
            "stopped": stopped}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n, k = len(rows), sum(r["flagged"] for r in rows)
    at = sorted(r["flagged_at"] for r in rows if r["flagged"])
    return {"sessions": n, "flagged": k, "rate": k / n,
            "rate_ci": interval_list(wilson_interval(k, n), 100, 1),
            "flagged_at_min": at[0] if at else None, "flagged_at_max": at[-1] if at else None}


def report(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    monitor: dict[str, Any] = {"prada_delta": args.delta}
    if args.share_reference:
        monitor["share_reference"] = args.share_reference
    server, app = _server(tmp, "none", "label", throttle=True, monitor=monitor)
    url, sessions = _url(server), []
    for kind in ("benign", "knockoff", "jacobian"):
        for seed in range(1, args.sessions + 1):
            row = _session(url, app, kind, seed, args.queries)
            sessions.append(row)
            print(json.dumps(row), flush=True)
    server.should_exit = True
    out: dict[str, Any] = {"sessions": sessions, "summary": {
        kind: _summary([r for r in sessions if r["kind"] == kind])
        for kind in ("benign", "knockoff", "jacobian")}}
    print(json.dumps(out["summary"], indent=1), flush=True)
    table: list[dict[str, Any]] = []
    out["defenses"] = table
    if not args.defenses:
        return out
    pool = data.load("mnist", "val", args.budget).x
    test = data.load("mnist", "test", args.test)
    for spec in filter(None, args.defenses.split(";")):
        label_only = spec.startswith("label-only")
        server, app = _server(tmp, spec, "label" if label_only else "probs", throttle=False)
        made = app.state.service.store.create_key(f"copy-{spec}", "client")
        victim = RemoteClassifier(_url(server), made.key, classes=10, batch=50)
        start = time.time()
        res = extract(victim, pool, test.x, test.y, budgets=[args.budget],
                      label_only=label_only, steps=args.steps)
        victim.close()
        server.should_exit = True
        n = res.test_size
        hits = round(res.victim_accuracy * n)
        row = {"defense": spec, **res.rows[0], "defended_accuracy": res.victim_accuracy,
               "defended_accuracy_ci": interval_list(wilson_interval(hits, n), 100, 2),
               "seconds": round(time.time() - start, 1)}
        table.append(row)
        print(json.dumps(row), flush=True)
    return out


def _trace(x: torch.Tensor, labels: list[int], window: int) -> list[float]:
    """W after each query of one stream (NaN before 100 distances)."""
    from bastion.privacy.prada import PradaMonitor

    monitor = PradaMonitor(0.5, window=window)
    return [float("nan") if (w := monitor.observe("c", row, lab).w) is None else w
            for row, lab in zip(x.reshape(len(x), -1).numpy(), labels, strict=True)]


def tune(args: argparse.Namespace) -> dict[str, Any]:
    import math

    from bastion import zoo

    victim = zoo.load(MODEL).eval()

    def label_of(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([victim(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])

    out: dict[str, Any] = {"window": args.window, "sessions": []}
    for seed in range(args.sessions):
        runs = {"benign": streams.benign("val", 10_000, seed),
                "knockoff": streams.knockoff("train", args.queries, seed),
                "jacobian": streams.jacobian(streams.benign("val", 100, 1000 + seed),
                                             label_of, args.queries, seed)}
        for name, x in runs.items():
            trace = _trace(x, label_of(x).tolist(), args.window)
            row = {"kind": name, "seed": seed, "last": round(trace[-1], 4)}
            for skip in (100, 200, 300):  # the first test after about this many queries
                row[f"min_after_{skip}"] = round(min(w for w in trace[skip + 10:]
                                                     if not math.isnan(w)), 4)
            out["sessions"].append(row)
            print(json.dumps(row), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5, help="sessions per kind")
    parser.add_argument("--queries", type=int, default=2000, help="queries per attack")
    parser.add_argument("--budget", type=int, default=2000, help="extraction queries")
    parser.add_argument("--test", type=int, default=1000, help="MNIST test images")
    parser.add_argument("--steps", type=int, default=600, help="copy training steps")
    parser.add_argument("--defenses", default=";".join(DEFENSES),
                        help="';'-separated; '' skips the defence table")
    parser.add_argument("--delta", type=float, default=0.93, help="PRADA delta")
    parser.add_argument("--share-reference", default=None,
                        help="DATASET[:SPLIT]: add the query-distribution test")
    parser.add_argument("--tune", action="store_true", help="tune mode (see above)")
    parser.add_argument("--window", type=int, default=500, help="tune mode: PRADA window")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = tune(args) if args.tune else report(args, Path(tmp))
    out["seconds"] = round(time.time() - start, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
