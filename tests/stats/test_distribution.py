from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from compval.errors import InvalidParameterError
from compval.stats import chi_square_counts, g_test_counts, jensen_shannon, psi


def random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    ref = rng.multinomial(int(rng.integers(50, 5000)), rng.dirichlet(np.ones(k)))
    cand = rng.multinomial(int(rng.integers(50, 5000)), rng.dirichlet(np.ones(k)))
    if seed % 3 == 0:
        ref[0] = cand[0] = 0  # a class neither model predicts
    return ref, cand


def by_hand(ref: np.ndarray, cand: np.ndarray, *, g: bool) -> tuple[float, float, int]:
    keep = (ref + cand) > 0
    observed = np.vstack([ref[keep], cand[keep]]).astype(float)
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    if g:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(observed > 0, observed * np.log(observed / expected), 0.0)
        statistic = 2 * terms.sum()
    else:
        statistic = ((observed - expected) ** 2 / expected).sum()
    return statistic, stats.chi2.sf(statistic, keep.sum() - 1), int(observed.sum())


@pytest.mark.parametrize("seed", range(12))
def test_chi_square_and_g_match_hand_computation_and_scipy(seed: int) -> None:
    ref, cand = random_pair(seed)
    keep = (ref + cand) > 0
    table = np.vstack([ref[keep], cand[keep]])
    for function, g, lambda_ in (
        (chi_square_counts, False, None),
        (g_test_counts, True, "log-likelihood"),
    ):
        result = function(ref, cand)
        statistic, p_value, n = by_hand(ref, cand, g=g)
        scipy_result = stats.chi2_contingency(table, correction=False, lambda_=lambda_)
        assert result.statistic == pytest.approx(statistic, rel=1e-9)
        assert result.statistic == pytest.approx(scipy_result.statistic, rel=1e-12)
        assert result.p_value == pytest.approx(p_value, rel=1e-7, abs=1e-300)
        assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-12, abs=1e-300)
        assert result.estimate == pytest.approx(math.sqrt(statistic / n), rel=1e-9)
        assert (result.n, result.kind, result.higher_is_worse) == (n, "p_value", False)


def test_chi_square_degenerate_tables() -> None:
    single = chi_square_counts([10, 0, 0], [4, 0, 0])
    assert (single.statistic, single.p_value, single.estimate) == (0.0, 1.0, 0.0)
    g = g_test_counts([10, 0], [4, 0])
    assert (g.method, g.p_value) == ("g_test", 1.0)
    opposite = chi_square_counts([100, 0], [0, 100])
    assert opposite.estimate == pytest.approx(1.0)
    assert opposite.p_value is not None and opposite.p_value < 1e-40


@pytest.mark.parametrize("seed", range(10))
def test_jensen_shannon_equals_scipy(seed: int) -> None:
    ref, cand = random_pair(seed)
    result = jensen_shannon(ref, cand)
    assert result.estimate == pytest.approx(distance.jensenshannon(ref, cand, base=2), rel=1e-9)
    assert 0.0 <= result.estimate <= 1.0
    assert (result.kind, result.higher_is_worse) == ("distance", True)


def test_jensen_shannon_bounds() -> None:
    assert jensen_shannon([3, 5, 7], [6, 10, 14]).estimate == 0.0
    assert jensen_shannon([1, 0], [0, 4]).estimate == pytest.approx(1.0)


def test_psi_matches_hand_computation() -> None:
    ref = np.array([120, 300, 0, 80])
    cand = np.array([100, 310, 5, 85])
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cand / cand.sum(), 1e-4)
    expected = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    result = psi(ref, cand)
    assert result.estimate == pytest.approx(expected, rel=1e-12)
    assert (result.kind, result.higher_is_worse, result.n) == ("distance", True, 1000)
    assert psi(ref, ref * 3).estimate == pytest.approx(0.0, abs=1e-15)
    assert psi(ref, cand, eps=1e-2).estimate < result.estimate


@pytest.mark.parametrize(
    ("function", "ref", "cand", "message"),
    [
        (
            chi_square_counts,
            [1, 2],
            [1, 2, 3],
            r"chi_square_counts: count vectors differ in length; got 2 and 3",
        ),
        (g_test_counts, [0, 0], [1, 2], r"g_test_counts: ref_counts has no counts; got total 0"),
        (psi, [1, 2], [1, -2], r"psi: cand_counts: negative count"),
        (jensen_shannon, [1, 2], [0, 0], r"jensen_shannon: cand_counts has no counts"),
    ],
)
def test_distribution_errors(
    function: object, ref: list[int], cand: list[int], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        function(ref, cand)  # type: ignore[operator]


def test_psi_eps_error() -> None:
    with pytest.raises(InvalidParameterError, match=r"psi: eps must be a float in \(0, 1\); got 0"):
        psi([1, 2], [2, 1], eps=0)
