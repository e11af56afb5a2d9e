"""Stuart-Maxwell marginal homogeneity and McNemar without underflow."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import SquareTable

from compval.errors import InvalidParameterError
from compval.stats import P_VALUE_FLOOR, chi_square_counts, mcnemar_exact, stuart_maxwell


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_matches_statsmodels_on_full_rank_tables(seed: int, k: int) -> None:
    table = np.random.default_rng(seed).integers(1, 40, size=(k, k))
    ours = stuart_maxwell(table)
    ref = SquareTable(table, shift_zeros=False).homogeneity(method="stuart_maxwell")
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_classes_without_disagreement_drop_out_of_the_test() -> None:
    # Class 2 is never involved in a disagreement: the test is that of the 2x2 sub-table
    # with one degree of freedom (statsmodels keeps k - 1 = 2 and loses power).
    table = np.array([[50, 10, 0], [2, 30, 0], [0, 0, 8]])
    ours = stuart_maxwell(table)
    sub = SquareTable(table[:2, :2], shift_zeros=False).homogeneity()
    assert ours.statistic == pytest.approx(sub.statistic)
    assert ours.p_value == pytest.approx(sub.pvalue)
    # On a 2x2 table Stuart-Maxwell is McNemar's chi-square without continuity correction.
    assert ours.statistic == pytest.approx((10 - 2) ** 2 / (10 + 2))


def test_no_disagreement_gives_p_one() -> None:
    assert stuart_maxwell(np.diag([5, 7, 9])).p_value == 1.0
    assert stuart_maxwell(np.zeros((3, 3), dtype=int)).p_value == 1.0


@pytest.mark.parametrize("bad", [np.ones((2, 3)), np.array([[1, -1], [0, 2]]), [[0.5, 1], [1, 1]]])
def test_bad_tables_are_refused(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="stuart_maxwell: table must"):
        stuart_maxwell(bad)  # type: ignore[arg-type]


def _paired_shift(n: int, shift: float, rng: np.random.Generator) -> np.ndarray:
    """Paired predictions over 3 classes; a share ``shift`` of class-0 rows moves to class 1."""
    ref = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    cand = ref.copy()
    noise = rng.random(n) < 0.02  # redrawn from the same marginal: no shift
    cand[noise] = rng.choice(3, size=int(noise.sum()), p=[0.5, 0.3, 0.2])
    moved = (ref == 0) & (rng.random(n) < shift / 0.5)
    cand[moved] = 1
    table = np.zeros((3, 3), dtype=np.int64)
    np.add.at(table, (ref, cand), 1)
    return table


def test_detects_a_directed_shift_the_unpaired_test_misses() -> None:
    rng = np.random.default_rng(11)
    sm_hits = chi_hits = 0
    for _ in range(200):
        table = _paired_shift(10_000, 0.004, rng)
        sm_hits += stuart_maxwell(table).p_value <= 0.05  # type: ignore[operator]
        chi = chi_square_counts(table.sum(axis=1), table.sum(axis=0)).p_value
        chi_hits += chi <= 0.05  # type: ignore[operator]
    assert sm_hits / 200 >= 0.9
    assert chi_hits / 200 <= 0.2


def test_false_positive_rate_is_nominal_without_a_shift() -> None:
    rng = np.random.default_rng(12)
    hits = sum(
        stuart_maxwell(_paired_shift(5_000, 0.0, rng)).p_value <= 0.05  # type: ignore[operator]
        for _ in range(400)
    )
    # 400 draws at 0.05: mean 20, sd 4.4.
    assert 8 <= hits <= 34


def test_mcnemar_never_underflows_to_zero_or_one() -> None:
    result = mcnemar_exact(1200, 0, n=20_000)
    assert result.p_value is not None
    assert 0 < result.p_value < 1e-100
    assert result.p_value == P_VALUE_FLOOR
    assert mcnemar_exact(0, 0, n=50).p_value == 1.0
    # Away from underflow it is the exact binomial test.
    assert mcnemar_exact(10, 2, n=100).p_value == pytest.approx(0.03857421875)
