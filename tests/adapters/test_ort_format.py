"""ONNX Runtime's mobile format (.ort): converted here with onnxruntime's own tool."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compval.adapters import OnnxRuntimeAdapter, load_model
from compval.errors import InvalidParameterError, ModelLoadError
from compval.profiling import model_stats
from compval.spec import ModelRef

pytest.importorskip("onnxruntime", reason="needs the onnx extra")


@pytest.fixture(scope="module")
def converted(
    tmp_path_factory: pytest.TempPathFactory, weights: Any, write_onnx: Any
) -> tuple[Path, Path]:
    """(linear.onnx, linear.ort) written by onnxruntime.tools.convert_onnx_models_to_ort."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    folder = tmp_path_factory.mktemp("ort_format")
    onnx = write_onnx(folder / "linear.onnx", *weights)
    with warnings.catch_warnings():
        # The tool leaves its operator-config file open; collected here, not in a later test.
        warnings.simplefilter("ignore", ResourceWarning)
        convert_onnx_models_to_ort(
            onnx, output_dir=folder / "out", optimization_styles=[OptimizationStyle.Fixed]
        )
        gc.collect()
    return onnx, folder / "out" / "linear.ort"


def test_ort_file_runs_like_its_onnx_source(
    converted: tuple[Path, Path], weights: Any, batch: np.ndarray
) -> None:
    onnx, ort_file = converted
    w, b = weights
    adapter = load_model(ModelRef(path=str(ort_file), threads=1), base_dir=Path.cwd())
    assert isinstance(adapter, OnnxRuntimeAdapter)
    with adapter, OnnxRuntimeAdapter(onnx, name="onnx", threads=1) as source:
        out = adapter.predict({"input": batch})["logits"]
        np.testing.assert_array_equal(out, source.predict({"input": batch})["logits"])
        assert adapter.execution_providers() == ("CPUExecutionProvider",)
        assert adapter.inactive_devices() == ()
    expected = batch.astype(np.float64) @ w.astype(np.float64) + b
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_ort_file_is_not_read_as_an_onnx_graph(converted: tuple[Path, Path]) -> None:
    _, ort_file = converted
    with OnnxRuntimeAdapter(ort_file, name="mobile") as adapter:
        assert adapter.model_format == "ort"
        stats = model_stats(adapter, threads=1)
    assert stats.kind == "ort"
    assert stats.size_bytes == ort_file.stat().st_size
    assert stats.operators is None  # the ONNX graph reader is not pointed at a flatbuffer
    assert stats.load_time_ms is not None and stats.load_time_ms > 0


def test_providers_from_the_model_entry(converted: tuple[Path, Path]) -> None:
    _, ort_file = converted
    ref = ModelRef(path=str(ort_file), providers=["CPUExecutionProvider"])
    with load_model(ref, base_dir=Path.cwd()) as adapter:
        assert adapter.execution_providers() == ("CPUExecutionProvider",)
    unknown = ModelRef(path=str(ort_file), providers=["NoSuchExecutionProvider"])
    with pytest.raises(InvalidParameterError, match="not available in this onnxruntime build"):
        load_model(unknown, base_dir=Path.cwd()).open()


def test_providers_refused_for_other_runtimes(tmp_path: Path, torch_linear: Any) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.pt"
    torch.jit.script(torch_linear).save(str(path))
    ref = ModelRef(path=str(path), providers=["CUDAExecutionProvider"])
    with pytest.raises(
        InvalidParameterError, match="'providers' does not apply to the torchscript"
    ):
        load_model(ref, base_dir=Path.cwd())


def test_a_damaged_ort_file_names_the_converter(
    converted: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ort_file = converted
    damaged = tmp_path / "damaged.ort"
    damaged.write_bytes(ort_file.read_bytes()[:64])
    with pytest.raises(ModelLoadError, match=r"ORT format model .*convert_onnx_models_to_ort"):
        OnnxRuntimeAdapter(damaged, name="damaged").open()
