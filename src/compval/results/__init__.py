"""Typed result objects: what a run found, before any rendering.

The schema layer for output, as ``compval.spec`` is for input: the engine fills these objects,
``compval.reports`` renders them and nothing here computes. ``Report.to_dict()`` is the
report.json contract (schema_version 1).
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.results._numerics import (
    BatchConsistency,
    CandidateNumerics,
    FeatureRangeFinding,
    InputRangeBin,
    LayerError,
    LowPrecisionTensor,
    NumericsSection,
    SaturatedNode,
    UnmatchedTensor,
)
from compval.results._profile import (
    LatencyStats,
    LoadStats,
    ModelProfile,
    ProfileSection,
    SpeedupResult,
)
from compval.results._report import (
    SCHEMA_VERSION,
    CheckResult,
    MetricValue,
    Report,
    RunInfo,
    Verdict,
)
from compval.results._robustness import (
    FoundCase,
    PerturbationInfo,
    RobustnessSection,
    SearchResult,
    SearchSettings,
)
from compval.results._statistics import (
    POINT_ONLY_NOTE,
    CalibrationBins,
    DecisionInfo,
    FlipMatrix,
    Reliability,
    ResamplingInfo,
    SliceResult,
    StatisticsSection,
    interval_method_name,
)

__all__ = [
    "POINT_ONLY_NOTE",
    "SCHEMA_VERSION",
    "BatchConsistency",
    "CandidateNumerics",
    "LayerError",
    "LowPrecisionTensor",
    "NumericsSection",
    "SaturatedNode",
    "UnmatchedTensor",
    "CalibrationBins",
    "CheckResult",
    "DecisionInfo",
    "FlipMatrix",
    "FoundCase",
    "PerturbationInfo",
    "RobustnessSection",
    "SearchResult",
    "SearchSettings",
    "FeatureRangeFinding",
    "InputRangeBin",
    "LatencyStats",
    "LoadStats",
    "MetricValue",
    "ModelProfile",
    "ProfileSection",
    "Reliability",
    "Report",
    "ResamplingInfo",
    "RunInfo",
    "SliceResult",
    "SpeedupResult",
    "StatisticsSection",
    "Verdict",
    "interval_method_name",
]

# Functions name the package; the dataclasses keep their defining module (compval._public).
name_public_functions(__name__, globals(), __all__)
