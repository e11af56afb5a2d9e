"""Timing loops: warm-up, then timed runs until a minimum count and a minimum duration.

Every duration is the difference of two readings of an injectable integer-nanosecond clock
(``time.perf_counter_ns`` by default), taken immediately around the call, so that loop
bookkeeping is not timed. The garbage collector is paused while a block runs, as ``timeit``
does, so that a collection triggered by compval's own allocations does not land in a sample.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping, Sequence

from compval.errors import InvalidParameterError
from compval.profiling._stats import LatencyStats, summarize_latencies

__all__ = ["measure_latency", "time_interleaved"]

Clock = Callable[[], int]
_NS_PER_S = 1_000_000_000


def measure_latency(
    call: Callable[[], object],
    *,
    batch_size: int,
    warmup: int = 5,
    min_iterations: int = 30,
    min_duration_s: float = 0.5,
    clock: Clock = time.perf_counter_ns,
) -> LatencyStats:
    """Time ``call`` alone: ``warmup`` untimed runs, then runs until both minimums are met.

    Args:
        call: Runs one batch (e.g. ``functools.partial(adapter.predict, inputs)``).
        batch_size: Rows per call, for throughput.
        warmup: Untimed runs first.
        min_iterations: Timed runs, at least.
        min_duration_s: Timed seconds (from the first timed run's start), at least.
        clock: Integer nanosecond clock.

    Returns:
        The latency summary of the timed runs.

    Raises:
        InvalidParameterError: A count or duration is out of range.
    """
    _check_counts(warmup=warmup, min_iterations=min_iterations, min_duration_s=min_duration_s)
    for _ in range(warmup):
        call()
    samples = _time_block(
        call,
        min_iterations=min_iterations,
        min_duration_ns=round(min_duration_s * _NS_PER_S),
        clock=clock,
    )
    return summarize_latencies(samples, batch_size=batch_size)


def time_interleaved(
    calls: Mapping[str, Callable[[], object]],
    *,
    warmup: int,
    min_iterations: int,
    min_duration_s: float,
    rounds: int,
    clock: Clock = time.perf_counter_ns,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[list[int]]]:
    """Time several models in alternating rounds under the same settings.

    Each model first gets ``warmup`` untimed runs. Then, ``rounds`` times, each model in turn
    (in the mapping's order) runs one block of at least ``ceil(min_iterations / rounds)``
    timed runs lasting at least ``min_duration_s / rounds``; summed over the rounds, every
    model therefore gets at least ``min_iterations`` runs and ``min_duration_s`` seconds.

    Args:
        calls: Model name -> a callable that runs one batch.
        warmup: Untimed runs per model before the first round.
        min_iterations: Timed runs per model, at least, over all rounds.
        min_duration_s: Timed seconds per model, at least, over all rounds.
        rounds: Number of rounds (>= 1).
        clock: Integer nanosecond clock.
        on_round: Called with the round index (from 0) before each round.

    Returns:
        Model name -> one list of durations (ns) per round.

    Raises:
        InvalidParameterError: A count or duration is out of range.
    """
    _check_counts(warmup=warmup, min_iterations=min_iterations, min_duration_s=min_duration_s)
    if rounds < 1:
        raise InvalidParameterError(
            f"time_interleaved: 'rounds' must be >= 1; got {rounds!r}, expected a positive int."
        )
    per_round_iterations = math.ceil(min_iterations / rounds)
    per_round_ns = math.ceil(min_duration_s * _NS_PER_S / rounds)
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[list[int]]] = {name: [] for name in calls}
    for index in range(rounds):
        if on_round is not None:
            on_round(index)
        for name, call in calls.items():
            samples[name].append(
                _time_block(
                    call,
                    min_iterations=per_round_iterations,
                    min_duration_ns=per_round_ns,
                    clock=clock,
                )
            )
    return samples


def flatten(rounds: Sequence[Sequence[int]]) -> list[int]:
    """All durations of all rounds, in order."""
    return [sample for block in rounds for sample in block]


def _time_block(
    call: Callable[[], object], *, min_iterations: int, min_duration_ns: int, clock: Clock
) -> list[int]:
    samples: list[int] = []
    append = samples.append
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        while True:
            t0 = clock()
            call()
            t1 = clock()
            append(t1 - t0)
            if len(samples) >= min_iterations and t1 - start >= min_duration_ns:
                return samples
    finally:
        if gc_was_enabled:
            gc.enable()


def _check_counts(*, warmup: int, min_iterations: int, min_duration_s: float) -> None:
    for name, value, ok, expected in (
        ("warmup", warmup, warmup >= 0, "an integer >= 0"),
        ("min_iterations", min_iterations, min_iterations >= 1, "an integer >= 1"),
        ("min_duration_s", min_duration_s, 0 <= min_duration_s < math.inf, "a finite float >= 0"),
    ):
        if not ok:
            raise InvalidParameterError(
                f"Latency timing: {name!r} is out of range; got {value!r}, expected {expected}."
            )
