"""Real models for the numerics tests: a scikit-learn MLP on the digits, exported by skl2onnx
and quantized by onnxruntime (static QDQ, a copy with one activation scale broken, dynamic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
quantization = pytest.importorskip("onnxruntime.quantization")
skl2onnx = pytest.importorskip("skl2onnx")


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


class _Reader:
    def __init__(self, x: np.ndarray) -> None:
        self._batches = iter([{"input": x[i : i + 50]} for i in range(0, len(x), 50)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from onnx import numpy_helper
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    root = tmp_path_factory.mktemp("numerics")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0).fit(
        x[:1000], y[:1000]
    )
    fp32 = root / "fp32.onnx"
    model = skl2onnx.convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    fp32.write_bytes(model.SerializeToString())
    prepared = root / "prepared.onnx"
    quantization.quant_pre_process(str(fp32), str(prepared))
    qdq = root / "qdq.onnx"
    quantization.quantize_static(
        str(prepared),
        str(qdq),
        _Reader(x[:300]),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=False,
        weight_type=quantization.QuantType.QInt8,
        activation_type=quantization.QuantType.QInt8,
    )
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
    np.savez(data, x=x[1000:], label=y[1000:])
    return Models(
        x=x[1000:],
        y=y[1000:],
        data=data,
        fp32=fp32,
        qdq=qdq,
        broken=broken,
        broken_tensor=str(target.input[0]),
        dynamic=dynamic,
    )
