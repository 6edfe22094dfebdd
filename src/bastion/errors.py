"""Exceptions and warnings raised by bastion.

Every message says what went wrong *and* what to do about it.

    BastionError
     ├── ConfigError(ValueError)      a parameter or option is invalid
     ├── InputError(ValueError)       the data given to bastion is unusable (NaN, range, shape)
     ├── ModelError(ValueError)       the model misbehaves (wrong output shape, probabilities)
     ├── CapabilityError(TypeError)   the model or object lacks something an operation needs
     ├── MissingDependencyError(ImportError)
     │                                data or a model lives in a package that is not installed
     └── StateError(RuntimeError)     a resume file does not match the run being resumed

    BastionWarning(UserWarning)       something is suspicious but a correct number is still possible
"""

from __future__ import annotations


class BastionError(Exception):
    """Base class of every error bastion raises on purpose."""


class ConfigError(BastionError, ValueError):
    """A parameter or option is invalid."""


class InputError(BastionError, ValueError):
    """Inputs or labels are unusable as given."""


class ModelError(BastionError, ValueError):
    """The model's behaviour would make the numbers wrong."""


class CapabilityError(BastionError, TypeError):
    """An object lacks a capability that the requested operation needs."""


class MissingDependencyError(BastionError, ImportError):
    """A data set or model lives in a package that is not installed."""


class StateError(BastionError, RuntimeError):
    """A saved state cannot be used to resume the requested run."""


class BastionWarning(UserWarning):
    """Something looks wrong; the result may still be correct, but check it."""
