"""The whole compval exception tree.

::

    CompvalError(Exception)                         base of every error a user can cause
    ├── InvalidParameterError(CompvalError, ValueError)   bad argument to a public API
    ├── SpecError(CompvalError, ValueError)
    │   ├── SpecParseError                          YAML/TOML syntax; carries file and line
    │   └── SpecValidationError                     carries the field path: "criteria[2].threshold"
    ├── AdapterError(CompvalError)
    │   ├── MissingDependencyError(AdapterError, ImportError)  names the extra to install
    │   ├── ModelLoadError                          missing, corrupt or refused model file
    │   ├── InputMismatchError(AdapterError, ValueError)       name/dtype/shape vs the model
    │   └── InferenceError                          the runtime raised while predicting
    ├── DataError(CompvalError)                     unreadable data, missing column, empty data
    ├── MetricError(CompvalError)
    │   ├── IncompatibleMergeError                  merging accumulators of different config
    │   └── EmptyAccumulatorError                   result() before any update
    └── ProfilingError(CompvalError)
    InternalError(Exception)                        a compval bug; deliberately not a CompvalError

    CompvalWarning(UserWarning)
    ├── UndefinedMetricWarning
    ├── SmallSampleWarning
    └── ApproximationWarning

The CLI maps these to exit codes in exactly one place (``compval.cli.main``): SpecError and
InvalidParameterError give 4, AdapterError, DataError and ProfilingError give 5, anything else 3.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "ApproximationWarning",
    "CompvalError",
    "CompvalWarning",
    "DataError",
    "EmptyAccumulatorError",
    "IncompatibleMergeError",
    "InferenceError",
    "InputMismatchError",
    "InternalError",
    "InvalidParameterError",
    "MetricError",
    "MissingDependencyError",
    "ModelLoadError",
    "ProfilingError",
    "SmallSampleWarning",
    "SpecError",
    "SpecParseError",
    "SpecValidationError",
    "UndefinedMetricWarning",
]


class CompvalError(Exception):
    """Base class of every error caused by the user's input or environment."""


class InvalidParameterError(CompvalError, ValueError):
    """A public function or constructor got an invalid argument."""


class SpecError(CompvalError, ValueError):
    """The acceptance spec cannot be used."""


class SpecParseError(SpecError):
    """The spec file is not valid YAML/TOML."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line


class SpecValidationError(SpecError):
    """A spec field is missing, unknown or has an invalid value."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class AdapterError(CompvalError):
    """A model could not be loaded or run."""


class MissingDependencyError(AdapterError, ImportError):
    """An optional runtime is not installed; the message names the extra to install."""


class ModelLoadError(AdapterError):
    """A model file is missing, corrupt, of an unknown format, or refused (pickle)."""


class InputMismatchError(AdapterError, ValueError):
    """The data does not match the model's declared inputs (name, dtype or shape)."""


class InferenceError(AdapterError):
    """The runtime raised while running a batch."""


class DataError(CompvalError):
    """The dataset cannot be read or does not have the expected columns or rows."""


class MetricError(CompvalError):
    """A metric cannot be computed."""


class IncompatibleMergeError(MetricError):
    """Two accumulators of different class or configuration were merged."""


class EmptyAccumulatorError(MetricError):
    """``result()`` was called on an accumulator that saw no rows."""


class ProfilingError(CompvalError):
    """A performance measurement could not be made."""


class InternalError(Exception):
    """A bug in compval. Not a CompvalError, so that it is never mistaken for a user error."""


class CompvalWarning(UserWarning):
    """Base class of compval's warnings."""


class UndefinedMetricWarning(CompvalWarning):
    """A metric is undefined for the data (e.g. R^2 of a constant target)."""


class SmallSampleWarning(CompvalWarning):
    """A segment has too few rows to decide."""


class ApproximationWarning(CompvalWarning):
    """A value is approximate (e.g. a quantile from a histogram)."""
