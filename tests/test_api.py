"""The public API is curated: this pins it so additions and removals are deliberate."""

from __future__ import annotations

import bastion


def test_public_names_are_pinned():
    assert sorted(bastion.__all__) == sorted([
        "APGD", "APGDT", "FAB", "FGSM", "PGD", "Square", "Attack", "AttackResult", "AutoAttack",
        "BPDA", "EOT", "BastionError", "BastionWarning",
        "CapabilityError", "ConfigError", "Diagnosis", "Evaluation", "InputError",
        "MissingDependencyError",
        "ModelError", "StateError", "ThreatModel", "__version__", "attacks", "data",
        "diagnose", "evaluate", "ood", "poison", "privacy", "threats", "zoo",
    ])
    for name in bastion.__all__:
        assert hasattr(bastion, name), name


def test_errors_are_also_builtin_kinds():
    assert issubclass(bastion.ConfigError, ValueError)
    assert issubclass(bastion.InputError, ValueError)
    assert issubclass(bastion.CapabilityError, TypeError)
    assert issubclass(bastion.MissingDependencyError, ImportError)
    for cls in (bastion.ConfigError, bastion.InputError, bastion.ModelError,
                bastion.StateError, bastion.MissingDependencyError):
        assert issubclass(cls, bastion.BastionError)


def test_evaluate_is_the_function():
    assert callable(bastion.evaluate)
    assert bastion.evaluate.__module__ == "bastion.evaluation.runner"


def test_diagnose_is_the_function():
    from bastion.diagnostics import diagnose

    assert bastion.diagnose is diagnose
