"""From estimates (what accumulators, the slice search and the profiler produce) to report rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from compval.metrics import MetricEstimate
from compval.results import CheckResult, MetricValue, SliceResult

if TYPE_CHECKING:
    from compval.profiling import ProfileResult

__all__ = ["metric_value", "name_unsupported_ops", "slice_estimates"]


def metric_value(candidate: str, e: MetricEstimate) -> MetricValue:
    """The report row of one estimate."""
    return MetricValue(
        candidate=candidate,
        metric=e.metric,
        segment=e.segment,
        reference_value=e.reference,
        candidate_value=e.candidate,
        delta=e.delta,
        n=e.n,
        higher_is_better=e.higher_is_better,
        ci_low=e.ci[0] if e.ci else None,
        ci_high=e.ci[1] if e.ci else None,
        confidence=e.confidence if e.ci else None,
        ci_method=e.ci_method if e.ci else None,
    )


def slice_estimates(slices: Sequence[SliceResult]) -> list[MetricEstimate]:
    """Discovered slices as estimates, so criteria with ``segment: discovered`` can gate them."""
    out: list[MetricEstimate] = []
    for sl in slices:
        seg = f"slice:{sl.description}"
        ref, cand = sl.reference_accuracy, sl.candidate_accuracy
        out.append(
            MetricEstimate(
                metric="accuracy_score",
                segment=seg,
                higher_is_better=True,
                paired=False,
                n=sl.n,
                reference=ref,
                candidate=cand,
                delta=cand - ref,
                ratio=cand / ref if ref else None,
                ci=sl.ci,
                confidence=sl.confidence,
                p_adjusted=sl.p_value_adjusted,
                ci_method="tango_score",
            )
        )
        out.append(
            MetricEstimate(
                metric="flip_correct_to_wrong_rate",
                segment=seg,
                higher_is_better=False,
                paired=True,
                n=sl.n,
                reference=None,
                candidate=sl.flip_correct_to_wrong_rate,
                delta=None,
                p_adjusted=sl.p_value_adjusted,
            )
        )
    return out


def name_unsupported_ops(
    checks: Sequence[CheckResult], profile: ProfileResult
) -> list[CheckResult]:
    """Name the operators in failing ``unsupported_op_count`` checks.

    The count alone is not something a user can act on.
    """
    out = []
    for c in checks:
        model = profile.models.get(c.candidate)
        ops = None if model is None else model.unsupported_ops
        if c.metric == "unsupported_op_count" and c.verdict != "pass" and ops:
            c = dataclasses.replace(c, message=f"{c.message} Unsupported: {', '.join(ops)}.")
        out.append(c)
    return out
