"""Performance profiling: latency, paired speedup, concurrent load, size, memory, targets.

Entry points:

* ``resolve_settings(PerformanceSpec(...)) -> ProfileSettings``: merge a spec's
  ``performance:`` section (``compval.spec.PerformanceSpec``) over its deployment target;
* ``profile_models(reference, candidates, sample, settings=...) -> ProfileResult``;
  ``ProfileResult.to_dict()`` is the report's ``profile`` section and
  ``ProfileResult.metric_estimates(candidate)`` feeds the checks;
* ``synthetic_inputs(adapter, rows=..., seed=...)`` when no data is given;
* ``model_stats(adapter)``, ``measure_latency``, ``run_load``, ``measure_peak_memory``,
  ``load_operator_set`` (``ort_mobile``: ``OrtCpuKernels``; a config file: ``OperatorSet``)
  and ``mobile_ep_support`` (NNAPI/CoreML fallback) for standalone use.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.profiling._inputs import synthetic_inputs
from compval.profiling._load import LoadStats, run_load
from compval.profiling._memory import MemoryResult, measure_peak_memory
from compval.profiling._model_stats import ModelStats, model_stats
from compval.profiling._operators import (
    REASONS,
    ExecutionProviderSupport,
    NodeFallback,
    NodeUse,
    OperatorSet,
    OperatorSupport,
    OpUse,
)
from compval.profiling._profile import profile_models
from compval.profiling._result import SPEEDUP_CI_METHOD, ModelProfile, ProfileResult
from compval.profiling._settings import ProfileSettings, resolve_settings
from compval.profiling._stats import (
    LatencyStats,
    SpeedupResult,
    paired_speedup,
    summarize_latencies,
)
from compval.profiling._timing import measure_latency, time_interleaved
from compval.profiling.targets import (
    BUILTIN_OPERATOR_SETS,
    MOBILE_EPS,
    OrtCpuKernels,
    load_operator_set,
    mobile_ep_support,
)

__all__ = [
    "BUILTIN_OPERATOR_SETS",
    "MOBILE_EPS",
    "REASONS",
    "ExecutionProviderSupport",
    "LatencyStats",
    "LoadStats",
    "MemoryResult",
    "ModelProfile",
    "ModelStats",
    "NodeFallback",
    "NodeUse",
    "OpUse",
    "OperatorSet",
    "OperatorSupport",
    "OrtCpuKernels",
    "ProfileResult",
    "ProfileSettings",
    "SPEEDUP_CI_METHOD",
    "SpeedupResult",
    "load_operator_set",
    "measure_latency",
    "measure_peak_memory",
    "mobile_ep_support",
    "model_stats",
    "paired_speedup",
    "profile_models",
    "resolve_settings",
    "run_load",
    "summarize_latencies",
    "synthetic_inputs",
    "time_interleaved",
]

name_public_functions(__name__, globals(), __all__)
