"""Real models for the robustness tests: a scikit-learn MLP on the digits, exported by skl2onnx
and quantized by onnxruntime's quantize_static (QDQ) twice: calibrated on the training rows
(well calibrated), and calibrated on the same rows shrunk towards zero (narrow), so that its
activation ranges are too small and larger inputs clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
quantization = pytest.importorskip("onnxruntime.quantization")
skl2onnx = pytest.importorskip("skl2onnx")

#: The narrow model is calibrated on rows multiplied by this.
NARROW = 0.3


@dataclass(frozen=True)
class Models:
    x: np.ndarray  # held-out rows (float32, 64 pixels in [0, 1])
    y: np.ndarray
    fp32: Path
    qdq: Path
    narrow: Path


class _Reader:
    def __init__(self, x: np.ndarray) -> None:
        self._batches = iter([{"input": x[i : i + 50]} for i in range(0, len(x), 50)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _quantize(prepared: Path, out: Path, calibration: np.ndarray) -> None:
    quantization.quantize_static(
        str(prepared),
        str(out),
        _Reader(calibration),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=False,
        weight_type=quantization.QuantType.QInt8,
        activation_type=quantization.QuantType.QInt8,
    )


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    root = tmp_path_factory.mktemp("robustness")
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
    _quantize(prepared, qdq, x[:300])
    narrow = root / "narrow.onnx"
    _quantize(prepared, narrow, x[:300] * NARROW)
    return Models(x=x[1000:], y=y[1000:], fp32=fp32, qdq=qdq, narrow=narrow)
