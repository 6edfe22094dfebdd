"""Long documents: how often the ensemble layer flags benign ones, and catches an attack
hidden in one, at its threshold and at higher document-level thresholds.

Builds, with a fixed seed, documents of about ``--chars`` characters by joining short
prompts (never S-Labs test, never the over-refusal set):

* ``val-benign``: S-Labs val's benign prompts;
* ``dev-benign``: ``benign-dev`` prompts (benign, with attack words);
* ``val-hidden``: S-Labs val's benign prompts with one S-Labs val attack at a random
  place.

Each document is scanned whole by the layer (windows, the maximum over them). Reported:
the share flagged at the layer's threshold and at each ``--thresholds`` value, so a
document-level threshold can be weighed (docs/guard.md, "Long benign documents").

    python bench/guard_long_documents.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any


def documents(prompts: list[str], n: int, chars: int, seed: int,
              hide: list[str] | None = None, stops: bool = True) -> list[str]:
    """``n`` documents of about ``chars`` characters of ``prompts`` joined by spaces,
    each ending in a full stop or question mark (S-Labs prompts often end in neither;
    ``stops=False``: as they are); with ``hide``, one of its texts at a random place in
    each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            parts.append(_sentence(rng.choice(prompts), stops))
        if hide:
            parts.insert(rng.randrange(len(parts) + 1), _sentence(rng.choice(hide), stops))
        out.append(" ".join(parts))
    return out


def _sentence(text: str, stops: bool) -> str:
    text = text.strip()
    if stops and text and text[-1] not in ".?!":
        text += "?" if text.split()[0].lower() in _QUESTION_WORDS else "."
    return text


_QUESTION_WORDS = {"what", "how", "why", "when", "where", "who", "which", "can", "could",
                   "is", "are", "do", "does", "should", "would", "will"}


def main() -> dict[str, Any]:
    import torch

    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input.ensemble import EnsembleScanner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="documents per set")
    ap.add_argument("--chars", type=int, default=2500)
    ap.add_argument("--thresholds", default="0.7,0.8,0.9,0.95,0.98,0.99,0.995")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-stops", action="store_true",
                    help="join the prompts as they are, most without a full stop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    val = load_corpus("s-labs-val")
    benign = [e.text for e in val if e.label == 0]
    attacks = [e.text for e in val if e.label == 1]
    dev = [e.text for e in load_corpus("benign-dev")]
    stops = not args.no_stops
    sets = {"val-benign": documents(benign, args.n, args.chars, args.seed, stops=stops),
            "dev-benign": documents(dev, args.n, args.chars, args.seed + 1, stops=stops),
            "val-hidden": documents(benign, args.n, args.chars, args.seed + 2, attacks,
                                    stops)}
    layer = EnsembleScanner()
    thresholds = [layer.threshold] + [float(t) for t in args.thresholds.split(",")]
    out: dict[str, Any] = {"layer_threshold": layer.threshold, "n": args.n,
                           "chars": args.chars, "seed": args.seed, "stops": stops,
                           "flagged": {}}
    for name, docs in sets.items():
        scores = [layer.scan(d).score for d in docs]
        out["flagged"][name] = {f"{t:.4g}": sum(s >= t for s in scores) / len(scores)
                                for t in thresholds}
        out.setdefault("scores", {})[name] = [round(s, 4) for s in scores]
    print(json.dumps({k: v for k, v in out.items() if k != "scores"}, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
