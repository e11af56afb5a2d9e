"""Tests of the demo's building blocks: exporter checks, pruning, measurements, spec template."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import numpy_helper
from scipy.special import softmax as scipy_softmax

from compval.demo._data import ink_levels
from compval.demo._models import centered_logits, mlp_logits, softmax
from compval.demo._onnx import (
    check_outputs_match,
    count_parameters,
    export_mlp,
    prune_gemm_weights,
    weight_sparsity,
)
from compval.demo._spec import render_spec, write_spec
from compval.errors import InternalError
from compval.spec._model import AcceptanceSpec


def _random_mlp(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = [64, 16, 10]
    coefs = [rng.normal(size=(a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    intercepts = [rng.normal(size=b).astype(np.float32) for b in sizes[1:]]
    return coefs, intercepts


def _export(tmp_path: Path, seed: int = 0) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    coefs, intercepts = _random_mlp(seed)
    path = tmp_path / "mlp.onnx"
    export_mlp(coefs, intercepts, path, graph_name="mlp", doc="test")
    return path, coefs, intercepts


def test_exported_graph_computes_the_mlp(tmp_path: Path) -> None:
    path, coefs, intercepts = _export(tmp_path)
    x = np.random.default_rng(1).integers(0, 17, size=(20, 64)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"input": x})[0]
    hidden = np.maximum(x / 16.0 @ coefs[0] + intercepts[0], 0.0)
    expected = scipy_softmax(hidden @ coefs[1] + intercepts[1], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(softmax(mlp_logits(coefs, intercepts, x)), expected, atol=1e-6)


def test_centered_logits_keep_softmax_and_have_zero_mean() -> None:
    logits = np.random.default_rng(2).normal(scale=10.0, size=(7, 10))
    centered = centered_logits(logits)
    np.testing.assert_allclose(centered.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(softmax(centered), scipy_softmax(logits, axis=1), rtol=1e-12)


def test_prune_zeroes_exactly_the_smallest_magnitudes(tmp_path: Path) -> None:
    path, coefs, intercepts = _export(tmp_path)
    pruned_path = tmp_path / "pruned.onnx"
    prune_gemm_weights(path, pruned_path, fraction=0.25)
    model = onnx.load(str(pruned_path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for i, weight in enumerate(coefs):
        pruned = inits[f"W{i}"]
        n_zero = round(0.25 * weight.size)
        threshold = np.sort(np.abs(weight), axis=None)[n_zero - 1]
        assert np.count_nonzero(pruned == 0) == n_zero
        np.testing.assert_array_equal(pruned == 0, np.abs(weight) <= threshold)
        np.testing.assert_array_equal(inits[f"B{i}"], intercepts[i])
    assert weight_sparsity(pruned_path) == pytest.approx(0.25, abs=1e-3)
    assert weight_sparsity(path) == 0.0


def test_count_parameters_skips_scalars(tmp_path: Path) -> None:
    path, coefs, intercepts = _export(tmp_path)
    assert count_parameters(path) == sum(a.size for a in [*coefs, *intercepts])


def test_ink_levels_bucket_by_total_intensity() -> None:
    x = np.zeros((4, 64), dtype=np.float32)
    x[:, 0] = [1.0, 5.0, 9.0, 10.0]
    levels = ink_levels(x, (5.0, 10.0))
    assert levels.tolist() == ["light", "medium", "medium", "heavy"]


def test_check_outputs_match_returns_the_difference() -> None:
    a = np.full((3, 2), 0.5)
    assert check_outputs_match(a + 1e-6, a, what="m") == pytest.approx(1e-6)


def test_check_outputs_match_refuses_a_large_difference() -> None:
    a = np.full((3, 2), 0.5)
    with pytest.raises(InternalError, match=r"demo model 'm'.*got max abs diff 0\.001.*< 0\.0001"):
        check_outputs_match(a + 1e-3, a, what="m")


def test_check_outputs_match_refuses_nan() -> None:
    a = np.full((3, 2), 0.5)
    with pytest.raises(InternalError, match="got max abs diff nan"):
        check_outputs_match(a * np.nan, a, what="m")


def test_check_outputs_match_refuses_a_shape_mismatch() -> None:
    with pytest.raises(InternalError, match=r"shape differs.*got \(3, 2\), expected \(3, 3\)"):
        check_outputs_match(np.zeros((3, 2)), np.zeros((3, 3)), what="m")


def test_export_refuses_an_inconsistent_graph(tmp_path: Path) -> None:
    coefs = [np.zeros((64, 8), np.float32), np.zeros((5, 10), np.float32)]
    intercepts = [np.zeros(8, np.float32), np.zeros(10, np.float32)]
    with pytest.raises(InternalError, match=r"fails onnx\.checker\.check_model"):
        export_mlp(coefs, intercepts, tmp_path / "bad.onnx", graph_name="bad", doc="")
    assert not (tmp_path / "bad.onnx").exists()


def test_rendered_spec_is_valid() -> None:
    text = render_spec(
        reference="models/fp32.onnx", candidates={"c": "models/c.onnx"}, data="d.parquet", seed=3
    )
    spec = AcceptanceSpec.model_validate(yaml.safe_load(text))
    assert [c.name for c in spec.candidates] == ["c"]
    assert spec.seed == 3


def test_write_spec_refuses_an_invalid_spec(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match="not a valid acceptance spec"):
        write_spec(tmp_path / "demo.yaml", "version: 2\n")
    with pytest.raises(InternalError, match="not a valid acceptance spec"):
        write_spec(tmp_path / "demo.yaml", "version: [1\n")
    assert not (tmp_path / "demo.yaml").exists()
