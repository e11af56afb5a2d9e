"""Decisions from evidence: multiple-testing adjustment, non-inferiority verdicts, sample size.

Methods.

* :func:`adjust_pvalues`: Holm's step-down adjustment (controls the family-wise error rate
  under any dependence) and Benjamini-Hochberg (controls the false discovery rate under
  independence or positive dependence). Same arithmetic as
  ``statsmodels.stats.multitest.multipletests(method="holm" | "fdr_bh")``, so the numbers agree
  exactly; NaN p-values (tests that could not be run) pass through and do not count in m.
* :func:`noninferiority_verdict`: the one decision rule of every check, a criterion
  ``observed <op> threshold`` decided on the interval. It **passes** when the whole interval
  satisfies it (the worst end: the lower end for ``>=``/``>``, the upper end for
  ``<=``/``<``): with a two-sided interval at confidence c this is a one-sided test at level
  (1 - c)/2, so a candidate whose true value sits exactly at the threshold passes at most
  (1 - c)/2 of the time. It **fails** when the whole interval violates it ("shown worse", the
  mirror test at the same level, so a candidate exactly at the threshold fails at most
  (1 - c)/2 of the time too). Otherwise it is **inconclusive**: the data cannot tell.
* :func:`rows_needed_noninferiority`: a normal-approximation estimate of how many rows would
  make an inconclusive verdict pass, if the current estimate is the truth.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from compval._lazy import DeferredModule
from compval.errors import InvalidParameterError
from compval.stats._checks import check_confidence

# scipy.special takes a quarter of a second to import (scipy.stats nearly a second, so it is
# not used on the path of a run): loaded on first use, not with compval.
special: Any = DeferredModule("scipy.special")

__all__ = [
    "Verdict",
    "adjust_pvalues",
    "noninferiority_verdict",
    "rows_needed_noninferiority",
]

Verdict = Literal["pass", "fail", "inconclusive"]
AdjustMethod = Literal["holm", "bh", "none"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def adjust_pvalues(p: npt.ArrayLike, *, method: AdjustMethod) -> npt.NDArray[np.float64]:
    """Adjust p-values for multiple testing.

    Args:
        p: 1-D p-values in [0, 1]; NaN entries are kept as NaN and excluded from the count m.
        method: ``"holm"`` (family-wise error rate), ``"bh"`` (Benjamini-Hochberg false
            discovery rate) or ``"none"`` (returned unchanged, as a copy).

    Returns:
        float64 array of adjusted p-values, same shape and order as ``p``, capped at 1.

    Raises:
        InvalidParameterError: ``p`` is not 1-D, has values outside [0, 1], or ``method`` is
            unknown.

    Example:
        >>> adjust_pvalues([0.01, 0.04, float("nan"), 0.03], method="holm").tolist()
        [0.03, 0.06, nan, 0.06]
    """
    values = np.array(p, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidParameterError(
            f"adjust_pvalues: p must be 1-D; got shape {values.shape}, expected (m,)."
        )
    if method not in ("holm", "bh", "none"):
        raise InvalidParameterError(
            f"adjust_pvalues: unknown method; got {method!r}, expected one of 'holm', 'bh', 'none'."
        )
    present = ~np.isnan(values)
    finite = values[present]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise InvalidParameterError(
            f"adjust_pvalues: p-values out of range; got min {float(finite.min())!r} and max "
            f"{float(finite.max())!r}, expected values in [0, 1] (or NaN for tests not run)."
        )
    if method == "none" or finite.size == 0:
        return values
    order = np.argsort(finite, kind="stable")
    ranked = finite[order]
    m = ranked.size
    if method == "holm":
        adjusted = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
    else:
        adjusted = np.minimum.accumulate((ranked / (np.arange(1, m + 1) / float(m)))[::-1])[::-1]
    adjusted = np.minimum(adjusted, 1.0)
    restored = np.empty_like(adjusted)
    restored[order] = adjusted
    values[present] = restored
    return values


def noninferiority_verdict(
    estimate: float, ci: tuple[float, float], *, op: str, threshold: float
) -> Verdict:
    """Decide ``observed <op> threshold`` on a confidence interval.

    Args:
        estimate: Point estimate of the observed quantity (e.g. the accuracy delta).
        ci: ``(low, high)`` confidence interval of the estimate.
        op: One of ``">="``, ``">"``, ``"<="``, ``"<"``.
        threshold: The criterion's threshold.

    Returns:
        ``"pass"`` when the interval's worst end satisfies the criterion (``ci[0]`` for
        ``>=``/``>``, ``ci[1]`` for ``<=``/``<``); ``"fail"`` when its best end violates it
        (the whole interval is on the wrong side); ``"inconclusive"`` otherwise, including
        when the estimate is NaN (no evidence either way). A NaN interval end never decides.

    Raises:
        InvalidParameterError: Unknown ``op``, a NaN threshold, or ``ci`` with low > high.

    Example:
        >>> noninferiority_verdict(-0.004, (-0.012, 0.003), op=">=", threshold=-0.01)
        'inconclusive'
        >>> noninferiority_verdict(-0.02, (-0.03, -0.012), op=">=", threshold=-0.01)
        'fail'
    """
    compare = _check_op(op, subject="noninferiority_verdict")
    limit = float(threshold)
    if math.isnan(limit):
        raise InvalidParameterError(
            "noninferiority_verdict: threshold is NaN; got nan, expected a number."
        )
    low, high = (float(ci[0]), float(ci[1]))
    if low > high:
        raise InvalidParameterError(
            f"noninferiority_verdict: interval ends reversed; got ci=({low!r}, {high!r}), "
            "expected low <= high."
        )
    point = float(estimate)
    if math.isnan(point):
        return "inconclusive"
    worst, best = (low, high) if op in (">=", ">") else (high, low)
    if compare(worst, limit):
        return "pass"
    if not math.isnan(best) and not compare(best, limit):
        return "fail"
    return "inconclusive"


def rows_needed_noninferiority(
    *,
    estimate: float,
    threshold: float,
    op: str,
    per_row_sd: float,
    confidence: float,
    power: float = 0.8,
) -> int | None:
    """Rows needed for the interval's worst end to clear the threshold, if the estimate holds.

    Normal approximation: with gap ``g = |estimate - threshold|`` on the passing side, the
    standard error ``sd / sqrt(n)``, the interval's half-width quantile
    ``z_conf = Phi^-1((1 + confidence) / 2)`` (one side of the two-sided interval) and
    ``z_power = Phi^-1(power)``, the worst end clears the threshold with probability ``power``
    when ``n >= ((z_conf + z_power) * sd / g) ** 2``.

    Args:
        estimate: Current point estimate (e.g. accuracy delta).
        threshold: The criterion's threshold.
        op: One of ``">="``, ``">"``, ``"<="``, ``"<"``.
        per_row_sd: Per-row standard deviation of the quantity (for a paired accuracy delta,
            :func:`~compval.stats.paired_delta_sd`).
        confidence: The interval's two-sided confidence level.
        power: Wanted probability of passing (default 0.8).

    Returns:
        Total rows needed (not additional rows; subtract the rows already seen), at least 1;
        None when the estimate is NaN, on the threshold, or on the failing side: more data
        cannot be expected to make the criterion pass.

    Raises:
        InvalidParameterError: Unknown ``op``, a negative or non-finite ``per_row_sd``, a
            non-finite threshold, or ``confidence``/``power`` outside (0, 1).

    Example:
        >>> rows_needed_noninferiority(estimate=-0.002, threshold=-0.01, op=">=",
        ...                            per_row_sd=0.2, confidence=0.95)
        4906
    """
    compare = _check_op(op, subject="rows_needed_noninferiority")
    level = check_confidence(confidence, subject="rows_needed_noninferiority: confidence")
    wanted = check_confidence(power, subject="rows_needed_noninferiority: power")
    sd = float(per_row_sd)
    if not math.isfinite(sd) or sd < 0.0:
        raise InvalidParameterError(
            f"rows_needed_noninferiority: per_row_sd must be finite and >= 0; got "
            f"{per_row_sd!r}, expected a standard deviation."
        )
    limit = float(threshold)
    if not math.isfinite(limit):
        raise InvalidParameterError(
            f"rows_needed_noninferiority: threshold must be finite; got {threshold!r}, "
            "expected a number."
        )
    point = float(estimate)
    if math.isnan(point) or point == limit or not compare(point, limit):
        return None
    gap = abs(point - limit)
    if sd == 0.0:
        return 1
    z_sum = float(special.ndtri(0.5 + level / 2.0) + special.ndtri(wanted))
    return max(1, math.ceil((z_sum * sd / gap) ** 2))


def _check_op(op: str, *, subject: str) -> Callable[[float, float], bool]:
    try:
        return _OPS[op]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"{subject}: unknown op; got {op!r}, expected one of '>=', '>', '<=', '<'. "
            "Equality criteria cannot be decided on an interval."
        ) from None
