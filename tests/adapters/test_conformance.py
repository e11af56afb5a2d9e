"""The contract every adapter must meet, checked on the same tiny linear model."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import (
    AdapterInfo,
    CallableAdapter,
    LiteRTAdapter,
    ModelAdapter,
    OnnxRuntimeAdapter,
    SklearnAdapter,
    TorchAdapter,
)
from compval.errors import AdapterError, InputMismatchError

KINDS = ["onnxruntime", "torch", "sklearn", "callable", "litert", "onnxruntime_ort"]


@pytest.fixture(scope="session")
def tflite_path(tmp_path_factory: pytest.TempPathFactory, weights: Any) -> Path:
    """The linear model as a float LiteRT flatbuffer (tests/adapters/data/make_tflite.py)."""
    pytest.importorskip("tflite", reason="the .tflite writer needs the tflite schema package")
    spec = importlib.util.spec_from_file_location(
        "make_tflite", Path(__file__).parent / "data" / "make_tflite.py"
    )
    assert spec is not None and spec.loader is not None
    make_tflite = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_tflite", make_tflite)  # its dataclasses look it up
    spec.loader.exec_module(make_tflite)
    path = tmp_path_factory.mktemp("litert") / "linear.tflite"
    path.write_bytes(make_tflite.build_float([weights], input_name="input", output_name="logits"))
    return path


@pytest.fixture(scope="session")
def ort_path(tmp_path_factory: pytest.TempPathFactory, weights: Any, write_onnx: Any) -> Path:
    """The linear ONNX model saved in ONNX Runtime's mobile format (.ort).

    The way onnxruntime.tools.convert_onnx_models_to_ort writes it (a session saving its
    optimized model in ORT format); tests/adapters/test_ort_format.py runs the tool itself.
    """
    import onnxruntime as ort

    folder = tmp_path_factory.mktemp("ort")
    onnx = write_onnx(folder / "linear.onnx", *weights)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(folder / "linear.ort")
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    return folder / "linear.ort"


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
    if kind == "onnxruntime_ort":
        ort_file = request.getfixturevalue("ort_path")
        adapter = OnnxRuntimeAdapter(ort_file, name="m", threads=1)
        return adapter, "logits", linear, "onnxruntime", "onnxruntime"
    if kind == "litert":
        pytest.importorskip("ai_edge_litert", reason="needs the litert extra")
        adapter = LiteRTAdapter(request.getfixturevalue("tflite_path"), name="m", threads=1)
        return adapter, "logits", linear, "litert", "ai_edge_litert"
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
