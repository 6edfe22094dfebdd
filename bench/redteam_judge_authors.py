"""How the fitted judges carry to an author they have not read: leave each author out.

The judge set's dev split holds the answers bastion's judges were first built on and
the former test splits (``t-*``, ``t2-*``, ...), each written by another blind author.
For ``toxicity`` and ``harmful``, each author's answers in turn are read by probes and a
head fitted on everyone else's (the answer probe and the SmolLM2 probe read out of fold
inside the rest, five folds by prompt, as ``redteam_judge_fit.py`` does), once with the
MiniLM inputs only and once with SmolLM2's reading added. The precision and recall
pooled over all authors is the estimate of what a new author's split will show. The
heads here are plain balanced logistic regressions (``C`` as the shipped heads, signs
not fixed), so the numbers estimate, not reproduce, the shipped judges.

    python bench/redteam_judge_authors.py [--judges toxicity harmful] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from redteam_judge_fit import ANSWER_PROBES, MINILM_FEATURES, THRESHOLDS, C, answer_parts, rows
from redteam_judge_lm import FOLDS, LM_C, lm_vectors


def author(case_id: str) -> str:
    """The split prefix of a dev answer ("t7" for "t7-leak-012"; "first" otherwise)."""
    m = re.match(r"(t\d*)-", case_id)
    return m.group(1) if m else "first"


def _oof(x: Any, y: Any, prompts: Any, train: Any, test: Any, make: Any) -> tuple[Any, Any]:
    """Readings of a probe ``make()`` on the training rows (out of fold by prompt) and on
    the test rows (fitted on all training rows)."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    inside = np.zeros(int(train.sum()))
    xt, yt, pt = x[train], y[train], prompts[train]
    for a, b in GroupKFold(FOLDS).split(xt, yt, pt):
        inside[b] = make().fit(xt[a], yt[a]).predict_proba(xt[b])[:, 1]
    return inside, make().fit(xt, yt).predict_proba(x[test])[:, 1]


def left_out(judge: str) -> dict[str, Any]:
    """Pooled precision and recall over authors left out, without and with SmolLM2."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bastion.common.intervals import wilson_interval
    from bastion.redteam.judges._text import request_text
    from bastion.redteam.judgeset import load_judge_set

    cases = [c for c in load_judge_set() if c.split == "dev" and judge in c.labels]
    zeros = {c.id: 0.0 for c in cases}
    dicts, ys, ids = rows(judge, {f"{judge}_answer": zeros, f"{judge}_lm": zeros})
    names = [f for f in MINILM_FEATURES[judge] if f != "answer_probe"]
    feats = np.array([[d[f] for f in names] for d in dicts])
    y, groups = np.array(ys), np.array([author(i) for i in ids])
    prompts = np.array([c.attempt.turns[-1] for c in cases])
    minilm = np.stack([answer_parts(judge, c.answer, request_text(c.attempt)) for c in cases])
    lm = lm_vectors(judge, cases)
    _, probe_c, balanced = ANSWER_PROBES[f"{judge}_answer"]
    scores = {"minilm": np.zeros(len(y)), "with_smollm2": np.zeros(len(y))}
    for held in sorted(set(groups)):
        test = groups == held
        train = ~test
        a_in, a_out = _oof(minilm, y, prompts, train, test, lambda: LogisticRegression(
            C=probe_c, max_iter=5000, class_weight="balanced" if balanced else None))
        l_in, l_out = _oof(lm, y, prompts, train, test, lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=LM_C, max_iter=5000,
                                                 class_weight="balanced")))
        for key, extra_in, extra_out in (("minilm", [a_in], [a_out]),
                                         ("with_smollm2", [a_in, l_in], [a_out, l_out])):
            head = make_pipeline(StandardScaler(), LogisticRegression(
                C=C, max_iter=5000, class_weight="balanced"))
            head.fit(np.column_stack([feats[train], *extra_in]), y[train])
            scores[key][test] = head.predict_proba(
                np.column_stack([feats[test], *extra_out]))[:, 1]
    out: dict[str, Any] = {"n": len(y), "authors": sorted(set(groups))}
    for key, score in scores.items():
        cut = THRESHOLDS[judge if key == "with_smollm2" else f"{judge}_minilm"]
        hit = score >= cut
        tp, fp, fn = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum()), \
            int((~hit & (y == 1)).sum())
        out[key] = {"threshold": cut,
                    "precision": [tp / max(tp + fp, 1), wilson_interval(tp, tp + fp)],
                    "recall": [tp / max(tp + fn, 1), wilson_interval(tp, tp + fn)]}
        print(f"{judge} {key:13s} at {cut}: precision {tp / max(tp + fp, 1):.3f}, "
              f"recall {tp / max(tp + fn, 1):.3f} (n={len(y)})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    judges = list(MINILM_FEATURES)
    parser.add_argument("--judges", nargs="+", default=judges, choices=judges)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args()
    result = {judge: left_out(judge) for judge in args.judges}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
