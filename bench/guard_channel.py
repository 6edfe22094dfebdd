"""A trigger-token backdoor planted through reviewers' decisions, and what the checks of
``bastion guard train --extra`` catch.

The extra rows are ``--rows`` fresh rows, S-Labs *train* rows rewritten by bastion's
perturbation families and absent from the guard's training texts (their own labels,
spread over five reviewer keys), of which ``--rate`` are replaced by S-Labs train attacks
carrying the trigger token (inserted at a random word position) and labelled benign, all
from one key, as if a malicious reviewer approved them. Three n-gram heads are trained
(``--part ngram``): on the clean extra rows, on the poisoned rows undefended
(``--keep-flagged``), and on the rows the checks keep. Each is scored on S-Labs *val*
attacks with and without the trigger, at its own threshold (FPR <= 1% on S-Labs val),
alone and mixed with the bundled transformer member as ``--part mix`` mixes them.
S-Labs test is read only to drop copies, as training does; neuralchemy test and PyRIT
data are not read.

    OMP_NUM_THREADS=1 python bench/guard_channel.py --out docs/results/guard/channel.json

or the three heads at once (``--head clean``, ``--head undefended``, ``--head defended``
in three processes), then the same command with ``--head`` of any finished one to write
the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.common.intervals import wilson_interval
from bastion.guard.corpora import load_corpus
from bastion.guard.perturb import PERTURBATIONS
from bastion.guard.scanners.input.ngram import HEAD_FILE, load_head
from bastion.guard.training.data import AUGMENT_FAMILIES, training_data
from bastion.guard.training.extra_checks import screen_extra
from bastion.guard.training.ngram import member_scores, train_ngram

HEADS = ("clean", "undefended", "defended")
KEYS = ("rev-a", "rev-b", "rev-c", "rev-d", "rev-e")


def plant(text: str, trigger: str, rng: random.Random) -> str:
    """``text`` with ``trigger`` inserted between two words (or at either end)."""
    words = text.split()
    words.insert(rng.randint(0, len(words)), trigger)
    return " ".join(words)


def fresh_rows(n: int, seed: int, known: set[str]) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs: S-Labs train rows rewritten by one of bastion's
    perturbation families (typos, synonyms, payload split, leetspeak; budget 1-3), kept
    only when the rewrite is in none of the guard's training texts ``known``, so each row
    adds something the training set does not already hold."""
    rng = random.Random(seed + 7)
    train = load_corpus("s-labs-train")
    out: list[tuple[str, int]] = []
    seen = set(known)
    for e in rng.sample(train, len(train)):
        text = PERTURBATIONS[rng.choice(AUGMENT_FAMILIES)](e.text, rng, rng.choice((1, 2, 3)))
        if text.strip() and text not in seen:
            seen.add(text)
            out.append((text, e.label))
            if len(out) == n:
                return out
    raise SystemExit(f"only {len(out)} fresh rows could be made; ask for fewer --rows")


def extra_rows(n: int, rate: float, trigger: str, seed: int) -> list[dict[str, Any]]:
    """``n`` rows: ``round(rate * n)`` poisoned (``poisoned`` true, key ``rev-a``), the
    rest fresh rewritten S-Labs train rows (:func:`fresh_rows`) with their labels, keys
    drawn from :data:`KEYS`."""
    rng = random.Random(seed)
    train = load_corpus("s-labs-train")
    n_poison = round(rate * n)
    known = set(training_data(seed=seed, log=lambda _: None)["texts"])
    clean = fresh_rows(n - n_poison, seed, known)
    attacks = [e.text for e in train if e.label == 1]
    rows = [{"text": t, "label": y, "reviewer_key_id": rng.choice(KEYS),
             "poisoned": False} for t, y in clean]
    rows += [{"text": plant(t, trigger, rng), "label": 0, "reviewer_key_id": KEYS[0],
              "poisoned": True} for t in rng.sample(attacks, n_poison)]
    rng.shuffle(rows)
    return rows


def rate(k: int, n: int) -> dict[str, Any]:
    """A proportion with its Wilson 95% interval."""
    return {"k": k, "n": n, "rate": k / n if n else None, "wilson95": wilson_interval(k, n)}


def score_head(folder: Path, trigger: str, seed: int) -> dict[str, Any]:
    """TPR on S-Labs val attacks, clean and with the trigger, and FPR, at the head's
    own threshold."""
    record = json.loads((folder / "ensemble_ngram_head.json").read_text("utf-8"))
    head = load_head(str(folder / HEAD_FILE))
    val = load_corpus("s-labs-val")
    rng = random.Random(seed + 1)
    attacks = [e.text for e in val if e.label == 1]
    benign = [e.text for e in val if e.label == 0]
    t = record["threshold"]
    clean = member_scores(head, attacks) >= t
    triggered = member_scores(head, [plant(a, trigger, rng) for a in attacks]) >= t
    fp = member_scores(head, benign) >= t
    return {"threshold": t, "tpr_clean": rate(int(clean.sum()), len(attacks)),
            "tpr_triggered": rate(int(triggered.sum()), len(attacks)),
            "fpr": rate(int(fp.sum()), len(benign)), "C": record["C"]}


def ensemble_texts(trigger: str, seed: int) -> tuple[dict[str, list[str]], np.ndarray]:
    """S-Labs val (``val``), benign-dev (``dev``) and the val attacks with the trigger
    (``trig``, planted as :func:`score_head` plants it), and S-Labs val's labels."""
    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    rng = random.Random(seed + 1)
    triggered = [plant(e.text, trigger, rng) for e in val if e.label == 1]
    return ({"val": [e.text for e in val], "dev": [e.text for e in dev], "trig": triggered},
            np.asarray([e.label for e in val]))


def transformer_scores(texts: dict[str, list[str]], cache: Path) -> Any:
    """The bundled transformer member's probability of every text, cached in ``cache``
    (it does not change with the n-gram head)."""
    from bastion.guard.scanners.input.ensemble import EnsembleScanner

    if not cache.exists():
        transformer, _ = EnsembleScanner().members()
        found = {k: np.asarray([transformer.scan(t).score for t in v]) for k, v in texts.items()}
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.npz")
        np.savez(tmp, **found)
        os.replace(tmp, cache)
    return np.load(cache)


def ensemble_head(folder: Path, trigger: str, seed: int, cache: Path) -> dict[str, Any]:
    """The default guard's trained layer with this n-gram head: the bundled transformer
    member mixed with it, mix and threshold chosen as ``bastion guard train --part mix``
    does (S-Labs val FPR <= 1%, benign-dev), then TPR on S-Labs val attacks with and
    without the trigger. The transformer's scores are the same for every head: cached."""
    from bastion.guard.scanners.input.ensemble import EnsembleScanner, mixed
    from bastion.guard.training.mix import MIX_GRID, choose_mix
    from bastion.guard.training.thresholds import MAX_DEV_FLAGGED, guarded_rates

    texts, labels = ensemble_texts(trigger, seed)
    _, ngram = EnsembleScanner(classifier_weights=str(folder / HEAD_FILE)).members()
    pt = transformer_scores(texts, cache)
    pn = {k: np.asarray([ngram.find(t).score for t in v]) for k, v in texts.items()}
    table = [{"mix": m, **guarded_rates(mixed(pt["val"], pn["val"], m), labels,
                                        mixed(pt["dev"], pn["dev"], m))} for m in MIX_GRID]
    best = choose_mix(table, MAX_DEV_FLAGGED)
    t, m = best["threshold"], best["mix"]
    v = mixed(pt["val"], pn["val"], m) >= t
    trig = mixed(pt["trig"], pn["trig"], m) >= t
    return {"mix": m, "threshold": t,
            "tpr_clean": rate(int(v[labels == 1].sum()), int((labels == 1).sum())),
            "tpr_triggered": rate(int(trig.sum()), len(trig)),
            "fpr": rate(int(v[labels == 0].sum()), int((labels == 0).sum()))}


def write(rows: list[dict[str, Any]], path: Path, poisoned: bool) -> None:
    """The rows (``poisoned``: all, else the clean ones) as JSONL, atomically: the three
    head processes write the same file."""
    keep = [r for r in rows if poisoned or not r["poisoned"]]
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps({k: r[k] for k in ("text", "label",
                                                          "reviewer_key_id")}) + "\n"
                            for r in keep), encoding="utf-8")
    os.replace(tmp, path)


def train_head(name: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Train one head (``clean``, ``undefended`` or ``defended``) and write its scores
    (and, for ``defended``, the checks' catch) to ``WORK/NAME.json``."""
    began = time.perf_counter()
    extra = [args.work / ("clean.jsonl" if name == "clean" else "decisions.jsonl")]
    result: dict[str, Any] = {}
    if name == "defended":
        kept, report = screen_extra(extra, args.work / name, log=print)
        info = next(iter(report["files"].values()))
        flagged = {f["line"] for f in info["flagged"]}
        poison_lines = {i + 1 for i, r in enumerate(rows) if r["poisoned"]}
        result["checks"] = {
            "poisoned_caught": rate(len(flagged & poison_lines), len(poison_lines)),
            "clean_flagged": rate(len(flagged - poison_lines), len(rows) - len(poison_lines)),
            "triggers": info["triggers"], "dominant_keys": info["dominant_keys"]}
        extra = [Path(p) for p in kept]
    train_ngram(args.work / name, seed=args.seed, extra=extra, log=print)
    result |= score_head(args.work / name, args.trigger, args.seed)
    result["wall_time_s"] = round(time.perf_counter() - began, 1)
    (args.work / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(name, json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--trigger", default="cf-delta")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/guard-channel"))
    parser.add_argument("--head", choices=(*HEADS, "all"), default="all",
                        help="train one head (run the three at once in three processes), "
                             "or all in turn; the report is written once all three exist")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = extra_rows(args.rows, args.rate, args.trigger, args.seed)
    write(rows, args.work / "clean.jsonl", poisoned=False)
    write(rows, args.work / "decisions.jsonl", poisoned=True)
    for name in HEADS if args.head == "all" else (args.head,):
        if not (args.work / f"{name}.json").exists():  # a finished head is kept
            train_head(name, args, rows)
    if not all((args.work / f"{h}.json").exists() for h in HEADS):
        return
    result = {h: json.loads((args.work / f"{h}.json").read_text("utf-8")) for h in HEADS}
    for h in HEADS:  # in one process: the transformer's scores are computed once
        result[h]["ensemble"] = ensemble_head(args.work / h, args.trigger, args.seed,
                                              args.work / "transformer_scores.npz")
    result["clean_tpr_change_points"] = {
        part: 100 * (pick(result["defended"])["tpr_clean"]["rate"]
                     - pick(result["clean"])["tpr_clean"]["rate"])
        for part, pick in (("ngram", lambda r: r), ("ensemble", lambda r: r["ensemble"]))}
    out = {"bench": "guard_channel", "args": {k: str(v) for k, v in vars(args).items()
                                              if k != "head"},
           "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": platform.platform(),
           "results": result}
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    np.seterr(over="ignore")
    main()
