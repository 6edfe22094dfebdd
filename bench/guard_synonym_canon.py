"""Session 11: undo synonym swaps before scoring? A tried defence, not shipped
(docs/guard.md, "Attacking the guard"; docs/results/guard_session11_synonym_canon.txt).

The ``synonym-strict`` attack swaps a word for another word of its most common WordNet
sense ("need" -> "involve", "prevent" -> "preclude"). Its inverse maps a *rare* word back
to the frequent word whose most common sense holds it: a word ``x`` (part of speech
``p``, tagged by spaCy as the attack tags it) becomes ``w`` when ``x`` lies in the first
``p`` synset of ``w``, ``x`` was tagged at most ``--rare`` times in WordNet's sense-tagged
corpus (``cntlist.rev``) and ``w`` at least three times as often (the most frequent such
``w``; its ending put back). The layer then scores::

    max(logit(text), logit(canonical(text)) - margin)

at the guarded threshold chosen again for that score (S-Labs val FPR <= 1%, at most 3%
of ``benign-dev`` flagged), and the synonym families attack it on the first
``--limit`` S-Labs val prompts, as the plain layer. Never S-Labs test nor the
over-refusal set.

    python bench/guard_synonym_canon.py --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

#: WordNet's sense-key part-of-speech digits (5: adjective satellite).
_SENSE_POS = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}


@functools.lru_cache(maxsize=1)
def tag_counts() -> dict[tuple[str, str], int]:
    """``(lemma, pos) -> times tagged`` in WordNet's sense-tagged corpus (all senses)."""
    from bastion.guard import synonyms

    counts: dict[tuple[str, str], int] = defaultdict(int)
    path = synonyms.WORDNET_DIR / "cntlist.rev"
    for line in path.read_text("utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[2].isdigit():
            continue
        lemma, _, rest = fields[0].partition("%")
        pos = _SENSE_POS.get(rest[:1])
        if pos:
            counts[(lemma.replace("_", " ").lower(), pos)] += int(fields[2])
    return counts


@functools.lru_cache(maxsize=4)
def inverse(rare: int, ratio: float = 3.0) -> dict[tuple[str, str], str]:
    """``(rare word, pos) -> frequent word`` whose first sense holds it (see above)."""
    from bastion.guard import synonyms

    index, data = synonyms._wordnet()
    counts = tag_counts()
    best: dict[tuple[str, str], tuple[str, int]] = {}
    for lemma, entries in index.items():
        w = lemma.replace("_", " ")
        for pos in synonyms._POS:
            first = next((o for p, o in entries if p == pos), None)
            n_w = counts.get((w, pos), 0)
            if first is None or " " in w or n_w <= 0:
                continue
            for x in synonyms._synset_words(data[pos], first):
                key = (x.lower(), pos)
                n_x = counts.get(key, 0)
                if (x.lower() == w or not x.replace(" ", "").isalpha() or not x.islower()
                        or n_x > rare or n_w < ratio * max(n_x, 1)):
                    continue
                if key not in best or best[key][1] < n_w:
                    best[key] = (w, n_w)
    return {k: v[0] for k, v in best.items()}


@functools.lru_cache(maxsize=200_000)
def canonical(text: str, rare: int) -> str:
    """``text`` with every rare tagged word replaced by its frequent synonym."""
    from bastion.guard import synonyms

    inv, irregular = inverse(rare), synonyms._irregular()
    out, last = [], 0
    for tok in synonyms._tagger()(text[:synonyms.MAX_TAGGED]):
        pos = synonyms._UPOS.get(tok.pos_)
        if pos is None or not tok.text.isascii() or not tok.text.isalpha():
            continue
        w = inv.get((tok.lemma_.lower(), pos))
        ending = synonyms._ENDING.get(tok.tag_, "")
        if not w or (ending and w in irregular[pos]):
            continue
        new = synonyms.inflect(w, ending)
        new = new[:1].upper() + new[1:] if tok.text[:1].isupper() else new
        out += [text[last:tok.idx], new]
        last = tok.idx + len(tok.text)
    return "".join([*out, text[last:]])


def main() -> dict[str, Any]:
    import torch

    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input.ensemble import EnsembleScanner, logit, mixed
    from bastion.guard.train_classifier import guarded_rates

    sys.path.insert(0, str(Path(__file__).parent))
    from guard_ensemble_variants import _Guard

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rare", type=int, default=10)
    ap.add_argument("--margin", type=float, default=2.0)
    ap.add_argument("--limit", type=int, default=2101, help="S-Labs val prompts attacked")
    ap.add_argument("--families", default="synonym-strict,synonym")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    scanner = EnsembleScanner()
    transformer, ngram = scanner.members()

    def z(text: str) -> float:
        p = mixed(transformer.scan(text).score, ngram.scan(text).score, scanner.mix)
        return float(logit(p))

    @functools.lru_cache(maxsize=200_000)
    def score(text: str, canon: bool) -> float:
        plain = z(text)
        if canon:
            other = canonical(text, args.rare)
            plain = plain if other == text else max(plain, z(other) - args.margin)
        return float(1.0 / (1.0 + np.exp(-plain)))

    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    labels = np.asarray([e.label for e in val])
    out: dict[str, Any] = {"rare": args.rare, "margin": args.margin, "limit": args.limit,
                           "rows": {}}
    for name, canon in (("plain", False), ("canonical", True)):
        started = time.perf_counter()
        v = np.asarray([score(e.text, canon) for e in val])
        d = np.asarray([score(e.text, canon) for e in dev])
        rates = guarded_rates(v, labels, d)
        a = attack_guard(_Guard(lambda t, c=canon: score(t, c), rates["threshold"]),
                         val[:args.limit], families=args.families.split(","),
                         budgets=(1, 3, 5), tries=5, seed=0)
        out["rows"][name] = {
            **rates, "changed_val": int(sum(canonical(e.text, args.rare) != e.text
                                            for e in val)) if canon else 0,
            "attacked": a["n_attacks"], "caught": a["n_caught"],
            "drop_points": {f"{r['family']}-{r['budget']}": [r["tpr_drop_points"],
                                                             r["tpr_drop_ci_points"]]
                            for r in a["results"]},
            "seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps({name: out["rows"][name]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
