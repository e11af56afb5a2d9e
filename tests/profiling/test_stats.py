from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from compval.errors import InvalidParameterError
from compval.profiling import paired_speedup, summarize_latencies


def test_summary_matches_statistics_module() -> None:
    rng = np.random.default_rng(3)
    samples = [int(v) for v in rng.integers(100_000, 9_000_000, size=257)]
    ms = [v / 1e6 for v in samples]
    result = summarize_latencies(samples, batch_size=8)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")  # cuts[k-1] = k-th percentile
    assert result.p50_ms == pytest.approx(statistics.median(ms), rel=1e-12)
    assert result.p90_ms == pytest.approx(cuts[89], rel=1e-12)
    assert result.p95_ms == pytest.approx(cuts[94], rel=1e-12)
    assert result.p99_ms == pytest.approx(cuts[98], rel=1e-12)
    assert result.mean_ms == pytest.approx(statistics.fmean(ms), rel=1e-12)
    assert result.std_ms == pytest.approx(statistics.stdev(ms), rel=1e-12)
    assert result.cv == pytest.approx(statistics.stdev(ms) / statistics.fmean(ms), rel=1e-12)
    assert result.throughput_sps == pytest.approx(8 / (statistics.fmean(ms) / 1000), rel=1e-12)
    assert result.iterations == 257
    assert result.batch_size == 8


def test_single_sample_has_zero_spread() -> None:
    result = summarize_latencies([2_500_000], batch_size=1)
    assert (result.p50_ms, result.p99_ms, result.std_ms, result.cv) == (2.5, 2.5, 0.0, 0.0)
    assert result.throughput_sps == pytest.approx(400.0)


@pytest.mark.parametrize(
    ("samples", "batch", "match"),
    [
        ([], 1, "needs at least one sample"),
        ([1, 2], 0, "batch_size=0"),
        ([5, -1], 1, "durations must be >= 0"),
    ],
)
def test_summary_rejects_bad_input(samples: list[int], batch: int, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        summarize_latencies(samples, batch_size=batch)


def test_exact_two_x_gives_degenerate_interval_at_two() -> None:
    result = paired_speedup([2.0] * 10, [1.0] * 10, candidate="int8", batch_size=4)
    assert result.ratio == pytest.approx(2.0)
    assert result.ci_low == pytest.approx(2.0)
    assert result.ci_high == pytest.approx(2.0)
    assert (result.candidate, result.batch_size, result.rounds, result.confidence) == (
        "int8",
        4,
        10,
        0.95,
    )


def test_interval_matches_scipy_t_interval_on_log_ratios() -> None:
    rng = np.random.default_rng(11)
    ref = 3.0 * np.exp(rng.normal(0, 0.1, size=12))
    cand = 1.5 * np.exp(rng.normal(0, 0.1, size=12))
    d = np.log(ref / cand)
    low, high = stats.t.interval(0.9, df=d.size - 1, loc=d.mean(), scale=stats.sem(d))
    result = paired_speedup(
        ref.tolist(), cand.tolist(), candidate="c", batch_size=1, confidence=0.9
    )
    assert result.ratio == pytest.approx(math.exp(d.mean()), rel=1e-12)
    assert result.ci_low == pytest.approx(math.exp(low), rel=1e-12)
    assert result.ci_high == pytest.approx(math.exp(high), rel=1e-12)
    assert result.ci_low < 2.0 < result.ci_high


def test_interval_coverage_on_noisy_rounds() -> None:
    rng = np.random.default_rng(5)
    covered = 0
    trials = 400
    for _ in range(trials):
        drift = rng.normal(0, 0.3, size=10)  # machine-wide slowdowns hit both models alike
        ref = 4.0 * np.exp(drift + rng.normal(0, 0.05, size=10))
        cand = 2.0 * np.exp(drift + rng.normal(0, 0.05, size=10))
        r = paired_speedup(ref.tolist(), cand.tolist(), candidate="c", batch_size=1)
        covered += r.ci_low <= 2.0 <= r.ci_high
    assert 0.91 <= covered / trials <= 0.99


@pytest.mark.parametrize(
    ("ref", "cand", "confidence", "match"),
    [
        ([1.0], [1.0], 0.95, "at least 2 rounds"),
        ([1.0, 2.0], [1.0], 0.95, "equal lengths"),
        ([1.0, 0.0], [1.0, 1.0], 0.95, "must be > 0"),
        ([1.0, 2.0], [1.0, 1.0], 1.5, "'confidence' must be in"),
    ],
)
def test_speedup_rejects_bad_input(
    ref: list[float], cand: list[float], confidence: float, match: str
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        paired_speedup(ref, cand, candidate="c", batch_size=1, confidence=confidence)
