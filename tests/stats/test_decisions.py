from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from compval.errors import InvalidParameterError
from compval.stats import adjust_pvalues, noninferiority_verdict, rows_needed_noninferiority


def random_pvalues(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 200))
    p = rng.uniform(size=m) ** rng.uniform(0.2, 3)
    if seed % 2:
        p = np.round(p, 2)  # many ties
    p[rng.uniform(size=m) < 0.05] = 0.0
    p[rng.uniform(size=m) < 0.05] = 1.0
    return p


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize(("method", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_equals_statsmodels(seed: int, method: str, sm_method: str) -> None:
    p = random_pvalues(seed)
    expected = multipletests(p, method=sm_method)[1]
    np.testing.assert_array_equal(adjust_pvalues(p, method=method), expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_passes_nan_through_and_excludes_it_from_m(
    method: str, sm_method: str
) -> None:
    p = random_pvalues(7)
    with_nan = p.copy()
    holes = np.random.default_rng(1).uniform(size=p.size) < 0.2
    with_nan[holes] = np.nan
    got = adjust_pvalues(with_nan, method=method)  # type: ignore[arg-type]
    assert np.all(np.isnan(got[holes]))
    np.testing.assert_array_equal(got[~holes], multipletests(p[~holes], method=sm_method)[1])
    assert np.all(np.isnan(adjust_pvalues([np.nan, np.nan], method=method)))  # type: ignore[arg-type]


def test_adjust_pvalues_none_and_empty() -> None:
    p = np.array([0.2, 0.01])
    out = adjust_pvalues(p, method="none")
    np.testing.assert_array_equal(out, p)
    out[0] = 0.5
    assert p[0] == 0.2  # a copy, not the caller's array
    assert adjust_pvalues([], method="holm").shape == (0,)


@pytest.mark.parametrize(
    ("p", "method", "message"),
    [
        ([[0.1]], "holm", r"adjust_pvalues: p must be 1-D; got shape \(1, 1\)"),
        ([0.1, 1.2], "holm", r"p-values out of range; got min 0.1 and max 1.2"),
        ([0.1], "bonferroni", r"unknown method; got 'bonferroni', expected one of 'holm'"),
    ],
)
def test_adjust_pvalues_errors(p: object, method: str, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        adjust_pvalues(p, method=method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("estimate", "ci", "op", "threshold", "verdict"),
    [
        (-0.002, (-0.008, 0.004), ">=", -0.01, "pass"),
        (-0.002, (-0.010, 0.004), ">=", -0.01, "pass"),
        (-0.002, (-0.010, 0.004), ">", -0.01, "inconclusive"),
        (-0.004, (-0.012, 0.003), ">=", -0.01, "inconclusive"),
        # The point estimate violates, but the interval reaches the passing side: not shown.
        (-0.011, (-0.020, -0.002), ">=", -0.01, "inconclusive"),
        (-0.010, (-0.020, -0.002), ">", -0.01, "inconclusive"),
        (-0.015, (-0.020, -0.011), ">=", -0.01, "fail"),
        (-0.015, (-0.020, -0.010), ">=", -0.01, "inconclusive"),
        (-0.015, (-0.020, -0.010), ">", -0.01, "fail"),
        (0.004, (0.001, 0.007), "<=", 0.01, "pass"),
        (0.004, (0.001, 0.012), "<=", 0.01, "inconclusive"),
        (0.012, (0.001, 0.020), "<=", 0.01, "inconclusive"),
        (0.015, (0.011, 0.020), "<=", 0.01, "fail"),
        (0.004, (0.001, 0.010), "<", 0.01, "inconclusive"),
        (0.004, (0.001, 0.009), "<", 0.01, "pass"),
        (float("nan"), (0.0, 0.1), ">=", 0.0, "inconclusive"),
        (0.05, (float("nan"), float("nan")), ">=", 0.0, "inconclusive"),
        (-0.05, (float("nan"), float("nan")), ">=", 0.0, "inconclusive"),
    ],
)
def test_noninferiority_verdict(
    estimate: float, ci: tuple[float, float], op: str, threshold: float, verdict: str
) -> None:
    assert noninferiority_verdict(estimate, ci, op=op, threshold=threshold) == verdict


@pytest.mark.parametrize(
    ("ci", "op", "threshold", "message"),
    [
        ((0.0, 1.0), "==", 0.5, r"unknown op; got '==', expected one of '>=', '>', '<=', '<'"),
        ((1.0, 0.0), ">=", 0.5, r"interval ends reversed; got ci=\(1.0, 0.0\)"),
        ((0.0, 1.0), ">=", float("nan"), r"threshold is NaN"),
    ],
)
def test_noninferiority_verdict_errors(
    ci: tuple[float, float], op: str, threshold: float, message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        noninferiority_verdict(0.5, ci, op=op, threshold=threshold)


def pass_probability(n: int, estimate: float, threshold: float, sd: float, conf: float) -> float:
    """P(estimate_hat - z * sd / sqrt(n) >= threshold) with estimate_hat ~ N(estimate, sd^2/n)."""
    z = stats.norm.ppf(0.5 + conf / 2)
    se = sd / math.sqrt(n)
    return float(stats.norm.sf(threshold + z * se, loc=estimate, scale=se))


@pytest.mark.parametrize(
    ("estimate", "threshold", "sd", "confidence", "power"),
    [(-0.002, -0.01, 0.2, 0.95, 0.8), (0.0, -0.005, 0.15, 0.9, 0.9), (0.97, 0.95, 0.17, 0.95, 0.5)],
)
def test_rows_needed_reaches_the_requested_power(
    estimate: float, threshold: float, sd: float, confidence: float, power: float
) -> None:
    n = rows_needed_noninferiority(
        estimate=estimate,
        threshold=threshold,
        op=">=",
        per_row_sd=sd,
        confidence=confidence,
        power=power,
    )
    assert n is not None
    assert pass_probability(n, estimate, threshold, sd, confidence) >= power - 1e-9
    assert pass_probability(n - 1, estimate, threshold, sd, confidence) < power
    mirrored = rows_needed_noninferiority(
        estimate=-estimate,
        threshold=-threshold,
        op="<=",
        per_row_sd=sd,
        confidence=confidence,
        power=power,
    )
    assert mirrored == n


def test_rows_needed_none_and_trivial_cases() -> None:
    common = {"per_row_sd": 0.2, "confidence": 0.95}
    assert rows_needed_noninferiority(estimate=-0.02, threshold=-0.01, op=">=", **common) is None
    assert rows_needed_noninferiority(estimate=-0.01, threshold=-0.01, op=">=", **common) is None
    assert rows_needed_noninferiority(estimate=0.02, threshold=0.01, op="<", **common) is None
    assert rows_needed_noninferiority(estimate=math.nan, threshold=0.0, op=">", **common) is None
    assert (
        rows_needed_noninferiority(
            estimate=0.0, threshold=-0.01, op=">=", per_row_sd=0.0, confidence=0.95
        )
        == 1
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "=="}, r"rows_needed_noninferiority: unknown op; got '=='"),
        ({"per_row_sd": -1.0}, r"per_row_sd must be finite and >= 0; got -1.0"),
        ({"threshold": math.inf}, r"threshold must be finite; got inf"),
        ({"power": 1.0}, r"power: out of range; got 1.0"),
        ({"confidence": 0}, r"confidence: out of range; got 0"),
    ],
)
def test_rows_needed_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "estimate": 0.0,
        "threshold": -0.01,
        "op": ">=",
        "per_row_sd": 0.2,
        "confidence": 0.95,
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidParameterError, match=message):
        rows_needed_noninferiority(**arguments)  # type: ignore[arg-type]
