"""ONNX side of the demo: export MLP weights as a graph, prune it, inspect and run models.

Every exported model takes raw pixels: its first node multiplies by 1/16, the scaling the
scikit-learn models were trained with, so the validation data needs no preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.demo._data import N_FEATURES
from compval.errors import InternalError
from compval.types import Array

__all__ = [
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "PIXEL_SCALE",
    "check_outputs_match",
    "count_parameters",
    "describe_ops",
    "export_mlp",
    "prune_gemm_weights",
    "run_model",
    "weight_sparsity",
]

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 17
#: IR version 8 is the one that introduced opset 17; older onnxruntime releases refuse newer IRs.
IR_VERSION = 8
PIXEL_SCALE = 1.0 / 16.0
#: Tolerance between onnxruntime and the numpy/sklearn computation of the same float model.
EXPORT_TOLERANCE = 1e-4


def export_mlp(
    coefs: Sequence[Array],
    intercepts: Sequence[Array],
    path: Path,
    *,
    graph_name: str,
    doc: str,
) -> None:
    """Write a ReLU MLP as ``Mul(1/16) -> (Gemm -> Relu)* -> Gemm -> Softmax``.

    Args:
        coefs: Weight matrices in scikit-learn's layout, ``(fan_in, fan_out)``.
        intercepts: Bias vectors, one per weight matrix.
        path: Destination ``.onnx`` file.
        graph_name: Name of the ONNX graph.
        doc: The model's ``doc_string``: what it is and how it was made.

    Raises:
        InternalError: The graph does not pass ``onnx.checker.check_model``.
    """
    onnx = lazy_import("onnx", extra="onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    initializers = [numpy_helper.from_array(np.asarray([PIXEL_SCALE], np.float32), "pixel_scale")]
    nodes = [helper.make_node("Mul", [INPUT_NAME, "pixel_scale"], ["scaled"], name="scale")]
    current = "scaled"
    last = len(coefs) - 1
    for i, (weight, bias) in enumerate(zip(coefs, intercepts, strict=True)):
        initializers.append(numpy_helper.from_array(np.asarray(weight, np.float32), f"W{i}"))
        initializers.append(numpy_helper.from_array(np.asarray(bias, np.float32), f"B{i}"))
        nodes.append(
            helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [f"gemm{i}"], name=f"gemm{i}")
        )
        current = f"gemm{i}"
        if i < last:
            nodes.append(helper.make_node("Relu", [current], [f"relu{i}"], name=f"relu{i}"))
            current = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [current], [OUTPUT_NAME], name="softmax", axis=-1))
    n_classes = int(np.asarray(coefs[-1]).shape[1])
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["batch", n_classes])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="compval.demo",
        doc_string=doc,
    )
    _check_and_save(model, path)


def prune_gemm_weights(source: Path, destination: Path, *, fraction: float) -> None:
    """Zero the ``fraction`` smallest-magnitude entries of every Gemm weight matrix.

    Unstructured magnitude pruning, per matrix; biases are left alone. Exactly
    ``round(fraction * size)`` entries are zeroed in each matrix (ties broken by position). The
    result is stored dense, so the file is as large as the source's.

    Args:
        source: The float model to prune.
        destination: Where to write the pruned model.
        fraction: Share of each weight matrix to zero, in ``[0, 1]``.
    """
    onnx = lazy_import("onnx", extra="onnx")
    numpy_helper = onnx.numpy_helper
    model = onnx.load(str(source))
    weight_names = {node.input[1] for node in model.graph.node if node.op_type == "Gemm"}
    for initializer in model.graph.initializer:
        if initializer.name not in weight_names:
            continue
        weight = numpy_helper.to_array(initializer).copy()
        n_zero = round(fraction * weight.size)
        order = np.argsort(np.abs(weight), axis=None, kind="stable")
        weight.reshape(-1)[order[:n_zero]] = 0.0
        initializer.CopyFrom(numpy_helper.from_array(weight, initializer.name))
    model.doc_string = (
        f"{model.doc_string} Pruned: the {fraction:.0%} smallest-magnitude entries of each Gemm "
        "weight matrix set to zero (unstructured, stored dense)."
    )
    _check_and_save(model, destination)


def _check_and_save(model: Any, path: Path) -> None:
    onnx = lazy_import("onnx", extra="onnx")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InternalError(
            f"demo model {path.name!r}: the graph fails onnx.checker.check_model. This is a bug "
            "in compval.demo's exporter."
        ) from exc
    onnx.save(model, str(path))


def _initializer_arrays(path: Path) -> list[Array]:
    onnx = lazy_import("onnx", extra="onnx")
    model = onnx.load(str(path))
    return [np.asarray(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer]


def count_parameters(path: Path) -> int:
    """Count the elements of a model's non-scalar initializers (its weights and biases).

    Scalars and one-element tensors (the 1/16 input scale, per-tensor quantization scales and
    zero points) are not parameters, so a quantized model counts the same weights as its source.

    Args:
        path: An ONNX model file.

    Returns:
        The number of parameters.
    """
    return sum(int(a.size) for a in _initializer_arrays(path) if a.size > 1)


def weight_sparsity(path: Path) -> float:
    """Share of exact zeros among the entries of a model's 2-D initializers (weight matrices).

    For a quantized model its stored int8 weights are counted, so a weight that quantized to 0
    counts as zero (int8 weights are symmetric: their zero point is 0).

    Args:
        path: An ONNX model file.

    Returns:
        The fraction of zero weights, or 0.0 when the model has no weight matrix.
    """
    matrices = [a for a in _initializer_arrays(path) if a.ndim == 2]
    total = sum(int(a.size) for a in matrices)
    if total == 0:
        return 0.0
    return sum(int(np.count_nonzero(a == 0)) for a in matrices) / total


def run_model(path: Path, x: Array) -> Array:
    """Run an ONNX model on raw pixels with onnxruntime's CPU provider, single-threaded.

    Args:
        path: The model file.
        x: Raw pixel values, float32, shape ``(n, 64)``.

    Returns:
        The ``probabilities`` output, shape ``(n, n_classes)``.
    """
    ort = lazy_import("onnxruntime", extra="onnx")
    options = ort.SessionOptions()
    # One thread: the demo's matrices are tiny, and results must not depend on the core count.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
    return np.asarray(outputs[0])


def check_outputs_match(onnx_outputs: Array, expected: Array, *, what: str) -> float:
    """Raise unless an exported model reproduces the outputs of the model it was exported from.

    Args:
        onnx_outputs: Outputs of the ONNX model under onnxruntime.
        expected: Outputs of the source model on the same rows.
        what: Name of the model, for the message.

    Returns:
        The maximum absolute difference.

    Raises:
        InternalError: Shapes differ, or the difference is ``EXPORT_TOLERANCE`` or more: the
            exporter is wrong, which is a compval bug.
    """
    got = np.asarray(onnx_outputs, dtype=np.float64)
    want = np.asarray(expected, dtype=np.float64)
    if got.shape != want.shape:
        raise InternalError(
            f"demo model {what!r}: onnxruntime output shape differs from the source model's; "
            f"got {got.shape}, expected {want.shape}. This is a bug in compval.demo's exporter."
        )
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not diff < EXPORT_TOLERANCE:
        raise InternalError(
            f"demo model {what!r}: onnxruntime output differs from the source model's; got max "
            f"abs diff {diff:.3g}, expected < {EXPORT_TOLERANCE:g}. This is a bug in "
            "compval.demo's exporter."
        )
    return diff


def describe_ops(path: Path) -> dict[str, Any]:
    """Count the op types of a model's graph, e.g. ``{"Gemm": 3, "Relu": 2}``.

    Args:
        path: The model file.

    Returns:
        Op type -> number of nodes, sorted by op type.
    """
    onnx = lazy_import("onnx", extra="onnx")
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
