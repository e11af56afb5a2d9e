"""Fixtures for the profiler tests: a fake clock, fake models that advance it, tiny ONNX files."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest

from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.types import Array, Outputs, TensorSpec


class FakeClock:
    """An integer nanosecond clock that only moves when told to (thread-safe)."""

    def __init__(self, start: int = 1_000) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        with self._lock:
            self.now += ns


class FakeModel(ModelAdapter):
    """A model whose predict advances the fake clock by a known cost, and logs each call."""

    runtime = "fake"

    def __init__(
        self,
        name: str,
        clock: FakeClock,
        costs_ns: Iterable[int] | int,
        *,
        log: list[str] | None = None,
        fail_every: int = 0,
        width: int = 4,
        batch_dim: int | None = None,
    ) -> None:
        super().__init__(name=name)
        self.clock = clock
        costs = [costs_ns] if isinstance(costs_ns, int) else list(costs_ns)
        self._costs = itertools.cycle(costs)
        self.log = log if log is not None else []
        self.fail_every = fail_every
        self.calls = 0
        self.failures = 0
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()
        self._spec = {"x": TensorSpec("x", np.dtype(np.float32), (batch_dim, width))}

    def _open(self) -> None:
        pass

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        with self._lock:
            self.calls += 1
            self.log.append(self.name)
            self.batch_sizes.append(len(inputs["x"]))
            cost = next(self._costs)
            fail = self.fail_every > 0 and self.calls % self.fail_every == 0
            if fail:
                self.failures += 1
        self.clock.advance(cost)
        if fail:
            raise RuntimeError("fake failure")
        return {"y": inputs["x"] * 2}

    def _info(self) -> AdapterInfo:
        return AdapterInfo(runtime="fake", runtime_version="0", model_id=self.name)

    # Optional hooks, settable per test: a model file, a self-timed load, a reload.
    path: Path | None = None
    fake_load_time_s: float | None = None
    reload: Callable[[int | None], float | None] | None = None

    @property
    def model_format(self) -> str:
        return "onnx" if self.path is not None and self.path.suffix == ".onnx" else "other"

    @property
    def model_file(self) -> Path | None:
        return self.path

    @property
    def load_time_s(self) -> float | None:
        return self.fake_load_time_s

    def time_reload(self, *, threads: int | None) -> float | None:
        return None if self.reload is None else self.reload(threads)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_fake(clock: FakeClock) -> Callable[..., FakeModel]:
    def make(name: str, costs_ns: Iterable[int] | int, **kwargs: object) -> FakeModel:
        model = FakeModel(name, clock, costs_ns, **kwargs)  # type: ignore[arg-type]
        model.open()
        return model

    return make


def write_linear_onnx(
    path: Path,
    weight: Array,
    *,
    opset: int = 13,
    extra_op: str | None = None,
    batch: int | None = None,
) -> Path:
    """Write y = relu(x @ weight + bias) (optionally followed by ``extra_op``) as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = weight.shape
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["y" if extra_op is None else "r"]),
    ]
    if extra_op is not None:
        nodes.append(helper.make_node(extra_op, ["r"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch or "N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch or "N", n_out])],
        initializer=[
            numpy_helper.from_array(weight.astype(np.float32), "w"),
            numpy_helper.from_array(np.full(n_out, 0.5, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def linear_onnx() -> Callable[..., Path]:
    return write_linear_onnx


@pytest.fixture
def dense_weight() -> Array:
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 1.5, size=(8, 6)).astype(np.float32)


@pytest.fixture
def half_zero_weight(dense_weight: Array) -> Array:
    weight: Array = np.array(dense_weight, copy=True)
    flat = weight.reshape(-1)
    flat[np.random.default_rng(1).permutation(flat.size)[: flat.size // 2]] = 0.0
    return weight


@pytest.fixture
def onnx_pair(tmp_path: Path, dense_weight: Array, half_zero_weight: Array) -> tuple[Path, Path]:
    dense = write_linear_onnx(tmp_path / "dense.onnx", dense_weight)
    pruned = write_linear_onnx(tmp_path / "pruned.onnx", half_zero_weight)
    return dense, pruned
