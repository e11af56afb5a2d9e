"""The contract every adapter must meet, checked on the same tiny linear model."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import (
    AdapterInfo,
    CallableAdapter,
    ModelAdapter,
    OnnxRuntimeAdapter,
    SklearnAdapter,
    TorchAdapter,
)
from compval.errors import AdapterError, InputMismatchError

KINDS = ["onnxruntime", "torch", "sklearn", "callable"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@pytest.fixture(params=KINDS)
def case(
    request: pytest.FixtureRequest,
    onnx_path: Path,
    torch_linear: Any,
    logistic_regression: Any,
    weights: tuple[np.ndarray, np.ndarray],
) -> tuple[ModelAdapter, str, Callable[[np.ndarray], np.ndarray], str, str]:
    """(unopened adapter, output name, numpy reference, runtime, runtime's module)."""
    w, b = weights
    kind = request.param
    w64, b64 = w.astype(np.float64), b.astype(np.float64)

    def linear(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ w64 + b64

    if kind == "onnxruntime":
        return OnnxRuntimeAdapter(onnx_path, name="m", threads=1), "logits", linear, kind, kind
    if kind == "torch":
        return TorchAdapter(torch_linear, name="m"), "output", linear, "torch", "torch"
    if kind == "sklearn":
        lr = logistic_regression

        def proba(x: np.ndarray) -> np.ndarray:
            return _softmax(x.astype(np.float64) @ lr.coef_.T + lr.intercept_)

        return SklearnAdapter(lr, name="m"), "probabilities", proba, "sklearn", "sklearn"
    fn = CallableAdapter(lambda x: x @ w + b, name="m")
    return fn, "output", linear, "python", "platform"


class TestAdapterConformance:
    def test_open_is_idempotent(self, case: Any) -> None:
        adapter, *_ = case
        calls: list[int] = []
        real_open = adapter._open

        def counting_open() -> None:
            calls.append(1)
            real_open()

        adapter._open = counting_open
        adapter.open()
        adapter.open()
        assert adapter.is_open
        assert calls == [1]
        adapter.close()

    def test_predict_before_open_raises(self, case: Any, batch: np.ndarray) -> None:
        adapter, *_ = case
        with pytest.raises(AdapterError, match=r"predict\(\) called before open\(\)"):
            adapter.predict({"input": batch})

    def test_close_twice_and_predict_after_close(self, case: Any, batch: np.ndarray) -> None:
        adapter, *_ = case
        adapter.open()
        adapter.close()
        adapter.close()
        assert not adapter.is_open
        with pytest.raises(AdapterError, match="before open"):
            adapter.predict({"input": batch})

    def test_reopen_after_close_predicts_again(self, case: Any, batch: np.ndarray) -> None:
        adapter, name, reference, *_ = case
        adapter.open()
        adapter.close()
        adapter.open()
        out = adapter.predict({"input": batch})[name]
        np.testing.assert_allclose(out, reference(batch), rtol=1e-5, atol=1e-6)
        adapter.close()

    def test_context_manager(self, case: Any, batch: np.ndarray) -> None:
        adapter, *_ = case
        with adapter as opened:
            assert opened is adapter
            assert adapter.is_open
        assert not adapter.is_open

    def test_outputs_match_numpy_reference_and_are_deterministic(
        self, case: Any, batch: np.ndarray
    ) -> None:
        adapter, name, reference, *_ = case
        with adapter:
            first = adapter.predict({"input": batch})
            second = adapter.predict({"input": batch})
        assert next(iter(first)) == name
        assert first[name].shape == (batch.shape[0], 3)
        np.testing.assert_allclose(first[name], reference(batch), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(first[name], second[name])

    def test_info_is_populated(self, case: Any) -> None:
        adapter, _, _, runtime, module = case
        with adapter:
            info = adapter.info()
        assert isinstance(info, AdapterInfo)
        assert info.runtime == runtime == adapter.runtime
        mod = importlib.import_module(module)
        expected = mod.python_version() if module == "platform" else mod.__version__
        assert info.runtime_version == expected
        assert info.device == "cpu"
        assert info.model_id

    def test_input_spec_names_the_input(self, case: Any) -> None:
        adapter, *_ = case
        with adapter:
            assert list(adapter.input_spec()) == ["input"]

    def test_wrong_input_name_raises(self, case: Any, batch: np.ndarray) -> None:
        adapter, *_ = case
        with adapter, pytest.raises(InputMismatchError, match=r"input names do not match.*'x'"):
            adapter.predict({"x": batch})
