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

import importlib
from typing import TYPE_CHECKING, Any

from compval._version import __version__
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

if TYPE_CHECKING:
    from compval.adapters import ModelAdapter, as_adapter
    from compval.data import Dataset, as_dataset
    from compval.engine import RunOptions, run_validation
    from compval.results import CheckResult, MetricValue, Report
    from compval.spec import AcceptanceSpec, load_spec

# Imported on first use (PEP 562): `import compval` (and so the `compval` command, whose entry
# point lives in compval.cli) stays light, and a Ctrl-C while the engine imports happens
# inside the CLI's handler instead of before it.
_LAZY = {
    "ModelAdapter": "compval.adapters",
    "as_adapter": "compval.adapters",
    "Dataset": "compval.data",
    "as_dataset": "compval.data",
    "RunOptions": "compval.engine",
    "run_validation": "compval.engine",
    "CheckResult": "compval.results",
    "MetricValue": "compval.results",
    "Report": "compval.results",
    "AcceptanceSpec": "compval.spec",
    "load_spec": "compval.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'compval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
