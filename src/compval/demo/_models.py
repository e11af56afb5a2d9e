"""The demo's models: the scikit-learn teacher and student, and the onnxruntime quantizers.

Distillation choice: the student (``MLPRegressor``, one hidden layer) regresses the teacher's
logits after subtracting each row's mean (logit matching, Ba & Caruana 2014). Softmax ignores a
per-row shift, so centring removes the one degree of freedom the student should not spend
capacity on; Hinton et al. (2015) show that soft-target distillation at high temperature reduces
to exactly this objective with zero-mean logits. It needs no temperature to choose, and the
student's output feeds the same Softmax node as the teacher's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.demo._onnx import INPUT_NAME, PIXEL_SCALE
from compval.types import Array

__all__ = [
    "CALIBRATION_ROWS",
    "STUDENT_HIDDEN",
    "TEACHER_HIDDEN",
    "centered_logits",
    "mlp_logits",
    "preprocess_for_quantization",
    "quantize_dynamic_int8",
    "quantize_static_qdq",
    "softmax",
    "train_student",
    "train_teacher",
]

TEACHER_HIDDEN = (128, 64)
STUDENT_HIDDEN = (24,)
#: Training rows fed through the model to calibrate the static quantizer's activation ranges.
CALIBRATION_ROWS = 300
# Iteration caps well above what Adam needs on this data (about 200 for the teacher, under 2000
# for the student), so training stops on scikit-learn's own tolerance, not on the cap.
_TEACHER_MAX_ITER = 1000
_STUDENT_MAX_ITER = 4000


def train_teacher(x_train: Array, y_train: Array, *, seed: int) -> Any:
    """Fit the reference: ``MLPClassifier`` (128, 64), ReLU, Adam, on pixels scaled by 1/16.

    Args:
        x_train: Raw pixel values, shape ``(n, 64)``.
        y_train: Labels 0..9.
        seed: ``random_state`` of the weight initialisation and mini-batch shuffling.

    Returns:
        The fitted ``sklearn.neural_network.MLPClassifier``.
    """
    neural_network = lazy_import("sklearn.neural_network", extra="sklearn")
    model = neural_network.MLPClassifier(
        hidden_layer_sizes=TEACHER_HIDDEN,
        activation="relu",
        solver="adam",
        max_iter=_TEACHER_MAX_ITER,
        random_state=seed,
    )
    return model.fit(np.asarray(x_train, np.float64) * PIXEL_SCALE, y_train)


def mlp_logits(coefs: list[Array], intercepts: list[Array], x: Array) -> Array:
    """Pre-softmax outputs of a ReLU MLP on raw pixels, in float64.

    Args:
        coefs: Weight matrices, ``(fan_in, fan_out)``.
        intercepts: Bias vectors.
        x: Raw pixel values, shape ``(n, 64)``.

    Returns:
        The last layer's outputs, shape ``(n, fan_out of the last layer)``.
    """
    hidden = np.asarray(x, np.float64) * PIXEL_SCALE
    last = len(coefs) - 1
    for i, (weight, bias) in enumerate(zip(coefs, intercepts, strict=True)):
        hidden = hidden @ np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
        if i < last:
            hidden = np.maximum(hidden, 0.0)
    return hidden


def centered_logits(logits: Array) -> Array:
    """Subtract each row's mean: the distillation target (see the module docstring).

    Args:
        logits: Shape ``(n, n_classes)``.

    Returns:
        Logits with zero mean per row; their softmax is unchanged.
    """
    return np.asarray(logits - logits.mean(axis=1, keepdims=True))


def softmax(logits: Array) -> Array:
    """Row-wise softmax, stable for large logits.

    Args:
        logits: Shape ``(n, n_classes)``.

    Returns:
        Probabilities, each row summing to 1.
    """
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def train_student(x_train: Array, targets: Array, *, seed: int) -> Any:
    """Fit the student: ``MLPRegressor`` (24,), ReLU, Adam, regressing the teacher's logits.

    Args:
        x_train: Raw pixel values, shape ``(n, 64)``.
        targets: The teacher's centred logits on ``x_train``, shape ``(n, 10)``.
        seed: ``random_state`` of the weight initialisation and mini-batch shuffling.

    Returns:
        The fitted ``sklearn.neural_network.MLPRegressor``; its output is logits.
    """
    neural_network = lazy_import("sklearn.neural_network", extra="sklearn")
    model = neural_network.MLPRegressor(
        hidden_layer_sizes=STUDENT_HIDDEN,
        activation="relu",
        solver="adam",
        max_iter=_STUDENT_MAX_ITER,
        random_state=seed,
    )
    return model.fit(np.asarray(x_train, np.float64) * PIXEL_SCALE, targets)


def preprocess_for_quantization(source: Path, destination: Path) -> None:
    """Run onnxruntime's ``quant_pre_process`` (shape inference and graph optimisation).

    onnxruntime recommends it before either quantizer, and warns when it was skipped.

    Args:
        source: The float model.
        destination: Where to write the prepared float model.
    """
    quantization = lazy_import("onnxruntime.quantization", extra="onnx")
    quantization.quant_pre_process(str(source), str(destination))


def quantize_dynamic_int8(source: Path, destination: Path) -> dict[str, Any]:
    """Quantize weights to int8 with ``quantize_dynamic``; activations are quantized at run time.

    Args:
        source: The prepared float model (see ``preprocess_for_quantization``).
        destination: Where to write the quantized model.

    Returns:
        The options used, for the build summary.
    """
    quantization = lazy_import("onnxruntime.quantization", extra="onnx")
    quantization.quantize_dynamic(
        str(source), str(destination), weight_type=quantization.QuantType.QInt8
    )
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8"}


class _CalibrationReader:
    """Feeds calibration rows in batches; onnxruntime's ``CalibrationDataReader`` protocol.

    That ABC accepts any class with ``get_next`` (its ``__subclasshook__``), so this need not
    subclass it, which keeps onnxruntime out of module import.
    """

    def __init__(self, x: Array, batch_size: int) -> None:
        self._batches = iter(
            [
                {INPUT_NAME: np.ascontiguousarray(x[start : start + batch_size], np.float32)}
                for start in range(0, len(x), batch_size)
            ]
        )

    def get_next(self) -> dict[str, Array] | None:
        return next(self._batches, None)


def quantize_static_qdq(
    source: Path, destination: Path, calibration_x: Array, *, batch_size: int
) -> dict[str, Any]:
    """Quantize weights and activations to int8 with ``quantize_static`` in QDQ format.

    onnxruntime's defaults are kept for everything the brief does not fix (per-tensor scales,
    MinMax calibration, int8 activations, every supported op quantized, the final Softmax
    included): the demo shows what the tool does, not a tuned result.

    Args:
        source: The prepared float model (see ``preprocess_for_quantization``).
        destination: Where to write the quantized model.
        calibration_x: Raw pixel rows to calibrate activation ranges on.
        batch_size: Rows per calibration batch.

    Returns:
        The options used, for the build summary.
    """
    quantization = lazy_import("onnxruntime.quantization", extra="onnx")

    quantization.quantize_static(
        str(source),
        str(destination),
        _CalibrationReader(calibration_x, batch_size),
        quant_format=quantization.QuantFormat.QDQ,
        weight_type=quantization.QuantType.QInt8,
        activation_type=quantization.QuantType.QInt8,
        per_channel=False,
        calibrate_method=quantization.CalibrationMethod.MinMax,
    )
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "quant_format": "QDQ",
        "weight_type": "QInt8",
        "activation_type": "QInt8",
        "per_channel": False,
        "calibrate_method": "MinMax",
        "calibration_rows": len(calibration_x),
    }
