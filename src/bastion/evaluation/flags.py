"""Sanity flags: signs that an evaluation's robust accuracy may be too high to trust.

Each flag is a JSON-ready dict ``{"id", "severity", "title", "evidence", "advice"}``:
``severity`` is ``"warn"`` (look into it) or ``"fail"`` (the number is probably
wrong until this is addressed), ``evidence`` holds the numbers that raised it and
``advice`` says what to run next. The rules are pure functions of numbers the runner
already has (the probe of :mod:`bastion.evaluation.probe`, per-sample results, cascade
stages, the eps sweep), so they are cheap and unit-testable.

Thresholds (module constants) are chosen so that honest, well-trained models stay
quiet: on the bundled MNIST models at most ~9% of correct points have a float32
cross-entropy of exactly 0, none has a zero gradient, two forwards agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: share of probed rows that must look like log-probabilities to raise the flag.
LOGPROB_SHARE = 0.9
#: share of correct probed points with a float cross-entropy of exactly 0.
SATURATED_SHARE = 0.5
#: two forwards differ when |z1 - z2| > ATOL + RTOL * max|z| (covers GPU kernel noise).
RANDOM_ATOL, RANDOM_RTOL = 1e-5, 1e-4
#: share of correct probed points with an all-zero or non-finite input gradient.
ZERO_GRAD_SHARE = 0.1
#: robust accuracy may rise with eps by this much (a fraction) before it is flagged.
MONOTONE_TOL = 0.005


def flag(id_: str, severity: str, title: str, evidence: dict[str, Any],
         advice: str) -> dict[str, Any]:
    return {"id": id_, "severity": severity, "title": title, "evidence": evidence,
            "advice": advice}


def probe_flags(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flags 1-3 from :func:`bastion.evaluation.probe.probe_model`'s numbers."""
    out = []
    n, correct = probe["n"], probe["correct"]
    if n and probe["logprob_rows"] >= LOGPROB_SHARE * n:
        out.append(flag(
            "log-probabilities", "warn", "The model seems to return log-probabilities",
            {"rows": n, "rows_with_logsumexp_0": probe["logprob_rows"]},
            "Every output row has logsumexp 0, i.e. the model ends in a log-softmax. "
            "Cross-entropy gradients are unchanged by that, but log(softmax(z)) computed "
            "in two steps underflows and hides gradients. Return the raw logits if you "
            "can; otherwise make sure the model uses log_softmax, and add a margin-loss "
            "attack (e.g. --attack pgd:loss=margin)."))
    if correct and probe["ce_zero"] >= SATURATED_SHARE * correct:
        out.append(flag(
            "saturated-logits", "warn", "Logits are saturated: the cross-entropy is flat",
            {"correct": correct, "correct_with_ce_exactly_0": probe["ce_zero"]},
            "On most correctly classified points the top logit leads by so much that "
            "the float cross-entropy is exactly 0 and its gradient nearly vanishes, so "
            "loss-driven attacks barely move. Use a scale-free loss (margin or DLR, e.g. "
            "--attack pgd:loss=margin or the APGD-DLR attacks) and check for a large "
            "temperature or scaling at the model's end."))
    limit = RANDOM_ATOL + RANDOM_RTOL * probe["logit_scale"]
    if probe["max_logit_diff"] > limit:
        flips = probe["pred_flips"]
        out.append(flag(
            "randomness", "fail" if flips else "warn",
            "Two identical forward passes gave different outputs",
            {"rows": n, "max_logit_diff": probe["max_logit_diff"], "tolerance": limit,
             "predictions_changed": flips},
            "The model is randomised (noise, dropout, random transforms), so one attack "
            "run sees one random draw and the robust accuracy is not a worst case. "
            "Attack the expectation instead: EOT over many draws without early "
            "stopping (--attack eot:attack=pgd,draws=20), and report accuracy over "
            "several draws; `bastion diagnose` runs the related checks."))
    masked = probe["zero_grad"] + probe["nonfinite_grad"]
    if correct and masked > ZERO_GRAD_SHARE * correct:
        out.append(flag(
            "zero-gradients", "fail", "Input gradients are zero or not finite",
            {"correct": correct, "zero_gradient": probe["zero_grad"],
             "nonfinite_gradient": probe["nonfinite_grad"], "why": probe["grad_error"]},
            "Gradient attacks get no direction on these points, so their robust "
            "accuracy says nothing (gradient masking or obfuscation). Run a black-box "
            "attack (e.g. --attack square), a scale-free loss (--attack pgd:loss=margin) "
            "and BPDA: replace the non-differentiable part by a differentiable "
            "approximation, often the identity, on the backward pass "
            "(--attack bpda:attack=pgd for a model exposing .preprocess and .classifier)."))
    return out


def black_box_only(robust: Mapping[str, list[bool]],
                   uses_gradients: Mapping[str, bool]) -> int | None:
    """Samples broken by some black-box attack and by no gradient attack; None unless
    both kinds ran. ``robust``: attack name -> (N,) still-robust flags."""
    white = [robust[a] for a, g in uses_gradients.items() if g]
    black = [robust[a] for a, g in uses_gradients.items() if not g]
    if not white or not black:
        return None
    return sum(1 for w, b in zip(zip(*white, strict=True), zip(*black, strict=True),
                                 strict=True) if all(w) and not all(b))


Stages = Mapping[str, Mapping[str, Mapping[str, Any]]]  # attack -> stage -> report


def black_box_flags(only: Mapping[float, int], n: int,
                    stages: Mapping[float, Stages]) -> list[dict[str, Any]]:
    """Flag 4: a black-box attack broke points the gradient attacks could not.

    Args:
        only: eps -> :func:`black_box_only` count (eps where both kinds ran).
        n: samples evaluated.
        stages: eps -> attack -> stage -> ``{"broken", "uses_gradients", ...}`` summed
            over batches, stages in run order.
    """
    out = []
    beaten = {e: c for e, c in only.items() if c > 0}
    if beaten:
        out.append(flag(
            "black-box-beats-white-box", "warn",
            "A black-box attack broke points that no gradient attack broke",
            {"n": n, "samples_by_eps": {f"{e:g}": c for e, c in beaten.items()}},
            _BLACK_BOX_ADVICE))
    late: dict[str, dict[str, int]] = {}
    for e, by_attack in stages.items():
        for attack, steps in by_attack.items():
            white_ran = False
            for stage, rep in steps.items():
                if rep["uses_gradients"]:
                    white_ran = True
                elif white_ran and rep["broken"] > 0:
                    late.setdefault(f"{attack}/{stage}", {})[f"{e:g}"] = int(rep["broken"])
    if late:
        out.append(flag(
            "black-box-stage-after-white-box", "warn",
            "In a cascade, a black-box stage broke points the gradient stages missed",
            {"n": n, "broken_by_stage_and_eps": late}, _BLACK_BOX_ADVICE))
    return out


_BLACK_BOX_ADVICE = (
    "An attack that only queries outputs should not beat gradient attacks on a "
    "differentiable model; when it does, the gradients are misleading (masking) or the "
    "gradient attacks are too weak. Treat the white-box numbers as optimistic: raise "
    "steps and restarts, try other losses (margin, DLR) and BPDA, and keep the black-box "
    "attack in the evaluation.")


def monotone_flags(sweep: Sequence[Mapping[str, Any]], n: int) -> list[dict[str, Any]]:
    """Flag 5: robust accuracy rises with eps (worst case or any attack).

    A larger ball contains the smaller one, so a true robust accuracy never rises; a rise
    above ``max(MONOTONE_TOL, 1.5 / n)`` (more than one sample of noise) means the attacks
    did not find what they found at a smaller eps.
    """
    tol = max(MONOTONE_TOL, 1.5 / n)
    curves: dict[str, list[float]] = {"worst case": [p["robust_accuracy"] for p in sweep]}
    for name in sweep[0]["per_attack"] if sweep else ():
        curves[name] = [p["per_attack"][name] for p in sweep]
    rises = []
    for name, values in curves.items():
        for i in range(1, len(values)):
            low_best = min(values[:i])  # the lowest accuracy at any smaller eps
            if values[i] - low_best > tol:
                j = values.index(low_best)
                rises.append({"curve": name, "eps_low": sweep[j]["eps"],
                              "accuracy_low": low_best, "eps_high": sweep[i]["eps"],
                              "accuracy_high": values[i]})
    if not rises:
        return []
    return [flag(
        "non-monotone-sweep", "warn", "Robust accuracy rises with eps",
        {"tolerance": tol, "rises": rises},
        "Every point within a small eps is also within a larger one, so robust accuracy "
        "cannot rise with eps; here the attacks missed at a larger eps what they found at "
        "a smaller one. The evaluation is unreliable: raise steps and restarts (or use "
        "APGD, which adapts its step size) until the curve falls monotonically.")]
