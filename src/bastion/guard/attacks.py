"""Attack the guard: perturb the attack prompts it catches and count those that slip through.

    from bastion.guard import Guard
    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus

    result = attack_guard(Guard(), load_corpus("s-labs-val"), budgets=(1, 3), tries=5)
    result["worst_family"], result["results"][0]["asr"]

The attacker is black-box and adaptive: for every attack prompt the guard catches
(verdict other than ``allow``), each perturbation family and each budget, it sends up
to ``tries`` perturbed variants and stops at the first one the guard allows. The prompt
counts as *evaded* if any variant is allowed. The attack success rate (ASR) is
evaded / caught originally; the guard's TPR on the attack prompts falls from
caught / attacks to (caught - evaded) / attacks. The perturbations live in
:mod:`bastion.guard.perturb`; none checks that the perturbed prompt still carries its
attack to a model (a split or encoded payload needs a model that decodes it).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.state import StateFile, fingerprint
from bastion.errors import ConfigError, InputError
from bastion.guard.corpora import Example
from bastion.guard.perturb import BUDGET_FREE, PERTURBATIONS


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _attack_texts(prompts: Sequence[Example | str]) -> list[str]:
    """The attack prompts: examples labelled 1, or every plain string."""
    texts: list[str] = []
    for p in prompts:
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, Example):
            if p.label == 1:
                texts.append(p.text)
        else:
            raise InputError(f"prompts must be Example or str, got {type(p).__name__}")
    return texts


def _check(families: Sequence[str] | None, budgets: Sequence[int], tries: int) -> list[str]:
    names = list(PERTURBATIONS) if families is None else list(families)
    unknown = [f for f in names if f not in PERTURBATIONS]
    if unknown:
        raise ConfigError(f"unknown perturbation famil{'y' if len(unknown) == 1 else 'ies'} "
                          f"{', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(PERTURBATIONS)}")
    if not names:
        raise ConfigError("give at least one perturbation family")
    if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                          for b in budgets):
        raise ConfigError(f"budgets must be whole numbers >= 1, got {list(budgets)}")
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise ConfigError(f"tries must be a whole number >= 1, got {tries!r}")
    return names


def _progress(items: list[tuple[str, int]], progress: bool) -> Iterable[tuple[str, int]]:
    if not progress:
        return items
    from rich.progress import track

    return track(items, description="attacking", transient=True)


def _state(path: str | Path | None, caught: Sequence[str], names: Sequence[str],
           budgets: Sequence[int], tries: int, seed: int) -> StateFile:
    """The resume file of a run (:class:`bastion.common.state.StateFile`), keyed
    ``family/budget``; its fingerprint covers the caught prompts, so another guard (or
    corpus) that catches other prompts is refused rather than mixed in."""
    digest = hashlib.sha256("\x00".join(caught).encode("utf-8", "surrogatepass"))
    fp = fingerprint({"kind": "guard-attack", "caught": digest.hexdigest(),
                      "families": list(names), "budgets": list(budgets), "tries": tries,
                      "seed": seed})
    return StateFile(None if path is None else Path(path), fp,
                     settings="the prompts the guard catches, families, budgets, tries "
                              "or seed")


def attack_guard(guard: Any, prompts: Sequence[Example | str], *,
                 families: Sequence[str] | None = None, budgets: Sequence[int] = (1, 3, 5),
                 tries: int = 5, seed: int = 0, progress: bool = False,
                 state: str | Path | None = None) -> dict[str, Any]:
    """Perturb the attack prompts the guard catches and measure how many get through.

    Args:
        guard: anything with ``scan_input(text)`` returning an object with ``.verdict``
            (a :class:`~bastion.guard.Guard`).
        prompts: :class:`~bastion.guard.corpora.Example` s (only label 1 is used) or
            plain strings (all taken as attacks).
        families: names from :data:`~bastion.guard.perturb.PERTURBATIONS`; ``None`` for
            all.
        budgets: edits allowed per variant (words or characters touched; see each
            family). The encoding families ignore it.
        tries: queries the attacker may spend per prompt, family and budget.
        seed: fixes every perturbation.
        progress: show a progress bar on stderr.
        state: a resume file, rewritten after every family and budget; a rerun with
            the same file, guard, prompts and settings skips the cells already done
            (after an interruption). A file from other settings raises
            :class:`~bastion.errors.StateError`.

    Returns:
        a dict: ``results`` (one row per family and budget: ``asr``, ``evaded``,
        ``caught``, ``tpr_before``, ``tpr_after``, ``tpr_drop_points`` and its Wilson 95% interval
        ``tpr_drop_ci_points``, ``asr_ci``, ``queries``),
        ``asr_by_family`` (mean ASR over budgets), ``worst_family``, ``worst`` (the
        row with the highest ASR), counts, settings and ``notes``.
    """
    names = _check(families, budgets, tries)
    attacks = _attack_texts(prompts)
    caught = [t for t in attacks if guard.scan_input(t).verdict != "allow"]
    n_attacks, n_caught = len(attacks), len(caught)
    saved = _state(state, caught, names, budgets, tries, seed)
    rows: list[dict[str, Any]] = []
    for family, budget in _progress([(f, b) for f in names for b in budgets], progress):
        done = saved.done(f"{family}/{budget}")
        if done is None:
            done = _cell(guard, caught, n_attacks, family, budget, tries, seed)
            saved.save(f"{family}/{budget}", done)
        rows.append(done)
    by_family: dict[str, float | None] = {}
    for family in names:
        asrs = [r["asr"] for r in rows if r["family"] == family and r["asr"] is not None]
        by_family[family] = sum(asrs) / len(asrs) if asrs else None
    scored = [r for r in rows if r["asr"] is not None]
    ranked = [f for f in names if by_family[f] is not None]
    notes = _notes(tries)
    if n_caught == 0:
        notes["empty"] = "the guard caught none of the attack prompts: nothing to attack"
    return {
        "families": names, "budgets": list(budgets), "tries": tries, "seed": seed,
        "n_prompts": len(prompts), "n_attacks": n_attacks, "n_caught": n_caught,
        "tpr_before": _ratio(n_caught, n_attacks),
        "queries": sum(r["queries"] for r in rows), "results": rows,
        "asr_by_family": by_family,
        "worst_family": max(ranked, key=lambda f: by_family[f] or 0.0) if ranked else None,
        "worst": max(scored, key=lambda r: r["asr"]) if scored else None, "notes": notes,
    }


def _cell(guard: Any, caught: Sequence[str], n_attacks: int, family: str, budget: int,
          tries: int, seed: int) -> dict[str, Any]:
    """One family at one budget: each caught prompt perturbed up to ``tries`` times
    until a variant is allowed; the row of the result's ``results``."""
    perturb = PERTURBATIONS[family]
    n_caught = len(caught)
    evaded = queries = 0
    for i, text in enumerate(caught):
        for t in range(tries):
            rng = random.Random(f"{seed}:{family}:{budget}:{i}:{t}")
            queries += 1
            if guard.scan_input(perturb(text, rng, budget)).verdict == "allow":
                evaded += 1
                break
    tpr_before = _ratio(n_caught, n_attacks)
    tpr_after = _ratio(n_caught - evaded, n_attacks)
    return {
        "family": family, "budget": budget, "caught": n_caught, "evaded": evaded,
        "asr": _ratio(evaded, n_caught), "tpr_before": tpr_before, "tpr_after": tpr_after,
        "tpr_drop_points": (None if tpr_before is None or tpr_after is None
                            else round(100 * (tpr_before - tpr_after), 4)),
        "tpr_drop_ci_points": interval_list(wilson_interval(evaded, n_attacks), 100, 2),
        "asr_ci": interval_list(wilson_interval(evaded, n_caught), 1, 4),
        "queries": queries,
    }


def _notes(tries: int) -> dict[str, str]:
    """What the figures of an :func:`attack_guard` result mean."""
    return {
        "attacker": f"black-box: it sees only the verdict and spends up to {tries} "
                    f"queries per prompt, family and budget, stopping at the first allowed "
                    f"variant; a prompt counts as evaded if any variant is allowed",
        "asr": "attack success rate = evaded / attack prompts the guard caught unperturbed "
               "(verdict other than allow)",
        "tpr": "TPR on the attack prompts, before and after the attack; the drop is in "
               "percentage points",
        "budget": f"edits per variant (words or characters touched); "
                  f"{', '.join(sorted(BUDGET_FREE))} rewrite the whole payload and ignore it",
        "payload": "no check that a perturbed prompt still works on a model",
        "interval": "tpr_drop_ci_points and asr_ci: Wilson 95% intervals over the attack "
                    "prompts sampled (evaded / attacks and evaded / caught), the "
                    "perturbations fixed by the seed",
    }
