"""The whole compval exception tree.

::

    CompvalError(Exception)                         base of every error a user can cause
    ├── InvalidParameterError(CompvalError, ValueError)   bad argument to a public API
    ├── UsageError(CompvalError)                    bad command-line arguments or files to write
    ├── SpecError(CompvalError, ValueError)
    │   ├── SpecParseError                          YAML/TOML syntax; carries file and line
    │   └── SpecValidationError                     carries the field path: "criteria[2].threshold"
    ├── AdapterError(CompvalError)
    │   ├── MissingDependencyError(AdapterError, ImportError)  names the extra to install
    │   ├── ModelLoadError                          missing, corrupt or refused model file
    │   │   └── PickleRefusedError(ModelLoadError, UsageError)  pickle not allowed: exit 4
    │   ├── InputMismatchError(AdapterError, ValueError)       name/dtype/shape vs the model
    │   ├── InferenceError                          the runtime raised while predicting
    │   └── EndpointError                           an inference server failed: names the URL
    ├── DataError(CompvalError)                     unreadable data, missing column, empty data
    ├── OutputError(CompvalError)                   a report or file cannot be written (disk full)
    ├── MetricError(CompvalError)
    │   ├── IncompatibleMergeError                  merging accumulators of different config
    │   └── EmptyAccumulatorError                   result() before any update
    └── ProfilingError(CompvalError)
    InternalError(Exception)                        a compval bug; deliberately not a CompvalError

    CompvalWarning(UserWarning)
    └── ApproximationWarning

Every exception maps to one process exit code in one table, ``EXIT_CODES`` (most specific class
first); ``exit_code_for`` reads it and ``compval.cli`` is the only caller that exits with it:
usage and spec errors give 4 (a pickle file refused for want of ``allow_pickle`` too: the
fix is a decision in the command or the spec, not in the file), errors of the run's inputs or
outputs (models, data, profiling,
writing reports) give 5, and anything else, compval bugs included, gives 3.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "EXIT_CODES",
    "AdapterError",
    "ApproximationWarning",
    "CompvalError",
    "CompvalWarning",
    "DataError",
    "EmptyAccumulatorError",
    "EndpointError",
    "ExitCode",
    "IncompatibleMergeError",
    "InferenceError",
    "InputMismatchError",
    "InternalError",
    "InvalidParameterError",
    "MetricError",
    "MissingDependencyError",
    "ModelLoadError",
    "OutputError",
    "PickleRefusedError",
    "ProfilingError",
    "SpecError",
    "SpecParseError",
    "SpecValidationError",
    "UsageError",
    "exit_code_for",
]


class CompvalError(Exception):
    """Base class of every error caused by the user's input or environment."""


class InvalidParameterError(CompvalError, ValueError):
    """A public function or constructor got an invalid argument."""


class UsageError(CompvalError):
    """Bad command-line arguments, or a file the command was asked to create already exists."""


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


class PickleRefusedError(ModelLoadError, UsageError):
    """A pickle/joblib model file was not loaded because ``allow_pickle`` was not given.

    A ModelLoadError (it is about a model file) that exits with the usage code 4: the file may
    be fine, and the fix is a decision to pass ``--allow-pickle`` or ``allow_pickle: true``.
    """


class InputMismatchError(AdapterError, ValueError):
    """The data does not match the model's declared inputs (name, dtype or shape)."""


class InferenceError(AdapterError):
    """The runtime raised while running a batch."""


class EndpointError(AdapterError):
    """An inference server (a model given by URL) could not be used.

    Connection refused, a timeout, an HTTP error (the message carries the server's own error
    text), a malformed answer, or an answer whose rows do not match the rows sent. ``url`` is
    the model's endpoint; ``status`` the HTTP status when the server answered with one.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class DataError(CompvalError):
    """The dataset cannot be read or does not have the expected columns or rows."""


class OutputError(CompvalError):
    """A report or another output file cannot be written (missing folder, full disk, ...)."""


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


class ApproximationWarning(CompvalWarning):
    """A value is approximate (e.g. a quantile from a histogram)."""


class ExitCode(enum.IntEnum):
    """Process exit codes (the CI contract)."""

    OK = 0  # every blocking check passed
    CHECKS_FAILED = 1  # a blocking check failed or was inconclusive: the gate is closed
    INTERRUPTED = 2  # Ctrl-C
    INTERNAL_ERROR = 3  # a compval bug (the traceback is shown)
    USAGE_ERROR = 4  # bad flags or spec
    RUN_ERROR = 5  # the run could not be done: a model, the data or the output failed


#: Exception class -> exit code; ``exit_code_for`` takes the first class the error is an
#: instance of, so subclasses come before their bases. Classes not listed give 3.
EXIT_CODES: Mapping[type[BaseException], ExitCode] = MappingProxyType(
    {
        PickleRefusedError: ExitCode.USAGE_ERROR,
        UsageError: ExitCode.USAGE_ERROR,
        SpecParseError: ExitCode.USAGE_ERROR,
        SpecValidationError: ExitCode.USAGE_ERROR,
        SpecError: ExitCode.USAGE_ERROR,
        InvalidParameterError: ExitCode.USAGE_ERROR,
        MissingDependencyError: ExitCode.RUN_ERROR,
        ModelLoadError: ExitCode.RUN_ERROR,
        InputMismatchError: ExitCode.RUN_ERROR,
        InferenceError: ExitCode.RUN_ERROR,
        EndpointError: ExitCode.RUN_ERROR,
        AdapterError: ExitCode.RUN_ERROR,
        DataError: ExitCode.RUN_ERROR,
        ProfilingError: ExitCode.RUN_ERROR,
        OutputError: ExitCode.RUN_ERROR,
        IncompatibleMergeError: ExitCode.INTERNAL_ERROR,
        EmptyAccumulatorError: ExitCode.INTERNAL_ERROR,
        MetricError: ExitCode.INTERNAL_ERROR,
        InternalError: ExitCode.INTERNAL_ERROR,
        KeyboardInterrupt: ExitCode.INTERRUPTED,
    }
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of ``exc``: the first matching class in ``EXIT_CODES``, else 3.

    Example:
        >>> int(exit_code_for(DataError("no rows")))
        5
    """
    for cls, code in EXIT_CODES.items():
        if isinstance(exc, cls):
            return code
    return ExitCode.INTERNAL_ERROR
