"""Latency summaries and the paired speedup interval.

Percentiles use linear interpolation between order statistics (numpy's default, the
"inclusive" method of ``statistics.quantiles``). The standard deviation is the sample one
(ddof=1; 0 for a single run) and ``cv`` is std / mean.

Speedup = reference latency / candidate latency, so above 1 means the candidate is faster. It
is estimated from interleaved rounds: in round r both models are timed back to back, and
``d_r = log(median_ref_r / median_cand_r)``. Slow drifts of the machine (frequency scaling,
background load) shift both medians of a round alike and cancel in ``d_r``. The estimate is
``exp(mean(d))`` (the geometric mean of the per-round ratios) and the interval is Student's t
interval on ``mean(d)`` with ``rounds - 1`` degrees of freedom, exponentiated. The log scale
makes the interval symmetric for "2x faster" and "2x slower", and keeps it positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from compval.errors import InvalidParameterError
from compval.results import LatencyStats, SpeedupResult

__all__ = ["LatencyStats", "SpeedupResult", "paired_speedup", "summarize_latencies"]

_NS_PER_MS = 1e6


def summarize_latencies(samples_ns: Sequence[int], *, batch_size: int) -> LatencyStats:
    """Summarize per-batch latencies measured in nanoseconds.

    Args:
        samples_ns: One duration per timed run, in nanoseconds.
        batch_size: Rows per run; throughput is ``batch_size / mean latency``.

    Returns:
        Percentiles, mean, std and cv in milliseconds, and throughput in samples/s.

    Raises:
        InvalidParameterError: No samples, a negative sample, or batch_size < 1.

    Example:
        >>> s = summarize_latencies([1_000_000, 2_000_000, 3_000_000], batch_size=4)
        >>> (s.p50_ms, s.mean_ms, s.std_ms, s.throughput_sps)
        (2.0, 2.0, 1.0, 2000.0)
    """
    if len(samples_ns) == 0 or batch_size < 1:
        raise InvalidParameterError(
            f"summarize_latencies: needs at least one sample and batch_size >= 1; got "
            f"{len(samples_ns)} samples and batch_size={batch_size}, expected both positive."
        )
    ms = np.asarray(samples_ns, dtype=np.float64) / _NS_PER_MS
    if float(ms.min()) < 0:
        raise InvalidParameterError(
            f"summarize_latencies: durations must be >= 0; got a minimum of {ms.min()} ms, "
            "expected a monotonic clock (time.perf_counter_ns)."
        )
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, [50, 90, 95, 99]))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencyStats(
        batch_size=batch_size,
        iterations=int(ms.size),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=mean,
        std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        throughput_sps=batch_size * 1000.0 / mean if mean > 0 else math.inf,
    )


def paired_speedup(
    reference_round_ms: Sequence[float],
    candidate_round_ms: Sequence[float],
    *,
    candidate: str,
    batch_size: int,
    confidence: float = 0.95,
) -> SpeedupResult:
    """Speedup of the candidate over the reference from interleaved rounds.

    Args:
        reference_round_ms: The reference's median latency in each round.
        candidate_round_ms: The candidate's median latency in the same rounds.
        candidate: Candidate name, recorded in the result.
        batch_size: Batch size, recorded in the result.
        confidence: Two-sided confidence level of the interval.

    Returns:
        ``exp(mean log-ratio)`` with the exponentiated t interval (see the module docstring).

    Raises:
        InvalidParameterError: Fewer than two rounds, unequal lengths, or a latency <= 0.

    Example:
        >>> r = paired_speedup([2.0, 4.0], [1.0, 2.0], candidate="int8", batch_size=1)
        >>> (r.ratio, r.ci_low, r.ci_high)
        (2.0, 2.0, 2.0)
    """
    ref = np.asarray(reference_round_ms, dtype=np.float64)
    cand = np.asarray(candidate_round_ms, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or ref.size < 2:
        raise InvalidParameterError(
            f"paired_speedup: needs two equally long sequences of at least 2 rounds; got "
            f"{ref.size} and {cand.size}, expected equal lengths >= 2."
        )
    if float(min(ref.min(), cand.min())) <= 0:
        raise InvalidParameterError(
            "paired_speedup: round latencies must be > 0; got a zero or negative median, "
            "expected positive durations. Check the clock."
        )
    if not 0 < confidence < 1:
        raise InvalidParameterError(
            f"paired_speedup: 'confidence' must be in (0, 1); got {confidence!r}."
        )
    # scipy.stats takes a noticeable time to import; only the speedup needs it.
    from scipy import stats as scipy_stats

    log_ratio = np.log(ref) - np.log(cand)
    mean = float(log_ratio.mean())
    sem = float(log_ratio.std(ddof=1)) / math.sqrt(log_ratio.size)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=log_ratio.size - 1)) * sem
    return SpeedupResult(
        candidate=candidate,
        batch_size=batch_size,
        ratio=math.exp(mean),
        ci_low=math.exp(mean - half),
        ci_high=math.exp(mean + half),
        confidence=confidence,
        rounds=int(log_ratio.size),
    )
