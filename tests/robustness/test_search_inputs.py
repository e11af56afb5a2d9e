"""The differential search through ``run_validation`` on a model with two inputs.

The float input is searched; the integer input (a category id) stays at each seed row's value.
The models are linear scores in numpy, so every found case can be replayed by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from compval.adapters import CallableAdapter
from compval.data import ArrayDataset
from compval.engine import run_validation
from compval.errors import DataError
from compval.robustness import write_edge_cases
from compval.spec import AcceptanceSpec

EPS = 0.5
RNG = np.random.default_rng(3)
W = RNG.normal(size=(6, 4))
OFFSET = RNG.normal(size=(5, 4))  # per category id
# The candidate's weights on a coarse grid, as a crude quantization would leave them.
W_Q = np.round(W * 2) / 2


def _model(weights: np.ndarray) -> Any:
    def fn(pixels: np.ndarray, category: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float64) @ weights + OFFSET[category[:, 0]]

    return fn


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, np.ndarray], np.ndarray]:
    pixels = RNG.normal(size=(400, 6)).astype(np.float32)
    category = RNG.integers(0, 5, size=(400, 1)).astype(np.int64)
    labels = (pixels.astype(np.float64) @ W + OFFSET[category[:, 0]]).argmax(1)
    return {"pixels": pixels, "category": category}, labels


def _spec(search: dict[str, Any]) -> AcceptanceSpec:
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {"type": "classification", "outputs": "logits"},
            "reference": {"name": "ref"},
            "candidates": [{"name": "cand"}],
            "data": {"path": "in-memory"},
            "batch_size": 64,
            "statistics": {"replicates": 0, "discovery": False},
            "robustness": {"search": search},
        }
    )


def _run(data: Any, search: dict[str, Any]) -> Any:
    inputs, labels = data
    names = ("pixels", "category")
    return run_validation(
        _spec(search),
        reference=CallableAdapter(_model(W), name="ref", input_names=names),
        candidates={"cand": CallableAdapter(_model(W_Q), name="cand", input_names=names)},
        data=ArrayDataset(inputs, labels=labels),
    )


def test_the_float_input_is_searched_and_the_other_kept(data: Any, tmp_path: Any) -> None:
    inputs, _ = data
    report = _run(data, {"seeds": 40, "epsilon": EPS, "budget": 80})
    assert report.robustness is not None
    assert report.robustness.search is not None
    assert report.robustness.search.input == "pixels"
    (result,) = report.robustness.search_results
    assert result.seeds_with_disagreement >= 5
    (path,) = write_edge_cases(report.robustness, tmp_path)
    edge = np.load(path)
    ids = edge["seed_row_ids"]
    found_pixels, found_category = edge["pixels"], edge["category"]
    assert found_pixels.dtype == np.float32 and found_category.dtype == np.int64
    # The category is each seed row's own; the pixels moved within the ball.
    np.testing.assert_array_equal(found_category, inputs["category"][ids])
    std = inputs["pixels"].astype(np.float64).std(axis=0)
    moved = np.abs(found_pixels.astype(np.float64) - inputs["pixels"][ids]) / std
    assert (moved <= EPS + 1e-6).all()
    # Every case replays by hand: the reference predicts its label, the candidate does not.
    ref = _model(W)(found_pixels, found_category).argmax(1)
    cand = _model(W_Q)(found_pixels, found_category).argmax(1)
    np.testing.assert_array_equal(ref, edge["labels"])
    assert (cand != ref).all()


def test_data_without_a_float_input_is_refused(data: Any) -> None:
    inputs, labels = data
    ints = {
        "pixels": np.round(inputs["pixels"] * 10).astype(np.int64),
        "category": inputs["category"],
    }
    with pytest.raises(DataError, match="hold no float features"):
        _run((ints, labels), {"seeds": 5, "epsilon": EPS, "budget": 10})
