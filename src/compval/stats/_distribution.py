"""Distribution shift between reference and candidate outputs, from counts.

All functions take two count vectors over the same categories (predicted classes, or the bins
of a :class:`~compval.stats.FixedHistogram`), reference first, and return a
:class:`~compval.stats.StatResult` whose ``kind`` and ``higher_is_worse`` state the direction:

================  ==========  ===============  ==============================================
function          kind        higher_is_worse  estimate
================  ==========  ===============  ==============================================
chi_square_counts p_value     False            Cramér's V, ``sqrt(chi2 / n)`` in [0, 1]
g_test_counts     p_value     False            V from G, ``sqrt(G / n)``
psi               distance    True             population stability index, >= 0
jensen_shannon    distance    True             Jensen-Shannon distance, base 2, in [0, 1]
================  ==========  ===============  ==============================================

Methods and assumptions.

* The chi-square and G tests are tests of homogeneity on the 2 x K table (reference row,
  candidate row); categories empty in both rows are dropped (they carry no information and
  would make expected counts zero). No Yates correction: it only applies at K = 2 and is
  known to be conservative. Both are asymptotic: they assume independent rows and expected
  counts of about 5 or more in most cells. With paired outputs (both models on the same rows)
  the two rows of the table are not independent samples; as the two models' predictions on the
  same rows are positively correlated, the p-value is then conservative for a shift in the
  marginal distribution. For paired *accuracy* use McNemar instead. With large n
  every tiny shift is "significant": read the effect size (Cramér's V) next to the p-value.
* PSI is ``sum((q - p) * ln(q / p))`` over categories, with both proportions floored at
  ``eps`` so that empty categories stay finite (floored proportions are not renormalized).
  Common reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.
* The Jensen-Shannon distance is the square root of the JS divergence in bits; it is
  symmetric, bounded by 1 and a metric.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from compval._lazy import DeferredModule
from compval.errors import InvalidParameterError
from compval.stats._checks import check_counts_array
from compval.stats._result import StatResult

# scipy takes about a second to import: loaded on first use, not with compval.
spspecial: Any = DeferredModule("scipy.special")
sps: Any = DeferredModule("scipy.stats")

__all__ = ["chi_square_counts", "g_test_counts", "jensen_shannon", "psi"]


def chi_square_counts(ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike) -> StatResult:
    """Pearson chi-square test that reference and candidate share one category distribution.

    Args:
        ref_counts: Counts per category for the reference (e.g. predicted-class counts).
        cand_counts: Counts per category for the candidate, same categories and order.

    Returns:
        StatResult with ``method="chi_square"``, ``kind="p_value"``,
        ``higher_is_worse=False``, ``p_value``, ``statistic`` (chi-square), ``estimate`` =
        Cramér's V and ``n`` = total count of both rows. With fewer than two non-empty
        categories the distributions are identical: statistic 0, p-value 1.

    Raises:
        InvalidParameterError: Counts of different lengths, negative or non-integer counts, or
            a side with no counts at all.

    Example:
        >>> result = chi_square_counts([50, 30, 20], [45, 35, 20])
        >>> round(result.p_value, 4)
        0.7233
    """
    return _homogeneity(ref_counts, cand_counts, name="chi_square_counts", lambda_=None)


def g_test_counts(ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike) -> StatResult:
    """Log-likelihood-ratio (G) test that reference and candidate share one distribution.

    Same table and assumptions as :func:`chi_square_counts`; the statistic is
    ``G = 2 * sum(O * ln(O / E))`` (scipy's ``chi2_contingency(lambda_="log-likelihood")``).

    Args:
        ref_counts: Counts per category for the reference.
        cand_counts: Counts per category for the candidate, same categories and order.

    Returns:
        StatResult with ``method="g_test"``, ``kind="p_value"``, ``higher_is_worse=False``,
        ``statistic`` = G and ``estimate = sqrt(G / n)`` (Cramér's V computed from G).

    Raises:
        InvalidParameterError: As for :func:`chi_square_counts`.
    """
    return _homogeneity(ref_counts, cand_counts, name="g_test_counts", lambda_="log-likelihood")


def psi(ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike, *, eps: float = 1e-4) -> StatResult:
    """Population stability index between two binned distributions.

    Args:
        ref_counts: Counts per bin (or category) for the reference.
        cand_counts: Counts per bin for the candidate, same bins and order.
        eps: Floor applied to each proportion so empty bins stay finite (default 1e-4).

    Returns:
        StatResult with ``method="psi"``, ``kind="distance"``, ``higher_is_worse=True``,
        ``estimate`` = PSI >= 0 and ``n`` = total count of both sides.

    Raises:
        InvalidParameterError: Bad counts, a side with no counts, or ``eps`` outside (0, 1).

    Example:
        >>> round(psi([50, 30, 20], [40, 30, 30]).estimate, 4)
        0.0629
    """
    if not (isinstance(eps, int | float) and 0.0 < eps < 1.0):
        raise InvalidParameterError(
            f"psi: eps must be a float in (0, 1); got {eps!r}, expected e.g. 1e-4."
        )
    ref, cand = _pair(ref_counts, cand_counts, name="psi")
    p = np.maximum(ref / ref.sum(), eps)
    q = np.maximum(cand / cand.sum(), eps)
    value = float(np.sum((q - p) * np.log(q / p)))
    return StatResult(
        method="psi",
        estimate=value,
        n=int(ref.sum() + cand.sum()),
        kind="distance",
        higher_is_worse=True,
    )


def jensen_shannon(ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike) -> StatResult:
    """Jensen-Shannon distance (base 2) between two count distributions.

    ``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2`` and logarithms base 2;
    equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``, but never NaN for
    identical inputs (rounding can make the divergence a tiny negative number).

    Args:
        ref_counts: Counts per category for the reference.
        cand_counts: Counts per category for the candidate, same categories and order.

    Returns:
        StatResult with ``method="jensen_shannon"``, ``kind="distance"``,
        ``higher_is_worse=True`` and ``estimate`` in [0, 1].

    Raises:
        InvalidParameterError: Bad counts or a side with no counts.

    Example:
        >>> jensen_shannon([1, 0], [0, 1]).estimate
        1.0
    """
    ref, cand = _pair(ref_counts, cand_counts, name="jensen_shannon")
    p = ref / ref.sum()
    q = cand / cand.sum()
    m = 0.5 * (p + q)
    divergence = 0.5 * (spspecial.rel_entr(p, m).sum() + spspecial.rel_entr(q, m).sum())
    value = min(math.sqrt(max(float(divergence), 0.0) / math.log(2.0)), 1.0)
    return StatResult(
        method="jensen_shannon",
        estimate=value,
        n=int(ref.sum() + cand.sum()),
        kind="distance",
        higher_is_worse=True,
    )


def _homogeneity(
    ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike, *, name: str, lambda_: str | None
) -> StatResult:
    ref, cand = _pair(ref_counts, cand_counts, name=name)
    table = np.vstack([ref, cand])
    table = table[:, table.sum(axis=0) > 0]
    n = int(table.sum())
    method = "chi_square" if lambda_ is None else "g_test"
    if table.shape[1] < 2:
        return StatResult(
            method=method,
            estimate=0.0,
            p_value=1.0,
            n=n,
            kind="p_value",
            higher_is_worse=False,
            statistic=0.0,
        )
    result = sps.chi2_contingency(table, correction=False, lambda_=lambda_)
    statistic = max(float(result.statistic), 0.0)
    return StatResult(
        method=method,
        estimate=min(math.sqrt(statistic / n), 1.0),
        p_value=float(result.pvalue),
        n=n,
        kind="p_value",
        higher_is_worse=False,
        statistic=statistic,
    )


def _pair(
    ref_counts: npt.ArrayLike, cand_counts: npt.ArrayLike, *, name: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ref = check_counts_array(ref_counts, subject=f"{name}: ref_counts")
    cand = check_counts_array(cand_counts, subject=f"{name}: cand_counts")
    if ref.shape != cand.shape:
        raise InvalidParameterError(
            f"{name}: count vectors differ in length; got {ref.size} and {cand.size}, expected "
            "the same categories in the same order for reference and candidate."
        )
    for side, counts in (("ref_counts", ref), ("cand_counts", cand)):
        if counts.sum() == 0:
            raise InvalidParameterError(
                f"{name}: {side} has no counts; got total 0, expected at least one row. "
                "A distribution cannot be compared with an empty one."
            )
    return ref.astype(np.float64), cand.astype(np.float64)
