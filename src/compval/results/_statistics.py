"""The statistics part of a report: intervals, decisions and the weak slices found.

Typed records only; the math lives in ``compval.stats``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "POINT_ONLY_NOTE",
    "CalibrationBins",
    "DecisionInfo",
    "FlipMatrix",
    "Reliability",
    "ResamplingInfo",
    "SliceResult",
    "StatisticsSection",
    "interval_method_name",
]

#: What every rendering says when intervals were off.
POINT_ONLY_NOTE = (
    "Intervals are off (replicates: 0): every verdict is a point comparison without "
    "statistical guarantee."
)

_METHOD_NAMES = {
    "tango_score": "Tango score interval",
    "clopper_pearson": "Clopper-Pearson exact interval",
    "poisson_table_bootstrap": "Poisson-table bootstrap percentile interval",
    "bayesian_table_bootstrap": "Bayesian table bootstrap interval",
    "block_bootstrap": "block bootstrap percentile interval",
    "block_bootstrap_bca": "block bootstrap BCa interval",
    "paired_t_log_ratio": "paired t interval of the log ratio",
}


def interval_method_name(method: str | None) -> str:
    """How reports and messages name an interval method (``ci_method``)."""
    if method is None:
        return "interval"
    return _METHOD_NAMES.get(method, f"{method.replace('_', ' ')} interval")


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceResult:
    """One discovered slice and the evidence that the candidate is worse (or better) on it.

    Attributes:
        description: Readable condition, e.g. ``"px_12 in [3.0, 7.0) & ink = heavy"``.
        features: The feature names the condition uses (one or two).
        n: Rows in the slice.
        reference_accuracy: Reference accuracy on the slice.
        candidate_accuracy: Candidate accuracy on the slice.
        delta: ``candidate_accuracy - reference_accuracy``.
        ci: Tango score interval of ``delta`` at ``confidence`` (per slice, not simultaneous).
        confidence: The interval's confidence level.
        p_value: Exact McNemar p-value on the slice.
        p_value_adjusted: Holm-adjusted p-value across every slice searched.
        flip_correct_to_wrong_rate: Share of the slice's rows the reference got right and the
            candidate got wrong.
        flip_wrong_to_correct_rate: Share the candidate got right and the reference got wrong.
        slices_searched: How many slices were tested (the Holm family size).
        dataset: With several datasets: the dataset searched (its checks and metrics are
            scoped ``dataset=<name>,slice:...``); None for a single dataset.
    """

    description: str
    features: tuple[str, ...]
    n: int
    reference_accuracy: float
    candidate_accuracy: float
    delta: float
    ci: tuple[float, float]
    confidence: float
    p_value: float
    p_value_adjusted: float
    flip_correct_to_wrong_rate: float
    flip_wrong_to_correct_rate: float
    slices_searched: int
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; tuples become lists."""
        out = asdict(self)
        out["features"] = list(self.features)
        out["ci"] = list(self.ci)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FlipMatrix:
    """Where one candidate's predicted classes moved from the reference's, over all rows.

    Attributes:
        classes: Class names, indexed like the counts; a last ``"(no valid prediction)"``
            entry when a model gave non-finite outputs on some rows.
        agreed: Per class, the rows both models predicted as that class (the diagonal).
        moved: ``(reference class, candidate class, rows)`` for every pair of different
            classes that occurs, most rows first (the off-diagonal cells, kept sparse so that a
            model with many classes stays small).
    """

    classes: tuple[str, ...]
    agreed: tuple[int, ...]
    moved: tuple[tuple[int, int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; tuples become lists."""
        return {
            "classes": list(self.classes),
            "agreed": list(self.agreed),
            "moved": [list(cell) for cell in self.moved],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationBins:
    """One model's equal-width bins of its top-class probability (bin k is [k/B, (k+1)/B)).

    Attributes:
        rows: Rows per bin.
        confidence: Mean top-class probability per bin (None for an empty bin).
        accuracy: Share of the bin's rows whose top class is the label (None when empty).
    """

    rows: tuple[int, ...]
    confidence: tuple[float | None, ...]
    accuracy: tuple[float | None, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reliability:
    """Reliability-diagram bins of the reference and one candidate, on the same rows.

    The bins are the ones ``expected_calibration_error`` is computed from.
    """

    reference: CalibrationBins
    candidate: CalibrationBins


@dataclass(frozen=True, slots=True, kw_only=True)
class ResamplingInfo:
    """How the intervals were made."""

    method: str
    replicates: int
    confidence: float
    seed: int
    interval: str = "percentile"


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionInfo:
    """How verdicts were decided from the intervals."""

    rule: str
    min_rows: int
    correction: str
    inconclusive: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatisticsSection:
    """The report's ``statistics`` section.

    Attributes:
        resampling: The bootstrap settings; None when intervals were off (``replicates: 0``).
        decision: The decision rule and its settings.
        discovered: Candidate -> the weakest slices found for it.
        flips: Candidate -> where its predicted classes moved from the reference's
            (classification).
        reliability: Candidate -> reliability-diagram bins of both models (classification with
            probabilities and labels).
    """

    resampling: ResamplingInfo | None
    decision: DecisionInfo
    discovered: Mapping[str, tuple[SliceResult, ...]] = field(default_factory=dict)
    flips: Mapping[str, FlipMatrix] = field(default_factory=dict)
    reliability: Mapping[str, Reliability] = field(default_factory=dict)

    @property
    def point_only(self) -> bool:
        """True when intervals were off: verdicts are point comparisons."""
        return self.resampling is None

    def to_dict(self) -> dict[str, Any]:
        """The report.json ``statistics`` object."""
        return {
            "resampling": None if self.resampling is None else asdict(self.resampling),
            "decision": asdict(self.decision),
            "discovered": {
                name: [s.to_dict() for s in slices] for name, slices in self.discovered.items()
            },
            "flips": {name: m.to_dict() for name, m in self.flips.items()},
            "reliability": {name: asdict(r) for name, r in self.reliability.items()},
        }
