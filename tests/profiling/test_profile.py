from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.adapters.onnxruntime import OnnxRuntimeAdapter
from compval.errors import DataError, InvalidParameterError, ProfilingError
from compval.profiling import (
    ProfileSettings,
    load_operator_set,
    profile_models,
    resolve_settings,
    synthetic_inputs,
)
from compval.profiling._inputs import BatchCutter
from compval.spec import PERF_METRIC_DIRECTIONS, PerformanceSpec
from compval.types import Array, Outputs, TensorSpec

MS = 1_000_000
POOL = {"x": np.arange(12, dtype=np.float32).reshape(3, 4)}

Clock = Callable[[], int]
MakeFake = Callable[..., Any]


def _settings(**kwargs: Any) -> ProfileSettings:
    base: dict[str, Any] = {
        "batch_sizes": (1, 4),
        "concurrency": (1, 2),
        "warmup": 2,
        "min_iterations": 10,
        "min_duration_s": 0.05,
        "rounds": 5,
        "concurrency_duration_s": 0.02,
        "measure_memory": True,
    }
    return ProfileSettings(**{**base, **kwargs})


def test_fake_models_end_to_end(clock: Clock, make_fake: MakeFake) -> None:
    ref = make_fake("fp32", 2 * MS)
    cand = make_fake("int8", 1 * MS)
    messages: list[str] = []
    result = profile_models(
        ref, {"int8": cand}, POOL, settings=_settings(), clock=clock, progress=messages.append
    )
    # Per round: >= 2 runs and >= 10 ms -> 5 runs of 2 ms, 10 runs of 1 ms; 5 rounds.
    assert [s.iterations for s in result.models["fp32"].latency] == [25, 25]
    assert [s.iterations for s in result.models["int8"].latency] == [50, 50]
    assert [(s.batch_size, s.p50_ms) for s in result.models["int8"].latency] == [(1, 1.0), (4, 1.0)]
    assert result.models["int8"].latency[1].throughput_sps == pytest.approx(4000.0)
    assert [(s.batch_size, s.rounds) for s in result.speedups] == [(1, 5), (4, 5)]
    for s in result.speedups:
        assert (s.ratio, s.ci_low, s.ci_high) == pytest.approx((2.0, 2.0, 2.0))
    assert set(ref.batch_sizes) == {1, 4}  # the pool of 3 rows is tiled up to 4
    loads = result.models["int8"].concurrency
    assert [(s.clients, s.errors) for s in loads] == [(1, 0), (2, 0)]
    assert loads[0].requests == 20  # 20 ms of 1 ms requests on the fake clock
    assert result.models["int8"].peak_memory_mb is None
    assert any("peak memory not measured" in n for n in result.notes)
    assert any("round 5/5" in m for m in messages)
    assert any("concurrent client" in m for m in messages)


def test_to_dict_has_the_report_structure(clock: Clock, make_fake: MakeFake) -> None:
    result = profile_models(
        make_fake("ref", 3 * MS),
        {"c": make_fake("c", 1 * MS)},
        POOL,
        settings=_settings(target="edge", threads=2, concurrency=(1,)),
        clock=clock,
    )
    out = json.loads(json.dumps(result.to_dict()))
    assert out["target"] == {
        "name": "edge",
        "threads": 2,
        "batch_sizes": [1, 4],
        "concurrency": [1],
    }
    assert out["settings"] == {"warmup": 2, "min_iterations": 10, "min_duration_s": 0.05}
    assert list(out["models"]) == ["ref", "c"]
    model = out["models"]["c"]
    assert set(model) == {
        "role", "size_mb", "parameter_count", "weight_sparsity", "load_time_ms",
        "peak_memory_mb", "latency", "concurrency", "unsupported_ops", "execution_providers",
    }  # fmt: skip
    assert (model["role"], out["models"]["ref"]["role"]) == ("candidate", "reference")
    assert set(model["latency"][0]) == {
        "batch_size", "iterations", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms",
        "std_ms", "cv", "throughput_sps",
    }  # fmt: skip
    assert set(model["concurrency"][0]) == {
        "clients", "batch_size", "duration_s", "requests", "errors", "throughput_sps",
        "p50_ms", "p95_ms", "p99_ms",
    }  # fmt: skip
    assert out["speedup"][0] == {
        "candidate": "c", "batch_size": 1, "ratio": pytest.approx(3.0),
        "ci_low": pytest.approx(3.0), "ci_high": pytest.approx(3.0), "confidence": 0.95,
        "rounds": 5,
    }  # fmt: skip


def test_metric_estimates(clock: Clock, make_fake: MakeFake) -> None:
    result = profile_models(
        make_fake("ref", 4 * MS),
        {"c": make_fake("c", 1 * MS)},
        POOL,
        settings=_settings(batch_sizes=(2,), concurrency=(3,)),
        clock=clock,
    )
    values = {v.metric: v for v in result.metric_estimates("c")}
    assert set(values) == {
        "latency_p50_ms[batch=2]", "latency_p90_ms[batch=2]", "latency_p95_ms[batch=2]",
        "latency_p99_ms[batch=2]", "latency_mean_ms[batch=2]", "throughput_sps[batch=2]",
        "speedup[batch=2]", "model_size_mb", "parameter_count", "weight_sparsity",
        "load_time_ms", "peak_memory_mb", "concurrent_throughput_sps[clients=3]",
        "concurrent_latency_p95_ms[clients=3]",
    }  # fmt: skip
    p95 = values["latency_p95_ms[batch=2]"]
    assert (p95.reference, p95.candidate, p95.delta) == (4.0, 1.0, -3.0)
    assert p95.ratio == pytest.approx(0.25) and not p95.paired
    assert p95.n == result.models["c"].latency[0].iterations
    assert p95.segment is None
    tput = values["throughput_sps[batch=2]"]
    assert tput.delta == pytest.approx(2000.0 - 500.0)
    speedup = values["speedup[batch=2]"]
    assert (speedup.reference, speedup.delta, speedup.paired) == (None, None, True)
    assert speedup.candidate == pytest.approx(4.0)
    assert speedup.ci == pytest.approx((4.0, 4.0))
    assert speedup.ci_candidate == speedup.ci
    assert (speedup.confidence, speedup.n, speedup.ci_method) == (0.95, 5, "paired_t_log_ratio")
    assert values["model_size_mb"].candidate is None
    assert values["model_size_mb"].delta is None
    for name, value in values.items():
        assert value.higher_is_better is PERF_METRIC_DIRECTIONS[name.split("[")[0]], name
        assert value.n >= 1
    with pytest.raises(InvalidParameterError, match=r"unknown candidate; got 'ref'"):
        result.metric_estimates("ref")


def test_interleaved_call_order(clock: Clock, make_fake: MakeFake) -> None:
    log: list[str] = []
    ref = make_fake("ref", 2 * MS, log=log)
    cand = make_fake("cand", 1 * MS, log=log)
    settings = _settings(
        batch_sizes=(1,), concurrency=(), warmup=1, min_iterations=4, min_duration_s=0.0, rounds=4
    )
    profile_models(ref, {"cand": cand}, POOL, settings=settings, clock=clock)
    # One checked call each, one warm-up each, then one timed run each per round.
    assert log == ["ref", "cand", "ref", "cand"] + ["ref", "cand"] * 4


def test_onnx_models_end_to_end(onnx_pair: tuple[Path, Path]) -> None:
    spec = PerformanceSpec(
        target="mobile",
        batch_sizes=[1, 8],
        concurrency=[2],
        warmup=1,
        min_iterations=6,
        min_duration_s=0.0,
        rounds=3,
        concurrency_duration_s=0.05,
    )
    settings = resolve_settings(spec)
    dense_path, pruned_path = onnx_pair
    with (
        OnnxRuntimeAdapter(dense_path, name="dense", threads=settings.threads) as dense,
        OnnxRuntimeAdapter(pruned_path, name="pruned", threads=settings.threads) as pruned,
    ):
        sample = synthetic_inputs(dense, rows=5, seed=0)
        result = profile_models(dense, {"pruned": pruned}, sample, settings=settings, seed=1)
    out = json.loads(json.dumps(result.to_dict()))
    pruned_out = out["models"]["pruned"]
    assert pruned_out["weight_sparsity"] == 0.5
    assert out["models"]["dense"]["weight_sparsity"] == 0.0
    assert pruned_out["parameter_count"] == 8 * 6 + 6
    assert pruned_out["size_mb"] == out["models"]["dense"]["size_mb"] > 0
    assert pruned_out["peak_memory_mb"] > 0
    assert pruned_out["unsupported_ops"] == []
    assert [s["batch_size"] for s in pruned_out["latency"]] == [1, 8]
    assert all(s["iterations"] >= 6 for s in pruned_out["latency"])
    assert pruned_out["concurrency"][0]["requests"] > 0
    assert pruned_out["concurrency"][0]["errors"] == 0
    for s in out["speedup"]:
        assert 0 < s["ci_low"] <= s["ratio"] <= s["ci_high"]
    # The mobile target reports, per execution provider, the nodes it would not take.
    providers = {ep["key"]: ep for ep in pruned_out["execution_providers"]}
    assert list(providers) == ["cpu", "nnapi", "coreml_neuralnetwork", "coreml_mlprogram"]
    assert providers["cpu"]["unsupported"] == [] and providers["cpu"]["nodes"] == 3
    # The batch axis is dynamic ('N'), which NNAPI cannot take: every node falls back.
    nnapi = providers["nnapi"]
    assert nnapi["supported_nodes"] == 0
    assert {tuple(n["reasons"]) for n in nnapi["unsupported"]} == {("dynamic_shape",)}
    values = {v.metric: v for v in result.metric_estimates("pruned")}
    assert values["unsupported_op_count"].candidate == 0
    assert values["peak_memory_mb"].candidate == pytest.approx(pruned_out["peak_memory_mb"])


def test_runtime_failure_mid_timing_is_a_profiling_error(clock: Clock) -> None:
    model = _SessionModel("flaky", fail_after=2)
    model.open()
    settings = _settings(batch_sizes=(1,), concurrency=(), warmup=0, min_duration_s=0.0)
    with pytest.raises(ProfilingError, match=r"failed while being timed; got ValueError: boom"):
        profile_models(model, {}, POOL, settings=settings, clock=clock)


def test_session_is_timed_directly(clock: Clock) -> None:
    model = _SessionModel("direct")
    model.open()
    settings = _settings(batch_sizes=(1,), concurrency=(), warmup=0, min_iterations=4,
                         min_duration_s=0.0, rounds=2)  # fmt: skip
    result = profile_models(model, {}, POOL, settings=settings, clock=clock)
    assert model.predict_calls == 1  # only the checked first call goes through predict
    assert model.session.runs == 1 + 4  # predict's, the timed runs
    assert result.speedups == ()


@pytest.mark.parametrize(
    ("pool", "match"),
    [
        ({}, r"got no arrays"),
        ({"x": np.zeros((0, 4), dtype=np.float32)}, r"got \{'x': 0\}"),
        (
            {"x": np.zeros((2, 4), dtype=np.float32), "z": np.zeros((3, 4), dtype=np.float32)},
            r"got \{'x': 2, 'z': 3\}",
        ),
    ],
)
def test_bad_samples_are_data_errors(
    clock: Clock, make_fake: MakeFake, pool: dict[str, Array], match: str
) -> None:
    with pytest.raises(DataError, match=match):
        profile_models(make_fake("ref", MS), {}, pool, settings=_settings(), clock=clock)


def test_candidate_named_like_reference_is_rejected(clock: Clock, make_fake: MakeFake) -> None:
    with pytest.raises(InvalidParameterError, match=r"got 'm' twice, expected distinct names"):
        profile_models(make_fake("m", MS), {"m": make_fake("m", MS)}, POOL, settings=_settings())


def test_fixed_batch_axis_is_reported(clock: Clock, make_fake: MakeFake) -> None:
    model = make_fake("static", MS, batch_dim=1)
    with pytest.raises(
        ProfilingError, match=r"fixed batch size of 1 \(float32\[1, 4\]\); got batch sizes \[1, 4\]"
    ):
        profile_models(model, {}, POOL, settings=_settings(), clock=clock)


def test_batch_cutter_tiles_a_seeded_order() -> None:
    pool = {"x": np.arange(3, dtype=np.float32)[:, None]}
    cutter = BatchCutter(pool, seed=7)
    batch = cutter.cut(pool, 8)["x"][:, 0]
    assert sorted(batch[:3].tolist()) == [0.0, 1.0, 2.0]  # a permutation, then repeated
    np.testing.assert_array_equal(batch[3:6], batch[:3])
    np.testing.assert_array_equal(BatchCutter(pool, seed=7).cut(pool, 8)["x"][:, 0], batch)


def test_synthetic_inputs(onnx_pair: tuple[Path, Path], make_fake: MakeFake) -> None:
    with OnnxRuntimeAdapter(onnx_pair[0], name="m") as adapter:
        a = synthetic_inputs(adapter, rows=7, seed=3)
        b = synthetic_inputs(adapter, rows=7, seed=3)
        c = synthetic_inputs(adapter, rows=7, seed=4)
        adapter.predict(a)
    assert a["x"].shape == (7, 8) and a["x"].dtype == np.float32
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], c["x"])
    kinds = _SpecModel(
        {
            "ids": TensorSpec("ids", np.dtype(np.int64), (None, 5)),
            "mask": TensorSpec("mask", np.dtype(np.bool_), (None, 5)),
            "free": TensorSpec("free", None, (None, 2)),
        }
    )
    out = synthetic_inputs(kinds, rows=3, seed=0)
    assert out["ids"].dtype == np.int64 and out["ids"].shape == (3, 5)
    assert out["ids"].min() >= 0 and out["ids"].max() < 10
    assert out["mask"].dtype == np.bool_
    assert out["free"].dtype == np.float32 and out["free"].shape == (3, 2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            TensorSpec("t", np.dtype(np.float32), (None, None, 8)),
            r"dynamic dimensions at axes \[1\]",
        ),
        (TensorSpec("t", np.dtype(np.float32), None), r"has an unknown shape"),
        (TensorSpec("t", np.dtype(np.float32), ()), r"has no batch axis"),
        (TensorSpec("t", np.dtype(np.object_), (None, 2)), r"has dtype object"),
    ],
)
def test_synthetic_inputs_ask_for_data(spec: TensorSpec, match: str) -> None:
    with pytest.raises(ProfilingError, match=match + r".*Pass real inputs with --data"):
        synthetic_inputs(_SpecModel({"t": spec}), rows=2, seed=0)


def test_synthetic_inputs_need_rows() -> None:
    model = _SpecModel({"t": TensorSpec("t", None, (None, 2))})
    with pytest.raises(InvalidParameterError, match=r"'rows' must be >= 1; got 0"):
        synthetic_inputs(model, rows=0, seed=0)


class _SpecModel(ModelAdapter):
    def __init__(self, spec: Mapping[str, TensorSpec]) -> None:
        super().__init__(name="spec")
        self._spec = dict(spec)

    def _open(self) -> None:
        pass

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        return dict(inputs)

    def _info(self) -> AdapterInfo:
        return AdapterInfo(runtime="fake", runtime_version="0", model_id="spec")


class _Session:
    def __init__(self, fail_after: int | None) -> None:
        self.runs = 0
        self.fail_after = fail_after

    def run(self, names: object, feed: Mapping[str, Array]) -> list[Array]:
        self.runs += 1
        if self.fail_after is not None and self.runs > self.fail_after:
            raise ValueError("boom")
        return [feed["x"]]


class _SessionModel(ModelAdapter):
    """An adapter shaped like OnnxRuntimeAdapter: a ``session`` with ``run``."""

    def __init__(self, name: str, fail_after: int | None = None) -> None:
        super().__init__(name=name)
        self.session = _Session(fail_after)
        self.predict_calls = 0

    def _open(self) -> None:
        pass

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return {"x": TensorSpec("x", np.dtype(np.float32), (None, 4))}

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        self.predict_calls += 1
        return {"y": self.session.run(None, inputs)[0]}

    def _info(self) -> AdapterInfo:
        return AdapterInfo(runtime="fake", runtime_version="0", model_id=self.name)

    def timed_call(self, inputs: Mapping[str, Array]) -> Callable[[], object]:
        # As OnnxRuntimeAdapter: one checked predict, then the session itself is timed.
        self.predict(inputs)
        return functools.partial(self.session.run, None, dict(inputs))


def test_runtime_failure_in_load_warmup_is_a_profiling_error(clock: Clock) -> None:
    # Runs: predict, warm-up, 2 timed; then predict, warm-up (fails).
    model = _SessionModel("flaky", fail_after=5)
    model.open()
    settings = _settings(batch_sizes=(1,), concurrency=(1,), warmup=1, min_iterations=2,
                         min_duration_s=0.0, rounds=2)  # fmt: skip
    with pytest.raises(ProfilingError, match=r"the load test's warm-up of 'flaky': a model failed"):
        profile_models(model, {}, POOL, settings=settings, clock=clock)


def test_unmeasurable_values_become_notes(
    onnx_pair: tuple[Path, Path], make_fake: MakeFake
) -> None:
    settings = _settings(
        batch_sizes=(1,), concurrency=(), warmup=0, min_iterations=2, min_duration_s=0.0,
        rounds=2, memory_timeout_s=0.01, operators=load_operator_set("ort_mobile"),
    )  # fmt: skip
    with OnnxRuntimeAdapter(onnx_pair[0], name="onnx") as onnx_model:
        result = profile_models(
            onnx_model,
            {"fake": make_fake("fake", MS, width=8)},
            {"x": np.ones((2, 8), dtype=np.float32)},
            settings=settings,
        )
    assert result.models["onnx"].peak_memory_mb is None
    assert result.models["onnx"].unsupported_ops == ()
    assert result.models["fake"].unsupported_ops is None
    assert result.models["fake"].execution_providers is None
    assert any("'onnx': peak memory not measured: Memory measurement" in n for n in result.notes)
    assert any("'fake': operators not checked" in n for n in result.notes)
    values = {v.metric: v for v in result.metric_estimates("fake")}
    assert values["unsupported_op_count"].candidate is None
    assert values["peak_memory_mb"].reference is None
