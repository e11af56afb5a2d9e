"""The paired run with batches in flight on a served model (engine/_stream.py).

A model whose adapter declares ``max_concurrent_batches`` > 1 is sent the next batches from
worker threads while the run uses the answers in batch order. The served model here is an
``EndpointAdapter`` over ``httpx.MockTransport``: a handler computes ``x @ W + b`` with numpy
from each Open Inference Protocol request, so the test sees every request (in flight, rows,
order) and can fail chosen batches. The same model run locally (a numpy callable) is the
independent reference for the metrics. tests/adapters/test_endpoint.py runs the same
comparison against a real KServe server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from compval.adapters import CallableAdapter, EndpointAdapter
from compval.data import ArrayDataset, Batch
from compval.engine import RunOptions, run_validation
from compval.errors import DataError, EndpointError
from compval.results import Report
from compval.spec import AcceptanceSpec, spec_from_mapping

N_ROWS, N_FEATURES, N_CLASSES, BATCH = 1_000, 4, 3, 64
N_BATCHES = -(-N_ROWS // BATCH)  # 16
RNG = np.random.default_rng(2024)
W_REF = RNG.normal(size=(N_FEATURES, N_CLASSES)).astype(np.float32)
W_CAND = (W_REF + RNG.normal(scale=0.3, size=W_REF.shape)).astype(np.float32)
B_CAND = RNG.normal(scale=0.1, size=N_CLASSES).astype(np.float32)
X = RNG.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
Y = (X @ W_REF).argmax(axis=1)
URL = "http://mock/v2/models/m"


def _candidate(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(x, np.float32) @ W_CAND + B_CAND
    return out


def _reference(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(x, np.float32) @ W_REF
    return out


class Server:
    """An OIP v2 handler serving ``_candidate``; records what it sees; faults on request.

    ``fault(x)`` may return an ``httpx.Response`` to answer instead of the model (called with
    the request's rows before the model runs). With ``barrier`` = n, the first n requests are
    answered only once all n are in flight together: proof that the client sends that many at
    once (otherwise the barrier breaks after 20 s and the run fails).
    """

    def __init__(
        self,
        fault: Callable[[np.ndarray], httpx.Response | None] | None = None,
        barrier: int = 0,
    ) -> None:
        self.fault = fault
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.first_rows: list[float] = []  # the first feature of each request's first row
        self.barrier = threading.Barrier(barrier, timeout=20) if barrier else None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2":
            return httpx.Response(200, json={"name": "mock", "version": "1"})
        if path == "/v2/models/m":
            return httpx.Response(
                200,
                json={
                    "name": "m",
                    "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
                    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
                },
            )
        (tensor,) = json.loads(request.content)["inputs"]
        x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.first_rows.append(float(x[0, 0]))
            arrival = len(self.first_rows)
        try:
            if self.barrier is not None and arrival <= self.barrier.parties:
                self.barrier.wait()  # BrokenBarrierError unless that many are in flight at once
            answer = self.fault(x) if self.fault is not None else None
            if answer is not None:
                return answer
            logits = _candidate(x)
            out = {"name": "logits", "datatype": "FP32", "shape": list(logits.shape)}
            return httpx.Response(200, json={"outputs": [{**out, "data": logits.ravel().tolist()}]})
        finally:
            with self.lock:
                self.in_flight -= 1


def _spec(**overrides: Any) -> AcceptanceSpec:
    return spec_from_mapping(
        {
            "version": 1,
            "reference": {"name": "ref"},
            "candidates": [{"name": "served"}],
            "data": {"path": "in-memory", "labels": "y"},
            "batch_size": BATCH,
            "statistics": {"replicates": 100},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.05}],
            **overrides,
        }
    )


def _served(server: Server, max_in_flight: int) -> EndpointAdapter:
    return EndpointAdapter(
        URL, name="served", max_in_flight=max_in_flight, transport=httpx.MockTransport(server)
    )


def _validate(candidate: Any, data: Any = None, options: RunOptions | None = None) -> Report:
    return run_validation(
        _spec(),
        reference=CallableAdapter(_reference, name="ref", input_names=("X",)),
        candidates={"served": candidate},
        data=(X, Y) if data is None else data,
        options=options or RunOptions(),
    )


def _metrics(report: Report) -> list[str]:
    return sorted(json.dumps(m, sort_keys=True) for m in report.to_dict()["metrics"])


def test_batches_in_flight_give_the_sequential_and_the_local_report() -> None:
    local = _validate(CallableAdapter(_candidate, name="served", input_names=("X",)))
    one = Server()
    sequential = _validate(_served(one, 1))
    three = Server(barrier=3)  # the first three requests must be in flight together
    concurrent = _validate(_served(three, 3))
    assert _metrics(concurrent) == _metrics(sequential) == _metrics(local)
    assert [c.verdict for c in concurrent.checks] == [c.verdict for c in local.checks]
    # An independent reference for one number: the candidate's accuracy from numpy.
    accuracy = float(np.mean(_candidate(X).argmax(axis=1) == Y))
    (value,) = [
        m.candidate_value
        for m in concurrent.metrics
        if m.metric == "accuracy_score" and m.segment is None
    ]
    assert value == pytest.approx(accuracy, abs=1e-12)
    # One request per batch in both runs; in flight: one at a time, then up to three.
    assert len(one.first_rows) == len(three.first_rows) == N_BATCHES
    assert one.peak == 1 and three.peak == 3
    source = concurrent.run.models["served"]["source"]
    assert source["rows_sent"] == source["rows_scored"] == str(N_ROWS)
    assert source["requests"] == str(N_BATCHES)


class CountingDataset(ArrayDataset):
    """Counts the batches handed out, to check how far the run reads ahead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read = 0

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for batch in super().batches(batch_size):
            self.read += 1
            yield batch


def test_at_most_max_in_flight_batches_are_read_ahead() -> None:
    data = CountingDataset(X, labels=Y)
    ahead: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "validate":
            ahead.append(data.read - -(-done // BATCH))  # batches read, not yet used

    server = Server()
    _validate(_served(server, 4), data=data, options=RunOptions(progress=progress))
    assert len(ahead) == N_BATCHES
    assert max(ahead) <= 4 - 1  # the batch in use plus three ahead
    assert max(ahead) >= 1  # it does read ahead
    assert server.peak <= 4


def test_local_models_run_on_the_runs_thread_one_batch_at_a_time() -> None:
    threads: set[str] = set()

    def candidate(x: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return _candidate(x)

    _validate(CallableAdapter(candidate, name="served", input_names=("X",)))
    assert threads == {threading.current_thread().name}


def _poisoned_at(batch: int, later: int, *, wait_for_later: bool) -> Server:
    """Batch ``batch`` gets HTTP 500, batch ``later`` HTTP 400; the first waits for the second.

    With ``wait_for_later`` the 500 is answered only after the 400 was: a run that raised the
    first error to complete would raise the later batch's.
    """
    first_of = {float(X[i * BATCH, 0]): i for i in range(N_BATCHES)}
    later_failed = threading.Event()

    def fault(x: np.ndarray) -> httpx.Response | None:
        index = first_of[float(x[0, 0])]
        if index == later:
            later_failed.set()
            return httpx.Response(400, json={"error": f"batch {later} is refused too"})
        if index == batch:
            if wait_for_later:
                assert later_failed.wait(timeout=20)
            return httpx.Response(500, json={"error": f"cannot score batch {batch}"})
        return None

    return Server(fault)


@pytest.mark.parametrize("later", ["server", "nan"])
def test_an_error_in_batch_i_is_the_sequential_runs_error(later: str) -> None:
    """Batch 5 fails on the server; batch 7 fails first (a 400, or NaN features when read)."""
    x = X.copy()
    if later == "nan":
        x[7 * BATCH + 1, 0] = np.nan
    waits = later == "server"
    with pytest.raises(EndpointError) as sequential:
        _validate(_served(_poisoned_at(5, 7, wait_for_later=False), 1), data=(x, Y))
    server = _poisoned_at(5, 7, wait_for_later=waits)
    with pytest.raises(EndpointError) as concurrent:
        _validate(_served(server, 4), data=(x, Y))
    assert str(concurrent.value) == str(sequential.value)
    assert "HTTP 500: cannot score batch 5." in str(concurrent.value)
    assert URL in str(concurrent.value)
    # Nothing past the look-ahead was sent (batch 7 was, unless its features stopped it).
    assert len(server.first_rows) <= 5 + 4


def test_non_finite_features_in_batch_i_stop_the_run_as_in_a_sequential_run() -> None:
    x = X.copy()
    x[9 * BATCH + 3, 2] = np.nan

    def run(k: int) -> tuple[str, Server]:
        server = Server()
        with pytest.raises(DataError) as err:
            _validate(_served(server, k), data=(x, Y))
        return str(err.value), server

    (sequential, one), (concurrent, four) = run(1), run(4)
    assert concurrent == sequential
    assert f"first at row {9 * BATCH + 3:,}" in concurrent
    # The batch with the NaN is never sent; every batch before it is.
    assert set(four.first_rows) == {float(x[i * BATCH, 0]) for i in range(9)}
    assert len(one.first_rows) == 9


def test_retries_under_concurrency_are_counted_exactly() -> None:
    """Every second request the server receives is a 503: N batches need N - 1 retries."""
    calls = iter(range(10**6))
    lock = threading.Lock()

    def fault(x: np.ndarray) -> httpx.Response | None:
        with lock:
            n = next(calls)
        return httpx.Response(503, json={"error": "busy"}) if n % 2 else None

    adapter = EndpointAdapter(
        URL,
        name="served",
        max_in_flight=4,
        retries=20,
        backoff_s=0.001,
        transport=httpx.MockTransport(Server(fault)),
    )
    report = _validate(adapter)
    local = _validate(CallableAdapter(_candidate, name="served", input_names=("X",)))
    assert _metrics(report) == _metrics(local)
    # Requests are counted once each; their retries apart.
    assert (adapter.requests, adapter.retried) == (N_BATCHES, N_BATCHES - 1)
    (note,) = adapter.run_notes()
    assert f"{N_BATCHES - 1} request(s) answered 503/429 were retried" in note
    assert f"({N_ROWS:,} of {N_ROWS:,})" in note
    # The engine asks after the paired run: the report says the same.
    assert note in report.run.notes


def test_the_spec_sets_the_look_ahead_through_max_in_flight() -> None:
    spec: AcceptanceSpec = _spec(
        candidates=[{"name": "served", "endpoint": URL, "max_in_flight": 2}]
    )
    (ref,) = spec.candidates
    adapter = EndpointAdapter.from_ref(ref)
    assert adapter.max_concurrent_batches == 2
    assert CallableAdapter(_candidate, name="c").max_concurrent_batches == 1


@pytest.mark.parametrize("kept", [None, "half"])
def test_feature_major_equals_concatenating_then_transposing(kept: str | None) -> None:
    from compval.engine._stream import _feature_major

    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 7)).astype(np.float32) for n in (256, 256, 13)]
    keep = None if kept is None else rng.random(525) < 0.5
    whole = np.concatenate(parts)
    expected = (whole if keep is None else whole[keep]).T
    out = _feature_major(parts, keep)
    assert out.flags.c_contiguous and out.dtype == np.float32
    assert np.array_equal(out, expected)


def test_after_its_first_batch_a_model_is_asked_for_the_compared_output_only() -> None:
    """The run picks the compared output on a model's first batch; later batches ask for it
    alone (ONNX Runtime then skips the nodes only other outputs need). The report is the one
    of a run that computed every output."""

    class TwoOutputs(CallableAdapter):
        def __init__(self, *, restrict: bool) -> None:
            super().__init__(_candidate, name="served", input_names=("X",))
            self.restrict = restrict
            self.asked: list[tuple[str, ...] | None] = []

        def predict(self, inputs: Any, outputs: Any = None) -> Any:
            self.asked.append(None if outputs is None else tuple(outputs))
            return super().predict(inputs, outputs if self.restrict else None)

        def _predict(self, inputs: Any) -> Any:
            (x,) = inputs.values()
            return {"logits": _candidate(x), "extra": np.zeros((len(x), 1))}

        def _predict_outputs(self, inputs: Any, names: Any) -> Any:
            return {n: v for n, v in self._predict(inputs).items() if n in names}

    spec = _spec(candidates=[{"name": "served", "output": "logits"}])
    runs = []
    for restrict in (True, False):
        adapter = TwoOutputs(restrict=restrict)
        report = run_validation(
            spec,
            reference=CallableAdapter(_reference, name="ref", input_names=("X",)),
            candidates={"served": adapter},
            data=(X, Y),
        )
        runs.append((adapter.asked, report))
    asked = runs[0][0]
    assert asked[0] is None and len(asked) == N_BATCHES
    assert all(names == ("logits",) for names in asked[1:])
    assert _metrics(runs[0][1]) == _metrics(runs[1][1])
