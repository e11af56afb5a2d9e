"""Batch-size and run consistency on real dynamic and static int8 models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compval.numerics import measure_batch_consistency

ort = pytest.importorskip("onnxruntime")


def _predict(path: Path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda inputs: session.run(["probabilities"], dict(inputs))[0]


def _rows_with_an_outlier(x: np.ndarray) -> np.ndarray:
    # One bright row widens the dynamic quantizer's range for every row in its batch.
    return np.concatenate([np.full((1, x.shape[1]), 20, np.float32), x[:255]])


def test_dynamic_int8_flips_with_batch_composition(models) -> None:
    x = _rows_with_an_outlier(models.x)
    predict = _predict(models.dynamic)
    result = measure_batch_consistency(predict, {"input": x}, batch_size=256)
    single = np.concatenate([predict({"input": x[i : i + 1]}) for i in range(len(x))])
    batched = predict({"input": x})
    flips = int(np.sum(single.argmax(1) != batched.argmax(1)))
    assert flips >= 1
    assert result.flipped_rows == flips
    assert result.flip_rate == pytest.approx(flips / len(x))
    assert result.max_abs_diff == pytest.approx(np.max(np.abs(single - batched)), rel=1e-6)
    assert result.run_max_abs_diff == 0.0
    assert (result.rows, result.batch_size) == (256, 256)


def test_static_int8_does_not_depend_on_the_batch(models) -> None:
    x = _rows_with_an_outlier(models.x)
    result = measure_batch_consistency(_predict(models.qdq), {"input": x}, batch_size=256)
    assert result.flipped_rows == 0 and result.max_abs_diff == 0.0


def test_outputs_that_are_not_scores_have_no_flip_rate() -> None:
    def predict(inputs):
        return inputs["x"][:, 0]  # a float vector: a regression output

    result = measure_batch_consistency(predict, {"x": np.ones((5, 2))}, batch_size=2)
    assert result.flip_rate is None and result.flipped_rows is None
    assert result.max_abs_diff == 0.0


def test_error_by_row_norm_matches_pandas_qcut() -> None:
    pd = pytest.importorskip("pandas")
    from compval.numerics import error_by_row_norm

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)) * rng.uniform(0.1, 5.0, size=(200, 1))
    reference = rng.normal(size=(200, 4))
    norms = np.linalg.norm(x, axis=1)
    # The candidate's error grows with the input's norm, as a clipped quantization grid's does.
    candidate = reference + norms[:, None] ** 2 * 0.01 * rng.normal(size=(200, 4))
    bins = error_by_row_norm({"x": x}, reference, candidate, bins=5)
    labels = pd.qcut(norms, 5, labels=False)
    diff = np.abs(candidate - reference)
    assert [b.rows for b in bins] == [int(np.sum(labels == k)) for k in range(5)]
    for k, b in enumerate(bins):
        mask = labels == k
        assert (b.norm_low, b.norm_high) == (norms[mask].min(), norms[mask].max())
        assert b.mean_abs_diff == pytest.approx(diff[mask].mean())
        assert b.max_abs_diff == pytest.approx(diff[mask].max())
        agree = reference[mask].argmax(1) == candidate[mask].argmax(1)
        assert b.agreement == pytest.approx(agree.mean())
    assert bins[-1].mean_abs_diff > 10 * bins[0].mean_abs_diff
