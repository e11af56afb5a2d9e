"""compval: validate compressed models against the models they came from.

The public API::

    from compval import run_validation, load_spec
    report = run_validation("compval.yaml")          # or an AcceptanceSpec
    report.passed, report.to_dict()

Everything else lives in subpackages, layered so that imports only go down (see
docs/architecture.md): ``compval.errors`` and ``compval.types`` (ground); ``compval.spec``
and ``compval.results`` (schema); ``compval.stats``; ``compval.adapters`` and
``compval.data``; ``compval.metrics``; ``compval.tasks``, ``compval.checks`` and
``compval.profiling``; ``compval.engine`` and ``compval.reports``; ``compval.cli``.
"""

from __future__ import annotations

from compval._version import __version__
from compval.adapters import ModelAdapter, as_adapter
from compval.data import Dataset, as_dataset
from compval.engine import RunOptions, run_validation
from compval.errors import (
    AdapterError,
    CompvalError,
    DataError,
    ExitCode,
    InvalidParameterError,
    OutputError,
    ProfilingError,
    SpecError,
    UsageError,
)
from compval.results import CheckResult, MetricValue, Report
from compval.spec import AcceptanceSpec, load_spec

__all__ = [
    "AcceptanceSpec",
    "AdapterError",
    "CheckResult",
    "CompvalError",
    "DataError",
    "Dataset",
    "ExitCode",
    "InvalidParameterError",
    "MetricValue",
    "ModelAdapter",
    "OutputError",
    "ProfilingError",
    "Report",
    "RunOptions",
    "SpecError",
    "UsageError",
    "__version__",
    "as_adapter",
    "as_dataset",
    "load_spec",
    "run_validation",
]
