"""Paired comparison of two classifiers on the same rows: McNemar and Tango.

Notation (used everywhere in compval): on ``n`` paired rows,

* ``b`` = rows the **reference** got right and the candidate got wrong (correct -> wrong flips),
* ``c`` = rows the **candidate** got right and the reference got wrong (wrong -> correct flips),

so the accuracy delta is ``candidate - reference = (c - b) / n``. Only the discordant rows
carry information about the difference; the rows both models got right (or wrong) enter
through ``n`` alone.

Methods.

* :func:`mcnemar_exact`: the exact (conditional) McNemar test, a two-sided binomial test of
  ``b`` successes in ``b + c`` trials with p = 1/2. Equal to
  ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``; computed as ``min(1, 2 * P(X <= min(b, c)))``,
  which is what binomtest gives for a symmetric null, so that it vectorizes over thousands of
  slices.
* :func:`paired_proportion_delta_ci`: Tango's (1998) asymptotic score interval for the
  difference of paired proportions. It depends only on ``(b, c, n)``, never collapses to zero
  width (``b = c = 0`` gives ``±z²/(n + z²)``), stays inside [-1, 1], and has close to nominal
  coverage down to small n (Fagerland, Lydersen & Laake 2014 recommend it). It is closed form up
  to a 1-D root search, done here by vectorized bisection, so discovered slices get intervals
  without resampling.
* :func:`paired_delta_sd`: the per-row standard deviation of the paired difference of
  correctness, used for sample-size planning.

Assumptions: rows are independent pairs; the interval is asymptotic (a score interval, not an
exact one), the p-value is exact given ``b + c``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from compval._lazy import DeferredModule
from compval.errors import InvalidParameterError
from compval.stats._checks import check_confidence, check_count
from compval.stats._result import StatResult

# scipy.special takes a quarter of a second to import (scipy.stats nearly a second, so it is
# not used on the path of a run): loaded on first use, not with compval.
special: Any = DeferredModule("scipy.special")

__all__ = [
    "P_VALUE_FLOOR",
    "mcnemar_exact",
    "mcnemar_pvalues",
    "paired_delta_sd",
    "paired_proportion_delta_ci",
    "stuart_maxwell",
    "clopper_pearson_intervals",
    "tango_bound",
    "tango_intervals",
]

_BISECTION_STEPS = 64


def mcnemar_exact(
    b: int, c: int, *, n: int | None = None, confidence: float | None = None
) -> StatResult:
    """Exact McNemar test of "both models are equally accurate" on paired rows.

    Args:
        b: Rows the reference got right and the candidate got wrong.
        c: Rows the candidate got right and the reference got wrong.
        n: Total paired rows (>= b + c). When given, ``estimate`` is the accuracy delta
            ``(c - b) / n``; when omitted, ``n`` is taken as ``b + c`` and ``estimate`` is the
            net share of discordant rows ``(c - b) / (b + c)`` (0.0 when there are none).
        confidence: When given together with ``n``, attach Tango's interval for the accuracy
            delta at this level (see :func:`paired_proportion_delta_ci`).

    Returns:
        StatResult with ``method="mcnemar_exact"``, ``kind="p_value"``,
        ``higher_is_worse=False`` (a larger p-value is less evidence of a difference), the
        two-sided exact p-value (1.0 when ``b + c == 0``), ``estimate = (c - b) / n`` (positive:
        the candidate is more accurate) and ``statistic = min(b, c)``.

    Raises:
        InvalidParameterError: A count is negative or not an integer, ``n < b + c``, ``n`` is
            0, or ``confidence`` is given without ``n``.

    Example:
        >>> result = mcnemar_exact(10, 2, n=100)
        >>> round(result.p_value, 4), result.estimate
        (0.0386, -0.08)
    """
    b_int = check_count(b, subject="mcnemar_exact: b")
    c_int = check_count(c, subject="mcnemar_exact: c")
    discordant = b_int + c_int
    if n is None:
        if confidence is not None:
            raise InvalidParameterError(
                f"mcnemar_exact: confidence={confidence!r} needs the total row count; got "
                "n=None, expected n >= b + c. Pass n to get an interval for the accuracy delta."
            )
        total = discordant
    else:
        total = _check_total(n, b_int, c_int, subject="mcnemar_exact")
    p_value = (
        1.0 if discordant == 0 else float(mcnemar_pvalues(np.array([b_int]), np.array([c_int]))[0])
    )
    estimate = (c_int - b_int) / total if total else 0.0
    ci = None
    if confidence is not None:
        level = check_confidence(confidence, subject="mcnemar_exact: confidence")
        ci = _tango_scalar(b_int, c_int, total, level)
    return StatResult(
        method="mcnemar_exact",
        estimate=estimate,
        ci=ci,
        confidence=None if confidence is None else float(confidence),
        p_value=p_value,
        n=total,
        kind="p_value",
        higher_is_worse=False,
        statistic=float(min(b_int, c_int)),
    )


def paired_proportion_delta_ci(b: int, c: int, n: int, *, confidence: float) -> tuple[float, float]:
    """Tango's score interval for the paired accuracy delta ``(c - b) / n``.

    The interval is the set of deltas d that Tango's score test does not reject:
    ``|c - b - n d| / sqrt(n (2 q(d) + d (1 - d))) <= z``, where ``q(d)`` is the maximum
    likelihood estimate of the reference-wrong/candidate-right probability under the
    constraint that the true delta is d, and ``z`` the two-sided normal quantile.

    Args:
        b: Rows the reference got right and the candidate got wrong.
        c: Rows the candidate got right and the reference got wrong.
        n: Total paired rows (>= b + c, >= 1).
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(low, high)`` within [-1, 1], containing ``(c - b) / n``.

    Raises:
        InvalidParameterError: Bad counts (negative, ``n < b + c``, ``n == 0``) or a
            confidence outside (0, 1).

    Example:
        >>> low, high = paired_proportion_delta_ci(0, 0, 100, confidence=0.95)
        >>> round(low, 4), round(high, 4)
        (-0.037, 0.037)
    """
    b_int = check_count(b, subject="paired_proportion_delta_ci: b")
    c_int = check_count(c, subject="paired_proportion_delta_ci: c")
    total = _check_total(n, b_int, c_int, subject="paired_proportion_delta_ci")
    level = check_confidence(confidence, subject="paired_proportion_delta_ci: confidence")
    return _tango_scalar(b_int, c_int, total, level)


def paired_delta_sd(b: int, c: int, n: int) -> float:
    """Per-row standard deviation of the paired difference of correctness.

    Each row contributes ``d = cand_correct - ref_correct`` in {-1, 0, 1}; with
    ``p10 = b / n`` and ``p01 = c / n``, ``Var(d) = p10 + p01 - (p01 - p10)**2``. The standard
    error of the accuracy delta on n rows is this over ``sqrt(n)``.

    Args:
        b: Rows the reference got right and the candidate got wrong.
        c: Rows the candidate got right and the reference got wrong.
        n: Total paired rows (>= b + c, >= 1).

    Returns:
        The standard deviation, a float in [0, 1].

    Raises:
        InvalidParameterError: Bad counts.

    Example:
        >>> round(paired_delta_sd(5, 3, 100), 6)
        0.282135
    """
    b_int = check_count(b, subject="paired_delta_sd: b")
    c_int = check_count(c, subject="paired_delta_sd: c")
    total = _check_total(n, b_int, c_int, subject="paired_delta_sd")
    p10 = b_int / total
    p01 = c_int / total
    return math.sqrt(max(p10 + p01 - (p10 - p01) ** 2, 0.0))


#: The smallest positive double: p-values that underflow are reported as this floor, never 0
#: (and never 1, which an underflow once became through ``p or 1.0``).
P_VALUE_FLOOR = float(np.nextafter(0.0, 1.0))


def _log_binom_half_cdf(
    k: npt.NDArray[np.int64], n: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """``log P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, elementwise, without underflow.

    ``scipy.special.bdtr`` is exact down to about 1e-300; below that (a far tail, k much
    smaller than n / 2) the log of the sum of the tail's terms is taken instead. There the
    terms shrink geometrically away from k (ratio at most k / (n - k)), so the last few
    thousand hold all of the sum to double precision.
    """
    with np.errstate(divide="ignore"):
        log_cdf = np.log(special.bdtr(k, n, 0.5))
    out = np.asarray(log_cdf, dtype=np.float64).reshape(-1)
    kk, nn = np.broadcast_arrays(k, n)
    kk, nn = kk.reshape(-1), nn.reshape(-1)
    for i in np.flatnonzero(~(out > _LOG_BDTR_EXACT)):
        j = np.arange(max(0, int(kk[i]) - _TAIL_TERMS), int(kk[i]) + 1, dtype=np.float64)
        n_i = float(nn[i])
        terms = special.gammaln(n_i + 1) - special.gammaln(j + 1) - special.gammaln(n_i - j + 1)
        top = float(terms.max())
        out[i] = top + math.log(float(np.exp(terms - top).sum())) - n_i * math.log(2.0)
    shaped: npt.NDArray[np.float64] = out.reshape(np.shape(log_cdf))
    return shaped


#: Below this log-probability, bdtr's result is a subnormal double or 0: recomputed exactly.
_LOG_BDTR_EXACT = -690.0
_TAIL_TERMS = 5_000


def mcnemar_pvalues(b: npt.ArrayLike, c: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Vectorized exact McNemar p-values (private helper; counts trusted to be valid).

    The binomial tail is computed in log space, so 1,200 discordant rows all in one direction
    give ~1e-361 -> the floor ``P_VALUE_FLOOR`` (about 4.9e-324), not 0.
    """
    b_arr = np.asarray(b, dtype=np.int64)
    c_arr = np.asarray(c, dtype=np.int64)
    log_tail = _log_binom_half_cdf(np.minimum(b_arr, c_arr), b_arr + c_arr)
    p = np.exp(np.minimum(0.0, math.log(2.0) + log_tail))
    return np.asarray(np.maximum(p, P_VALUE_FLOOR), dtype=np.float64)


def stuart_maxwell(table: npt.ArrayLike) -> StatResult:
    """Stuart-Maxwell test of marginal homogeneity of a paired k x k table.

    The table counts rows by (reference's predicted class, candidate's predicted class). The
    test asks whether the two models predict each class equally often, using the pairing:
    only rows where the models disagree carry information, so a directed shift of a few
    tenths of a percent is detected where an unpaired chi-square of the two predicted-class
    distributions (which treats them as independent samples) sees nothing.

    Statistic: ``d' S^-1 d`` with ``d`` the row-minus-column marginal differences and ``S``
    their covariance under homogeneity, on the classes where the models ever disagree (one
    dropped, as the differences sum to 0); chi-square with ``rank(S)`` degrees of freedom.

    Args:
        table: Square table of non-negative counts.

    Returns:
        StatResult with ``method="stuart_maxwell"``, ``kind="p_value"``, the p-value (1.0
        when the models never disagree; floored at ``P_VALUE_FLOOR``), ``statistic`` the
        chi-square value and ``estimate`` the share of rows where the models disagree.

    Raises:
        InvalidParameterError: ``table`` is not square, or has negative or non-integer counts.

    Example:
        >>> result = stuart_maxwell([[50, 10, 0], [2, 30, 0], [0, 0, 8]])
        >>> round(result.statistic, 4), round(result.p_value, 5)
        (5.3333, 0.02092)
    """
    counts = np.asarray(table)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 1:
        raise InvalidParameterError(
            f"stuart_maxwell: table must be square; got shape {counts.shape}, expected (k, k)."
        )
    if (
        not np.issubdtype(counts.dtype, np.number)
        or (counts < 0).any()
        or not np.all(np.mod(counts, 1) == 0)
    ):
        raise InvalidParameterError(
            "stuart_maxwell: table must hold non-negative integer counts; got "
            f"{counts.dtype} values with minimum {counts.min()!r}."
        )
    n = float(counts.sum())
    off = counts.astype(np.float64) - np.diag(np.diag(counts)).astype(np.float64)
    active = np.flatnonzero(off.sum(axis=0) + off.sum(axis=1) > 0)
    disagree = float(off.sum()) / n if n else 0.0
    if active.size < 2:
        return StatResult(
            method="stuart_maxwell", estimate=disagree, ci=None, confidence=None, p_value=1.0,
            n=int(n), kind="p_value", higher_is_worse=False, statistic=0.0,
        )  # fmt: skip
    sub = off[np.ix_(active, active)]
    d = (sub.sum(axis=1) - sub.sum(axis=0))[:-1]
    cov = -(sub + sub.T)
    np.fill_diagonal(cov, sub.sum(axis=1) + sub.sum(axis=0))
    cov = cov[:-1, :-1]
    rank = int(np.linalg.matrix_rank(cov))
    statistic = float(d @ np.linalg.pinv(cov) @ d)
    p = max(float(special.chdtrc(rank, statistic)), P_VALUE_FLOOR) if rank else 1.0
    return StatResult(
        method="stuart_maxwell", estimate=disagree, ci=None, confidence=None, p_value=p,
        n=int(n), kind="p_value", higher_is_worse=False, statistic=statistic,
    )  # fmt: skip


def clopper_pearson_intervals(
    successes: npt.ArrayLike, n: npt.ArrayLike, *, confidence: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Vectorized Clopper-Pearson (exact binomial) intervals for ``successes / n``.

    Coverage is at least ``confidence`` for every n and true proportion, at zero and full
    counts included (0 of 30 gives [0, 0.116] at 95%); Wilson's score interval dips to 0.92
    near 0 and 1, which a gate cannot afford. ``n == 0`` gives NaN ends (no evidence).
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    alpha = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(k > 0, special.betaincinv(k, m - k + 1, alpha / 2), 0.0)
        high = np.where(k < m, special.betaincinv(k + 1, m - k, 1 - alpha / 2), 1.0)
    empty = m <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def tango_intervals(
    b: npt.ArrayLike, c: npt.ArrayLike, n: npt.ArrayLike, *, z: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Vectorized Tango score intervals for ``(c - b) / n`` (private helper; inputs trusted).

    Bisection on the monotone score statistic; 64 halvings of [-1, 1] reach float precision.
    """
    return tango_bound(b, c, n, z=z, upper=False), tango_bound(b, c, n, z=z, upper=True)


def tango_bound(
    b: npt.ArrayLike, c: npt.ArrayLike, n: npt.ArrayLike, *, z: float, upper: bool
) -> npt.NDArray[np.float64]:
    """One end of :func:`tango_intervals` (the same values), for callers that need only one.

    The weak-slice search ranks thousands of slices by their upper ends: the lower ends were
    half of its bisection work.
    """
    bf = np.asarray(b, dtype=np.float64)
    cf = np.asarray(c, dtype=np.float64)
    nf = np.asarray(n, dtype=np.float64)
    estimate = (cf - bf) / nf
    if upper:
        lo, hi, target = estimate.copy(), np.full_like(estimate, 1.0), -z
    else:
        lo, hi, target = np.full_like(estimate, -1.0), estimate.copy(), z
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = _tango_score(bf, cf, nf, mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    bound: npt.NDArray[np.float64] = 0.5 * (lo + hi)
    return bound


def _tango_score(
    b: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    n: npt.NDArray[np.float64],
    delta: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    # Score statistic for H0: (c - b)/n = delta, with q = the constrained MLE of
    # P(reference wrong, candidate right) solving 2n q^2 + B q + C = 0.
    a_coef = 2.0 * n
    b_coef = -(b + c) + (2.0 * n - c + b) * delta
    c_coef = -b * delta * (1.0 - delta)
    disc = np.sqrt(np.maximum(b_coef * b_coef - 4.0 * a_coef * c_coef, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # The two algebraically equal roots avoid cancellation on either sign of B.
        q = np.where(
            b_coef > 0.0, -2.0 * c_coef / (disc + b_coef), (disc - b_coef) / (2.0 * a_coef)
        )
        variance = np.maximum(n * (2.0 * q + delta * (1.0 - delta)), 0.0)
        score = (c - b - n * delta) / np.sqrt(variance)
    # 0/0 happens only at delta == estimate, where the score is 0 by continuity.
    return np.where(np.isnan(score), 0.0, score)


def _tango_scalar(b: int, c: int, n: int, confidence: float) -> tuple[float, float]:
    z = float(special.ndtri(0.5 + confidence / 2.0))
    low, high = tango_intervals(np.array([b]), np.array([c]), np.array([n]), z=z)
    return (float(low[0]), float(high[0]))


def _check_total(n: object, b: int, c: int, *, subject: str) -> int:
    total = check_count(n, subject=f"{subject}: n")
    if total < b + c or total == 0:
        raise InvalidParameterError(
            f"{subject}: n is smaller than the discordant rows or zero; got n={total}, "
            f"b + c = {b + c}, expected n >= max(b + c, 1). n counts all paired rows."
        )
    return total
