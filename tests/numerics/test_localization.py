"""Per-layer localization and saturation on real quantized models, against independent numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import distance

from compval.numerics import analyze_onnx_pair

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _feeds(x: np.ndarray, batch: int = 64) -> list[dict[str, np.ndarray]]:
    return [{"input": x[i : i + batch]} for i in range(0, len(x), batch)]


def _run(path: Path, x: np.ndarray, output: str) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output], {"input": x})[0], dtype=np.float64)


def _float_tensors(path: Path) -> set[str]:
    """Every float tensor a node of the reference produces, from onnx's own shape inference."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    produced = {o for n in model.graph.node for o in n.output}
    return {t for t in produced if types.get(t) == onnx.TensorProto.FLOAT}


def test_static_qdq_every_tensor_is_compared_or_listed(models) -> None:
    x = models.x[:256]
    result = analyze_onnx_pair(models.fp32, models.qdq, _feeds(x), sqnr_threshold_db=20)
    compared = {layer.name for layer in result.layers}
    listed = {u.name for u in result.unmatched if u.side == "reference"}
    assert _float_tensors(models.fp32) <= compared | listed
    assert not compared & listed
    # A calibrated int8 model: nothing falls below 20 dB, and no activation clips much.
    assert result.first_divergent is None
    assert result.layer_min_sqnr_db is not None and result.layer_min_sqnr_db > 20
    assert result.saturation_rate is not None and result.saturation_rate < 0.01


def test_output_errors_match_an_independent_computation(models) -> None:
    x = models.x[:256]
    result = analyze_onnx_pair(models.fp32, models.qdq, _feeds(x), sqnr_threshold_db=20)
    (layer,) = [lay for lay in result.layers if lay.name == "probabilities"]
    ref = _run(models.fp32, x, "probabilities").ravel()
    cand = _run(models.qdq, x, "probabilities").ravel()
    sqnr = 10 * math.log10(np.sum(ref**2) / np.sum((cand - ref) ** 2))
    assert layer.sqnr_db == pytest.approx(sqnr, rel=1e-9)
    assert layer.cosine == pytest.approx(1 - distance.cosine(ref, cand), rel=1e-9)
    assert layer.max_abs_diff == pytest.approx(np.max(np.abs(cand - ref)), rel=1e-9)
    assert layer.mean_abs_diff == pytest.approx(np.mean(np.abs(cand - ref)), rel=1e-9)
    assert layer.candidate_tensor == "probabilities"


def test_broken_activation_scale_is_ranked_first_and_named_first_divergent(models) -> None:
    x = models.x[:256]
    result = analyze_onnx_pair(models.fp32, models.broken, _feeds(x), sqnr_threshold_db=20)
    assert result.layers[0].name == models.broken_tensor
    assert result.first_divergent == models.broken_tensor
    # Downstream tensors inherit the error; their own growth is small next to the culprit's.
    culprit = result.layers[0]
    assert culprit.growth_db > 20
    downstream = [layer for layer in result.layers if layer.order > culprit.order]
    assert downstream and all(layer.growth_db < 5 for layer in downstream)
    assert culprit.candidate_tensor.endswith("_DequantizeLinear_Output")
    worst = result.saturation[0]
    assert worst.tensor == models.broken_tensor
    assert worst.rate > 0.1


def test_saturation_of_the_broken_node_matches_onnxruntime(models) -> None:
    """The clipped share equals the share of onnxruntime's own int8 outputs at the limits,
    less the values whose unclipped rounding lands exactly on a limit."""
    x = models.x[:256]
    result = analyze_onnx_pair(models.fp32, models.broken, _feeds(x), sqnr_threshold_db=20)
    node = next(s for s in result.saturation if s.tensor == models.broken_tensor)
    model = onnx.load(str(models.broken))
    quantize = next(n for n in model.graph.node if n.name == node.node)
    for name in (quantize.output[0], quantize.input[0]):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    q, pre = session.run([quantize.output[0], quantize.input[0]], {"input": x})
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    scale, zero = float(inits[quantize.input[1]]), int(inits[quantize.input[2]])
    at_limit = np.isin(q, [node.qmin, node.qmax])
    exact = np.isin(np.rint(pre.astype(np.float64) / scale) + zero, [node.qmin, node.qmax])
    assert node.rate == pytest.approx(np.mean(at_limit & ~exact), abs=1e-12)
    assert node.elements == q.size


def _identity_pair(tmp_path: Path, scale: float) -> tuple[Path, Path]:
    """reference: y = Identity(x); candidate: y = DQ(Q(x)) with an int8 grid of ``scale``."""
    h, tp = onnx.helper, onnx.TensorProto
    x = h.make_tensor_value_info("input", tp.FLOAT, [None, 9])
    y = h.make_tensor_value_info("y", tp.FLOAT, [None, 9])
    ref = h.make_model(
        h.make_graph([h.make_node("Identity", ["input"], ["y"], name="id")], "r", [x], [y]),
        opset_imports=[h.make_opsetid("", 17)],
    )
    inits = [
        onnx.numpy_helper.from_array(np.array(scale, np.float32), "s"),
        onnx.numpy_helper.from_array(np.array(0, np.int8), "z"),
    ]
    nodes = [
        h.make_node("QuantizeLinear", ["input", "s", "z"], ["q"], name="quant"),
        h.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant"),
    ]
    cand = h.make_model(
        h.make_graph(nodes, "c", [x], [y], inits), opset_imports=[h.make_opsetid("", 17)]
    )
    paths = tmp_path / "ref.onnx", tmp_path / "cand.onnx"
    onnx.save(ref, str(paths[0]))
    onnx.save(cand, str(paths[1]))
    return paths


def test_hand_computed_saturation_and_sqnr(tmp_path: Path) -> None:
    ref, cand = _identity_pair(tmp_path, 0.1)
    row = np.array([[-20, -12.8, -12.7, 0, 5, 12.7, 12.74, 13, 100]], np.float32)
    result = analyze_onnx_pair(ref, cand, [{"input": row}], sqnr_threshold_db=20)
    # x / 0.1 rounds to -200, -128, -127, 0, 50, 127, 127, 130, 1000: three lie beyond
    # [-128, 127] and are clipped; -128 is on the grid.
    (node,) = result.saturation
    assert (node.rate, node.qmin, node.qmax, node.elements) == (3 / 9, -128, 127, 9)
    assert result.saturation_rate == pytest.approx(3 / 9)
    dq = np.array([-12.8, -12.8, -12.7, 0, 5, 12.7, 12.7, 12.7, 12.7])
    x = row.astype(np.float64).ravel()
    expected = 10 * math.log10(np.sum(x**2) / np.sum((dq - x) ** 2))
    (layer,) = [lay for lay in result.layers if lay.name == "y"]
    assert layer.sqnr_db == pytest.approx(expected, rel=1e-5)
    assert layer.op_type == "Identity"
    # "q" is an int8 tensor, never a float one; nothing of the candidate goes unexplained.
    assert {u.name for u in result.unmatched} == set()


def test_identical_models_are_exact(models) -> None:
    result = analyze_onnx_pair(
        models.fp32, models.fp32, _feeds(models.x[:64]), sqnr_threshold_db=20
    )
    assert result.layers and all(math.isinf(layer.sqnr_db) for layer in result.layers)
    assert all(layer.growth_db == 0 and layer.noise_added == 0 for layer in result.layers)
    assert result.first_divergent is None and result.unmatched == []
    assert result.saturation_rate is None
