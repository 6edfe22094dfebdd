"""The card of a ``bastion certify`` run: the attack as the evaluation, the certificates
as a ``certified`` section beside it (docs/card.md).

The evaluation part is the cross-check attack along the radii of the curve, shaped like
:meth:`bastion.Evaluation.to_dict`, so the card's usual tables and plots show the
empirical side; the ``certified`` section holds the certified curve and the gap::

    {"method": "crown", "norm": "Linf", "attack": "pgd-40",
     "certified_accuracy": 0.78, "empirical_robust_accuracy": 0.83,
     "gap": 0.05, "certified_but_broken": 0,
     "curve": [{"eps", "certified_accuracy", "empirical_robust_accuracy", "gap",
                "certified_but_broken"}, ...],              # ascending eps
     "params": {...}}                                        # method settings
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.errors import ConfigError


def certified_section(result: dict[str, Any]) -> dict[str, Any]:
    """The card's ``certified`` section from :func:`bastion.certify.job.run_certify`'s dict."""
    _need_attack(result)
    params: dict[str, Any] = {"seconds": result["seconds"]}
    for key in ("smoothing", "attack_params"):
        if key in result:
            params[key] = result[key]
    return {"method": result["method"], "norm": result["threat"]["norm"],
            "attack": result["attack"],
            "certified_accuracy": result["certified_accuracy"],
            "empirical_robust_accuracy": result["empirical_robust_accuracy"],
            "gap": result["gap"], "certified_but_broken": result["certified_but_broken"],
            "curve": result["sweep"], "params": params}


def card_evaluation(result: dict[str, Any]) -> dict[str, Any]:
    """The card's ``evaluation``: the cross-check attack's robust accuracy at every radius."""
    _need_attack(result)
    label = result["attack"]
    sweep = [{"eps": p["eps"], "robust_accuracy": p["empirical_robust_accuracy"],
              "per_attack": {label: p["empirical_robust_accuracy"]}} for p in result["sweep"]]
    return {"n": result["n"], "clean_accuracy": result["empirical_clean_accuracy"],
            "robust_accuracy": result["empirical_robust_accuracy"],
            "per_attack": {label: result["empirical_robust_accuracy"]}, "sweep": sweep,
            "passes": {label: result["attack_passes"]}, "seconds": result["attack_seconds"],
            "threat": result["threat"],
            "params": {"source": "bastion certify", "method": result["method"]}}


def write_certify_card(out: Path, result: dict[str, Any], *, seed: int,
                       command: str) -> tuple[Path, Path]:
    """``out/card.json`` and ``out/card.html`` for one certify run."""
    from bastion.report import CardEntry, write_entry_card

    entry = CardEntry(model=result["model"], data=result["data"],
                      evaluation=card_evaluation(result),
                      sections={"certified": certified_section(result)})
    return write_entry_card(out, entry, seed=seed, versions=result["versions"],
                            command=command)


def _need_attack(result: dict[str, Any]) -> None:
    if "empirical_robust_accuracy" not in result:
        raise ConfigError("a certify card puts certificates beside an attack on the same "
                          "samples; run with --attack pgd (not --attack none) to write one")
