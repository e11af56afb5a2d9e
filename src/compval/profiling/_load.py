"""Concurrent load: N client threads send requests to one loaded model for a fixed time.

Threads suit this because ONNX Runtime and torch release the GIL while they compute, so the
clients really do overlap inside the runtime; only compval's bookkeeping is serialized. Each
client loops until the shared deadline passes and never starts a request after it, so a run
lasts the requested duration plus at most one request per client. A client that is still
inside a request long after the deadline (a hung model) is abandoned and its request counted
as an error, so the test always stops by itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compval.errors import InvalidParameterError
from compval.results import LoadStats

__all__ = ["LoadStats", "run_load"]

Clock = Callable[[], int]
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1e6


@dataclass(slots=True)
class _Client:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    last_finish_ns: int = 0


def run_load(
    call: Callable[[], object],
    *,
    clients: int,
    duration_s: float,
    batch_size: int = 1,
    clock: Clock = time.perf_counter_ns,
    grace_s: float = 30.0,
) -> LoadStats:
    """Run ``clients`` threads that call ``call`` back to back for ``duration_s``.

    Args:
        call: Sends one request (one batch of ``batch_size`` rows) and waits for the answer.
        clients: Number of concurrent client threads.
        duration_s: How long clients keep starting requests, measured on ``clock``.
        batch_size: Rows per request, for throughput.
        clock: Integer nanosecond clock shared by all clients (must be thread-safe).
        grace_s: Real seconds to wait, after ``duration_s``, for clients still inside a
            request; those are abandoned and their request counted as an error.

    Returns:
        Requests sent, errors, throughput and latency percentiles.

    Raises:
        InvalidParameterError: ``clients`` or ``batch_size`` < 1, or a duration <= 0.
    """
    if clients < 1 or batch_size < 1 or not 0 < duration_s < math.inf or grace_s <= 0:
        raise InvalidParameterError(
            f"run_load: needs clients >= 1, batch_size >= 1, 0 < duration_s < inf and "
            f"grace_s > 0; got clients={clients!r}, batch_size={batch_size!r}, "
            f"duration_s={duration_s!r}, grace_s={grace_s!r}."
        )
    states = [_Client() for _ in range(clients)]
    times: dict[str, int] = {}
    duration_ns = round(duration_s * _NS_PER_S)

    def start_together() -> None:
        times["start"] = clock()

    barrier = threading.Barrier(clients, action=start_together)

    def client(state: _Client) -> None:
        barrier.wait()
        deadline = times["start"] + duration_ns
        record = state.latencies_ns.append
        while clock() < deadline:
            t0 = clock()
            try:
                call()
            except Exception as exc:  # a failed request is data here, not a crash
                t1 = clock()
                state.errors += 1
                if len(state.error_examples) < 3:
                    state.error_examples.append(f"{type(exc).__name__}: {exc}")
            else:
                t1 = clock()
                record(t1 - t0)
            state.last_finish_ns = t1

    threads = [
        threading.Thread(target=client, args=(s,), name=f"compval-load-{i}", daemon=True)
        for i, s in enumerate(states)
    ]
    for thread in threads:
        thread.start()
    join_deadline = time.monotonic() + duration_s + grace_s
    for thread in threads:
        thread.join(timeout=max(join_deadline - time.monotonic(), 0.0))
    hung = sum(thread.is_alive() for thread in threads)

    latencies = (
        np.array([v for s in states for v in list(s.latencies_ns)], dtype=np.float64) / _NS_PER_MS
    )
    errors = sum(s.errors for s in states) + hung
    examples = [e for s in states for e in s.error_examples]
    if hung:
        examples.append(f"{hung} client(s) still inside a request {grace_s} s after the end")
    start = times.get("start", 0)
    finish = max([s.last_finish_ns for s in states] + [start + duration_ns])
    elapsed_s = (finish - start) / _NS_PER_S
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    if latencies.size:
        p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
    return LoadStats(
        clients=clients,
        batch_size=batch_size,
        duration_s=elapsed_s,
        requests=int(latencies.size) + errors,
        errors=errors,
        throughput_sps=latencies.size * batch_size / elapsed_s if elapsed_s > 0 else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        error_examples=tuple(examples[:5]),
    )
