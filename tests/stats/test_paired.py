from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from compval.errors import InvalidParameterError
from compval.stats import (
    StatResult,
    mcnemar_exact,
    paired_delta_sd,
    paired_proportion_delta_ci,
)

PAIRS = [(0, 0), (0, 1), (1, 0), (3, 3), (5, 17), (17, 5), (0, 40), (100, 101), (250, 190)]
PAIRS += [(b, c) for b, c in np.random.default_rng(0).integers(0, 2000, size=(40, 2))]


@pytest.mark.parametrize(("b", "c"), PAIRS)
def test_mcnemar_equals_scipy_binomtest_and_statsmodels(b: int, c: int) -> None:
    result = mcnemar_exact(int(b), int(c))
    expected = 1.0 if b + c == 0 else stats.binomtest(int(b), int(b + c), 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    table = [[10, b], [c, 10]]
    assert result.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-9)


def test_mcnemar_fields_and_estimate() -> None:
    with_n = mcnemar_exact(10, 4, n=200)
    assert with_n.estimate == pytest.approx(-6 / 200)
    assert (with_n.n, with_n.kind, with_n.higher_is_worse) == (200, "p_value", False)
    assert with_n.method == "mcnemar_exact" and with_n.statistic == 4.0 and with_n.ci is None
    discordant_only = mcnemar_exact(10, 4)
    assert discordant_only.estimate == pytest.approx(-6 / 14) and discordant_only.n == 14
    none = mcnemar_exact(0, 0)
    assert (none.p_value, none.estimate, none.n) == (1.0, 0.0, 0)
    with_ci = mcnemar_exact(10, 4, n=200, confidence=0.9)
    assert with_ci.ci == paired_proportion_delta_ci(10, 4, 200, confidence=0.9)
    assert with_ci.confidence == 0.9


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-1, 2), {}, r"mcnemar_exact: b: negative count; got -1"),
        ((1, 2.5), {}, r"mcnemar_exact: c: not an integer; got 2.5"),
        (
            (5, 6),
            {"n": 10},
            r"n is smaller than the discordant rows or zero; got n=10, b \+ c = 11",
        ),
        ((1, 2), {"confidence": 0.95}, r"confidence=0.95 needs the total row count; got n=None"),
        ((1, 2), {"n": 5, "confidence": 0.0}, r"confidence: out of range; got 0.0"),
    ],
)
def test_mcnemar_errors(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        mcnemar_exact(*args, **kwargs)  # type: ignore[arg-type]


def tango_reference(b: int, c: int, n: int, confidence: float) -> tuple[float, float]:
    """Tango's interval from first principles: numeric constrained MLE + root finding."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    m = n - b - c

    def score(delta: float) -> float:
        # Maximize b log(p01 - delta) + c log p01 + m log(1 - 2 p01 + delta) over p01, where
        # p01 = P(reference wrong, candidate right) and p10 = p01 - delta.
        low, high = max(0.0, delta), min(1.0, (1 + delta) / 2)

        def nll(p01: float) -> float:
            p10 = p01 - delta
            rest = 1 - p01 - p10
            return -sum(
                k * math.log(max(p, 1e-300)) for k, p in ((b, p10), (c, p01), (m, rest)) if k
            )

        fit = optimize.minimize_scalar(
            nll, bounds=(low, high), method="bounded", options={"xatol": 1e-13}
        )
        p01 = float(fit.x)
        p10 = p01 - delta
        variance = (p10 + p01 - delta**2) / n
        return (c / n - b / n - delta) / math.sqrt(variance)

    estimate = (c - b) / n
    lower = (
        -1.0
        if estimate == -1
        else optimize.brentq(lambda d: score(d) - z, -1 + 1e-9, estimate, xtol=1e-12)
    )
    upper = (
        1.0
        if estimate == 1
        else optimize.brentq(lambda d: score(d) + z, estimate, 1 - 1e-9, xtol=1e-12)
    )
    return lower, upper


@pytest.mark.parametrize(
    ("b", "c", "n", "confidence"),
    [
        (16, 6, 161, 0.95),
        (40, 20, 160, 0.95),
        (3, 0, 50, 0.9),
        (1, 7, 21, 0.99),
        (120, 90, 5000, 0.95),
    ],
)
def test_tango_interval_matches_first_principles(b: int, c: int, n: int, confidence: float) -> None:
    low, high = paired_proportion_delta_ci(b, c, n, confidence=confidence)
    ref_low, ref_high = tango_reference(b, c, n, confidence)
    assert low == pytest.approx(ref_low, abs=2e-6)
    assert high == pytest.approx(ref_high, abs=2e-6)
    assert low <= (c - b) / n <= high


def test_tango_interval_edge_cases() -> None:
    z = stats.norm.ppf(0.975)
    low, high = paired_proportion_delta_ci(0, 0, 100, confidence=0.95)
    assert high == pytest.approx(z**2 / (100 + z**2), rel=1e-9) and low == pytest.approx(-high)
    assert paired_proportion_delta_ci(0, 10, 10, confidence=0.95)[1] == 1.0
    assert paired_proportion_delta_ci(10, 0, 10, confidence=0.95)[0] == -1.0
    forward = paired_proportion_delta_ci(30, 12, 400, confidence=0.95)
    backward = paired_proportion_delta_ci(12, 30, 400, confidence=0.95)
    assert forward == pytest.approx((-backward[1], -backward[0]), abs=1e-12)
    narrow = paired_proportion_delta_ci(30, 12, 400, confidence=0.8)
    assert forward[0] < narrow[0] < narrow[1] < forward[1]


def test_tango_interval_errors() -> None:
    with pytest.raises(InvalidParameterError, match=r"got n=0, b \+ c = 0, expected n >= max"):
        paired_proportion_delta_ci(0, 0, 0, confidence=0.95)
    with pytest.raises(InvalidParameterError, match=r"confidence: out of range; got 95"):
        paired_proportion_delta_ci(1, 2, 10, confidence=95)


def test_paired_delta_sd_equals_std_of_row_differences() -> None:
    b, c, n = 37, 21, 500
    ref = np.r_[np.ones(b), np.zeros(c), np.ones(300), np.zeros(n - b - c - 300)]
    cand = np.r_[np.zeros(b), np.ones(c), np.ones(300), np.zeros(n - b - c - 300)]
    assert paired_delta_sd(b, c, n) == pytest.approx(np.std(cand - ref), rel=1e-12)
    assert paired_delta_sd(0, 0, 10) == 0.0
    with pytest.raises(InvalidParameterError, match=r"paired_delta_sd: n is smaller"):
        paired_delta_sd(5, 6, 3)


def test_stat_result_validation_and_dict() -> None:
    result = StatResult(method="x", estimate=0.5, ci=(0.1, 0.9), confidence=0.9, n=3)
    assert result.to_dict() == {
        "method": "x",
        "estimate": 0.5,
        "ci_low": 0.1,
        "ci_high": 0.9,
        "confidence": 0.9,
        "p_value": None,
        "n": 3,
        "kind": "effect",
        "higher_is_worse": None,
        "statistic": None,
    }
    assert result.headline == 0.5
    assert StatResult(method="t", estimate=0.1, p_value=0.2, n=1, kind="p_value").headline == 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "score"}, r"StatResult.kind: unknown kind; got 'score'"),
        ({"ci": (0.0, 1.0)}, r"interval and confidence must come together"),
        ({"ci": (0.0, 1.0), "confidence": 2.0}, r"StatResult.confidence: out of range; got 2.0"),
        ({"p_value": 1.5}, r"StatResult.p_value: out of range; got 1.5"),
        ({"n": -1}, r"StatResult.n: negative; got -1"),
    ],
)
def test_stat_result_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"method": "x", "estimate": 0.0, "n": 1}
    arguments.update(kwargs)
    with pytest.raises(InvalidParameterError, match=message):
        StatResult(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("b", "c", "n"), [(16, 6, 161), (3, 0, 50), (0, 4, 9), (0, 0, 10), (2, 9, 12), (120, 90, 5000)]
)
def test_one_tango_bound_matches_first_principles(b: int, c: int, n: int) -> None:
    # The slice search asks for upper ends alone (tango_intervals is both ends of this);
    # each end against the numeric constrained-MLE reference, zero counts included (every
    # row discordant one way, where the reference cannot go, is in the edge-case test above).
    from compval.stats._paired import tango_bound

    z = float(stats.norm.ppf(0.975))
    ref_low, ref_high = tango_reference(b, c, n, 0.95)
    args = (np.array([b]), np.array([c]), np.array([n]))
    assert tango_bound(*args, z=z, upper=False)[0] == pytest.approx(ref_low, abs=2e-6)
    assert tango_bound(*args, z=z, upper=True)[0] == pytest.approx(ref_high, abs=2e-6)
