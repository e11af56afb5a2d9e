"""Real models for the numerics tests: the shared digits MLP and its static QDQ model
(``digits_onnx`` in tests/conftest.py), a copy of the QDQ model with one activation scale broken,
and onnxruntime's dynamic quantization of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
quantization = pytest.importorskip("onnxruntime.quantization")


@dataclass(frozen=True)
class Models:
    x: np.ndarray
    y: np.ndarray
    data: Path
    fp32: Path
    qdq: Path
    broken: Path
    broken_tensor: str
    dynamic: Path


@pytest.fixture(scope="session")
def models(digits_onnx: Any, tmp_path_factory: pytest.TempPathFactory) -> Models:
    from onnx import numpy_helper

    root = tmp_path_factory.mktemp("numerics")
    x, y = digits_onnx.x, digits_onnx.y
    prepared, qdq = digits_onnx.prepared, digits_onnx.qdq
    dynamic = root / "dynamic.onnx"
    quantization.quantize_dynamic(
        str(prepared), str(dynamic), weight_type=quantization.QuantType.QInt8
    )
    # Break one activation scale in the middle of the network: the second hidden layer's
    # output is quantized on a grid 50 times too fine, so most of its values clip.
    broken_model = onnx.load(str(qdq))
    quantize_nodes = [n for n in broken_model.graph.node if n.op_type == "QuantizeLinear"]
    target = quantize_nodes[len(quantize_nodes) // 2]
    for init in broken_model.graph.initializer:
        if init.name == target.input[1]:
            scale = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array((scale / 50).astype(scale.dtype), init.name))
    broken = root / "broken.onnx"
    onnx.save(broken_model, str(broken))
    data = root / "digits.npz"
    np.savez(data, x=x, label=y)
    return Models(
        x=x,
        y=y,
        data=data,
        fp32=digits_onnx.fp32,
        qdq=qdq,
        broken=broken,
        broken_tensor=str(target.input[0]),
        dynamic=dynamic,
    )
