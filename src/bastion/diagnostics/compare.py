"""Attacks compared with each other: a weaker or blinder attack must not do better.

- ``iterative-vs-single-step``: PGD takes many steps where FGSM takes one, so PGD's
  robust accuracy must not exceed FGSM's; when it does, the gradient is informative
  far from the input but misleading near it (a classic sign of masking).
- ``black-box``: Square only reads the model's outputs, so on a model with honest
  gradients it breaks no point that the white-box attacks left standing.
- ``transfer``: adversarial examples made on another model (the surrogate) must not
  break points that attacks with full access to this model could not.

Counts are of samples; shares of the samples they are taken over, said in the evidence.
"""

from __future__ import annotations

from typing import Any

from bastion.diagnostics.result import check, grade, sample_tolerance, share

#: PGD's robust accuracy may exceed FGSM's by sample_tolerance(n) before a warning and
#: by SINGLE_STEP_FAIL (or twice that tolerance, when larger) before a failure.
SINGLE_STEP_FAIL = 0.02
#: share of the white-box-robust points a black-box or transfer attack breaks: above
#: sample_tolerance(points checked) warns, above BEATEN_FAIL (or twice that) fails.
BEATEN_FAIL = 0.05

_BLIND_ADVICE = (
    "On a model with honest gradients an attack that sees less cannot do better than "
    "one that sees everything; here it did, so the gradients mislead the white-box "
    "attack (masking) or that attack is too weak. Treat the white-box robust accuracy "
    "as too high: keep this attack in the evaluation (bastion evaluate ... --attack pgd "
    "--attack square), try other losses (--attack pgd:loss=margin), and BPDA or EOT "
    "where gradient-health, finite-differences or randomness point.")


def single_step_check(pgd: float, fgsm: float, n: int, *, pgd_label: str,
                      fgsm_only: int) -> dict[str, Any]:
    """PGD's robust accuracy ``pgd`` against FGSM's ``fgsm`` (fractions of ``n``);
    ``fgsm_only``: samples FGSM broke and PGD did not."""
    tol = sample_tolerance(n)
    excess = pgd - fgsm
    fail_above = max(SINGLE_STEP_FAIL, 2 * tol)
    verdict = grade(excess, tol, fail_above)
    evidence = {"n": n, "pgd": pgd_label, "pgd_robust_accuracy": pgd,
                "fgsm_robust_accuracy": fgsm, "excess": excess, "broken_by_fgsm_only": fgsm_only,
                "tolerance": tol, "fail_above": fail_above}
    if verdict == "pass":
        return check("iterative-vs-single-step", "pass", evidence,
                     f"{pgd_label} is at least as strong as FGSM, as an iterative attack "
                     "should be.")
    return check(
        "iterative-vs-single-step", verdict, evidence,
        f"One FGSM step leaves {excess:.1%} fewer samples robust than {pgd_label}: many "
        "small steps do worse than one big one, so the loss surface near the inputs "
        "misleads gradient steps (masking, e.g. by noise or catastrophic overfitting in "
        "FGSM-style training), or the step size is wrong. Keep FGSM in the evaluation, "
        "raise steps and restarts, and check gradient-health and randomness.")


def beaten_check(name: str, *, attack_label: str, white_label: str, checked: int,
                 broken: int, n: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A blind attack (``attack_label``) against the white-box attacks: of ``checked``
    samples that every white-box attack left robust, it broke ``broken``."""
    rate = share(broken, checked)
    # With a handful of samples the noise tolerance exceeds 1: nothing can be concluded.
    tol = min(sample_tolerance(checked), 1.0)
    fail_above = min(max(BEATEN_FAIL, 2 * tol), 1.0)
    evidence = {"n": n, "attack": attack_label, "white_box": white_label,
                "white_box_robust_checked": checked, "broken": broken,
                "share_of_checked": rate, "tolerance": tol, "fail_above": fail_above,
                **(extra or {})}
    if checked == 0:
        return check(name, "pass", evidence, "The white-box attacks left no sample robust, "
                     "so there was nothing for this attack to beat.")
    verdict = grade(rate, tol, fail_above)
    if verdict == "pass":
        return check(name, "pass", evidence,
                     f"{attack_label} broke {broken} of the {checked} samples the white-box "
                     "attacks left robust: it does not beat them.")
    return check(name, verdict, evidence,
                 f"{attack_label} broke {broken} of the {checked} samples ({rate:.1%}) that "
                 f"{white_label} left robust. " + _BLIND_ADVICE)
