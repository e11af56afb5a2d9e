"""Fixtures shared across test folders.

``digits_onnx``: the real models several suites test on (numerics, robustness, several
datasets): a scikit-learn MLP on the digits exported by skl2onnx with its default options,
prepared by onnxruntime's ``quant_pre_process`` and quantized by ``quantize_static`` (QDQ,
calibrated on 300 training rows). Built once per session; each suite derives its own variants
from ``prepared`` with :func:`quantize_qdq`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# This file holds no doctests. Collected as a doctest module it would be imported under the
# name 'conftest', which the subfolders' conftest.py files hold by then (tests/ is not a
# package): an "import file mismatch" error.
collect_ignore = ["conftest.py"]


@dataclass(frozen=True)
class DigitsOnnx:
    x_train: np.ndarray  # float32 pixels in [0, 1]
    y_train: np.ndarray
    x: np.ndarray  # held-out rows
    y: np.ndarray
    fp32: Path
    prepared: Path  # fp32 after quant_pre_process, the input of every quantization
    qdq: Path

    def quantize(self, out: Path, calibration: np.ndarray) -> Path:
        """A static INT8 QDQ copy of the model, calibrated on ``calibration``."""
        quantize_qdq(self.prepared, out, calibration)
        return out


class _Reader:
    """A calibration data reader of 50-row batches (onnxruntime's CalibrationDataReader)."""

    def __init__(self, x: np.ndarray) -> None:
        self._batches = iter([{"input": x[i : i + 50]} for i in range(0, len(x), 50)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_qdq(prepared: Path, out: Path, calibration: np.ndarray) -> None:
    """Static INT8 QDQ quantization (per tensor), calibrated on ``calibration``."""
    from onnxruntime import quantization

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
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> DigitsOnnx:
    pytest.importorskip("onnx")
    quantization = pytest.importorskip("onnxruntime.quantization")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    root = tmp_path_factory.mktemp("digits_onnx")
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
    quantize_qdq(prepared, qdq, x[:300])
    return DigitsOnnx(
        x_train=x[:1000],
        y_train=y[:1000],
        x=x[1000:],
        y=y[1000:],
        fp32=fp32,
        prepared=prepared,
        qdq=qdq,
    )
