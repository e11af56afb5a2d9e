"""In-memory data and the spec's segment columns (the Python API).

An (X, y) tuple has no columns, so ``data.segments`` in the spec cannot be honoured; running
without them would make every per-segment criterion gate nothing, silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from compval.engine import run_validation
from compval.errors import DataError
from compval.spec import spec_from_mapping

SPEC = {
    "version": 1,
    "reference": {"name": "ref"},
    "candidates": [{"name": "cand"}],
    "data": {"path": "in-memory", "labels": "y", "segments": ["size_band"]},
    "statistics": {"replicates": 0},
    "criteria": [
        {"id": "per-segment", "metric": "accuracy_score", "max_drop": 0.01, "segment": "*"}
    ],
}


@pytest.fixture(scope="module")
def model_and_data() -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y), x, y


def test_a_dataframe_without_the_segment_column_is_a_data_error(model_and_data: tuple) -> None:
    clf, x, y = model_and_data
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(y=y)
    with pytest.raises(DataError, match="size_band"):
        run_validation(spec_from_mapping(SPEC), reference=clf, candidates={"cand": clf}, data=frame)


def test_tuple_data_with_spec_segments_is_a_data_error(model_and_data: tuple) -> None:
    clf, x, y = model_and_data
    with pytest.raises(DataError, match="size_band") as caught:
        run_validation(
            spec_from_mapping(SPEC), reference=clf, candidates={"cand": clf}, data=(x, y)
        )
    assert "data.segments" in str(caught.value)
