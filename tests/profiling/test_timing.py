from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compval.errors import InvalidParameterError
from compval.profiling import measure_latency, time_interleaved

MS = 1_000_000

Clock = Callable[[], int]
MakeFake = Callable[..., Any]


def _call(model: object, rows: int = 1) -> Callable[[], object]:
    x = np.ones((rows, 4), dtype=np.float32)
    return functools.partial(model.predict, {"x": x})  # type: ignore[attr-defined]


def test_stops_at_min_iterations_when_duration_is_already_reached(
    clock: Clock, make_fake: MakeFake
) -> None:
    model = make_fake("m", 10 * MS)
    result = measure_latency(
        _call(model), batch_size=1, warmup=3, min_iterations=40, min_duration_s=0.1, clock=clock
    )
    # 0.1 s is reached after 10 runs of 10 ms; 40 runs are still required.
    assert result.iterations == 40
    assert model.calls == 43
    assert result.p50_ms == result.p99_ms == result.mean_ms == 10.0
    assert result.std_ms == 0.0
    assert result.throughput_sps == pytest.approx(100.0)


def test_stops_at_min_duration_when_iterations_are_already_reached(
    clock: Clock, make_fake: MakeFake
) -> None:
    model = make_fake("m", 10 * MS)
    result = measure_latency(
        _call(model), batch_size=1, warmup=0, min_iterations=5, min_duration_s=0.5, clock=clock
    )
    assert result.iterations == 50  # the 50th run ends exactly at 0.5 s
    assert model.calls == 50


def test_percentiles_of_known_costs(clock: Clock, make_fake: MakeFake) -> None:
    costs = [(k % 20 + 1) * MS for k in range(100)]  # 1..20 ms, five times
    model = make_fake("m", costs)
    result = measure_latency(
        _call(model, rows=4),
        batch_size=4,
        warmup=0,
        min_iterations=100,
        min_duration_s=0.0,
        clock=clock,
    )
    ms = [c / MS for c in costs]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    assert result.iterations == 100
    assert (result.p50_ms, result.p90_ms, result.p95_ms, result.p99_ms) == pytest.approx(
        (statistics.median(ms), cuts[89], cuts[94], cuts[98])
    )
    assert result.std_ms == pytest.approx(statistics.stdev(ms))
    assert result.throughput_sps == pytest.approx(4 / (statistics.fmean(ms) / 1000))


def test_warmup_runs_are_not_timed(clock: Clock, make_fake: MakeFake) -> None:
    model = make_fake("m", [1000 * MS] * 2 + [1 * MS] * 1000)  # two slow cold starts
    result = measure_latency(
        _call(model), batch_size=1, warmup=2, min_iterations=10, min_duration_s=0.0, clock=clock
    )
    assert result.p99_ms == 1.0


def test_interleaving_alternates_models_in_rounds(clock: Clock, make_fake: MakeFake) -> None:
    log: list[str] = []
    ref = make_fake("ref", 2 * MS, log=log)
    cand = make_fake("cand", 1 * MS, log=log)
    samples = time_interleaved(
        {"ref": _call(ref), "cand": _call(cand)},
        warmup=2,
        min_iterations=6,
        min_duration_s=0.0,
        rounds=6,
        clock=clock,
    )
    assert log == ["ref", "ref", "cand", "cand"] + ["ref", "cand"] * 6
    assert samples == {"ref": [[2 * MS]] * 6, "cand": [[1 * MS]] * 6}


def test_rounds_split_the_minimums(clock: Clock, make_fake: MakeFake) -> None:
    ref = make_fake("ref", 10 * MS)
    cand = make_fake("cand", 5 * MS)
    rounds: list[int] = []
    samples = time_interleaved(
        {"ref": _call(ref), "cand": _call(cand)},
        warmup=0,
        min_iterations=30,
        min_duration_s=0.5,
        rounds=10,
        clock=clock,
        on_round=rounds.append,
    )
    assert rounds == list(range(10))
    # Per round: >= 3 runs and >= 50 ms, so 5 runs of 10 ms and 10 runs of 5 ms.
    assert [len(block) for block in samples["ref"]] == [5] * 10
    assert [len(block) for block in samples["cand"]] == [10] * 10
    for name in ("ref", "cand"):
        total = sum(sum(block) for block in samples[name])
        assert sum(len(block) for block in samples[name]) >= 30
        assert total >= 0.5e9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warmup": -1}, "'warmup' is out of range; got -1"),
        ({"min_iterations": 0}, "'min_iterations' is out of range; got 0"),
        ({"min_duration_s": -0.5}, "'min_duration_s' is out of range"),
        ({"min_duration_s": float("inf")}, "'min_duration_s' is out of range"),
    ],
)
def test_bad_counts_are_rejected(kwargs: dict[str, float], match: str) -> None:
    settings = {"warmup": 0, "min_iterations": 1, "min_duration_s": 0.0, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        measure_latency(lambda: None, batch_size=1, **settings)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=match):
        time_interleaved({"m": lambda: None}, rounds=2, **settings)  # type: ignore[arg-type]


def test_zero_rounds_is_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="'rounds' must be >= 1; got 0"):
        time_interleaved(
            {"m": lambda: None}, warmup=0, min_iterations=1, min_duration_s=0.0, rounds=0
        )
