"""compval: validate compressed models against the models they came from.

The public API::

    from compval import run_validation, load_spec
    report = run_validation("compval.yaml")          # or an AcceptanceSpec
    report.passed, report.to_dict()

Everything else lives in subpackages: ``compval.adapters`` (model runtimes),
``compval.data`` (datasets), ``compval.metrics`` (mergeable accumulators),
``compval.stats`` (resampling and tests), ``compval.profiling`` (performance),
``compval.reports`` (renderers) and ``compval.errors`` (the exception tree).
"""

from __future__ import annotations

__version__ = "0.1.0"

from compval.adapters import ModelAdapter, as_adapter
from compval.data import Dataset, as_dataset
from compval.reports import CheckResult, MetricValue, Report
from compval.runner import RunOptions, run_validation
from compval.spec import AcceptanceSpec, load_spec

__all__ = [
    "AcceptanceSpec",
    "CheckResult",
    "Dataset",
    "MetricValue",
    "ModelAdapter",
    "Report",
    "RunOptions",
    "__version__",
    "as_adapter",
    "as_dataset",
    "load_spec",
    "run_validation",
]
