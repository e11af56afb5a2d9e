"""Shared benchmark fixtures: a float ONNX MLP, its dynamic INT8 version and labelled data."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_mlp(
    directory: Path, *, n_features: int = 64, hidden: int = 256, n_classes: int = 10, seed: int = 0
) -> tuple[Path, Path]:
    """Write fp32.onnx (Gemm-Relu-Gemm-Relu-Gemm-Softmax) and int8.onnx (dynamic quantization)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(seed)
    dims = [n_features, hidden, hidden, n_classes]
    inits, nodes, prev = [], [], "input"
    for i in range(3):
        w = (rng.normal(size=(dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(np.float32)
        b = (rng.normal(size=dims[i + 1]) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out]))
        if i < 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        prev = out
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    directory.mkdir(parents=True, exist_ok=True)
    fp32, int8 = directory / "fp32.onnx", directory / "int8.onnx"
    onnx.save(model, fp32)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def make_data(
    fp32: Path, *, rows: int, n_features: int = 64, seed: int = 1, segments: int = 0
) -> dict[str, np.ndarray]:
    """Features, labels (the float model's argmax, 10% flipped) and an optional segment column."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n_features)).astype(np.float32)
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    pred = np.concatenate(
        [sess.run(None, {"input": x[i : i + 8192]})[0].argmax(1) for i in range(0, rows, 8192)]
    )
    flip = rng.random(rows) < 0.1
    y = np.where(flip, rng.integers(0, 10, rows), pred)
    out = {"x": x, "y": y}
    if segments:
        out["segment"] = rng.integers(0, segments, rows)
    return out
