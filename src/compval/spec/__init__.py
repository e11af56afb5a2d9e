"""Acceptance spec: models, data, criteria, statistics, performance; one loader for YAML and TOML.

The schema layer: it imports nothing of compval but ``compval.errors``. Everything that needs
to know what a spec may say (names of performance metrics, deployment targets) lives here.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.spec._criterion import CriterionSpec
from compval.spec._load import (
    LoadedSpec,
    load_spec,
    parse_spec,
    spec_from_mapping,
    validation_error,
)
from compval.spec._model import (
    AcceptanceSpec,
    DataRef,
    ModelRef,
    StatisticsSpec,
    TaskSpec,
)
from compval.spec._numerics import MAX_NUMERICS_SAMPLE, NUMERICS_METRIC_DIRECTIONS, NumericsSpec
from compval.spec._perf_metrics import (
    PERF_METRIC_DIRECTIONS,
    PERF_METRIC_SELECTORS,
    parse_perf_metric,
)
from compval.spec._performance import BUILTIN_TARGETS, DEFAULT_TARGET, PerformanceSpec, TargetSpec
from compval.spec._robustness import (
    ROBUSTNESS_METRIC_DIRECTIONS,
    PerturbationSpec,
    RobustnessSpec,
    SearchSpec,
)
from compval.spec._starter import STARTER_SPEC
from compval.spec._tracking import TrackingSpec
from compval.spec._types import MAX_BATCH_SIZE, MAX_CLIENTS, echo

__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_TARGET",
    "MAX_BATCH_SIZE",
    "MAX_CLIENTS",
    "MAX_NUMERICS_SAMPLE",
    "NUMERICS_METRIC_DIRECTIONS",
    "PERF_METRIC_DIRECTIONS",
    "PERF_METRIC_SELECTORS",
    "ROBUSTNESS_METRIC_DIRECTIONS",
    "STARTER_SPEC",
    "AcceptanceSpec",
    "CriterionSpec",
    "DataRef",
    "LoadedSpec",
    "ModelRef",
    "NumericsSpec",
    "PerformanceSpec",
    "PerturbationSpec",
    "RobustnessSpec",
    "SearchSpec",
    "StatisticsSpec",
    "TargetSpec",
    "TaskSpec",
    "TrackingSpec",
    "echo",
    "load_spec",
    "parse_spec",
    "parse_perf_metric",
    "spec_from_mapping",
    "validation_error",
]

name_public_functions(__name__, globals(), __all__)
