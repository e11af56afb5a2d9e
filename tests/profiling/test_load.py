from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compval.errors import InvalidParameterError
from compval.profiling import run_load

MS = 1_000_000

Clock = Callable[[], int]
MakeFake = Callable[..., Any]


def _call(model: object, rows: int = 1):  # type: ignore[no-untyped-def]
    return functools.partial(model.predict, {"x": np.ones((rows, 4), dtype=np.float32)})  # type: ignore[attr-defined]


@pytest.mark.parametrize("clients", [1, 3])
def test_requests_are_counted_and_run_stops_on_the_fake_clock(
    clients: int, clock: Clock, make_fake: MakeFake
) -> None:
    model = make_fake("m", 2 * MS)
    result = run_load(
        _call(model, rows=2), clients=clients, duration_s=0.1, batch_size=2, clock=clock
    )
    assert result.requests == model.calls
    assert result.errors == 0
    # The shared clock passes 100 ms after 50 calls; clients already inside a call finish it.
    assert 50 <= result.requests <= 50 + clients
    assert result.clients == clients
    assert result.batch_size == 2
    assert result.duration_s == pytest.approx(result.requests * 2 * MS / 1e9)
    assert result.throughput_sps == pytest.approx(result.requests * 2 / result.duration_s)
    assert result.p50_ms is not None and result.p99_ms is not None
    assert result.p50_ms >= 2.0  # with several clients, others' calls land inside one's window


def test_errors_are_counted_and_excluded_from_latency(clock: Clock, make_fake: MakeFake) -> None:
    model = make_fake("m", 1 * MS, fail_every=3)
    result = run_load(_call(model), clients=2, duration_s=0.06, clock=clock)
    assert result.errors == model.failures > 0
    assert result.requests == model.calls
    ok = result.requests - result.errors
    assert result.throughput_sps == pytest.approx(ok / result.duration_s)
    assert result.error_examples and "fake failure" in result.error_examples[0]
    assert result.to_dict()["errors"] == model.failures


def test_all_failures_give_no_percentiles(clock: Clock, make_fake: MakeFake) -> None:
    model = make_fake("m", 1 * MS, fail_every=1)
    result = run_load(_call(model), clients=1, duration_s=0.01, clock=clock)
    assert result.errors == result.requests == 10
    assert (result.p50_ms, result.p95_ms, result.p99_ms, result.throughput_sps) == (
        None,
        None,
        None,
        0.0,
    )


def test_stops_by_itself_on_the_real_clock() -> None:
    calls = []
    result = run_load(lambda: calls.append(1), clients=4, duration_s=0.05)
    assert result.requests == len(calls) > 0
    assert result.errors == 0
    assert result.duration_s >= 0.05


def test_hung_client_is_abandoned_and_counted_as_error() -> None:
    release = threading.Event()
    started = threading.Event()

    def hang() -> None:
        started.set()
        release.wait(timeout=30)

    try:
        result = run_load(hang, clients=2, duration_s=0.02, grace_s=0.2)
    finally:
        release.set()
    assert started.is_set()
    assert result.errors == 2
    assert result.requests == 2
    assert any("still inside a request" in e for e in result.error_examples)


@pytest.mark.parametrize(
    "kwargs",
    [{"clients": 0}, {"batch_size": 0}, {"duration_s": 0.0}, {"grace_s": 0.0}],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float]) -> None:
    settings = {"clients": 1, "duration_s": 0.01, **kwargs}
    with pytest.raises(InvalidParameterError, match="run_load: needs clients >= 1"):
        run_load(lambda: None, **settings)  # type: ignore[arg-type]
