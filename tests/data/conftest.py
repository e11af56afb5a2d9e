"""Shared fixtures for the data tests: a reference frame and a batch collector.

Helpers are handed out as fixtures (not imported) so that this conftest never clashes with
another test directory's conftest module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from compval.data import Dataset

N_ROWS = 257  # prime: no batch size below it divides it


def make_frame(n_rows: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """Mixed-type frame: float/int/float32 features, int label, string+int segments."""
    rng = np.random.default_rng(seed)
    f_float = rng.normal(size=n_rows)
    f_float[[3, 100]] = np.nan
    lang = rng.choice(np.array(["de", "en", "fr"], dtype=object), size=n_rows)
    lang[[0, 5, 200]] = None
    return pd.DataFrame(
        {
            "f_float": f_float,
            "f_int": rng.integers(-50, 50, size=n_rows),
            "f_f32": rng.normal(size=n_rows).astype(np.float32),
            "label": rng.integers(0, 3, size=n_rows),
            "lang": pd.Series(lang, dtype=object),
            "bucket": rng.integers(0, 4, size=n_rows),
        }
    )


def collect(ds: Dataset, batch_size: int) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Concatenate every batch, checking sizes and contiguous int64 row ids on the way."""
    batches = list(ds.batches(batch_size))
    sizes = [len(b) for b in batches]
    assert sum(sizes) == len(ds)
    assert all(s == batch_size for s in sizes[:-1])
    assert 0 < sizes[-1] <= batch_size
    for batch in batches:
        assert batch.row_ids.dtype == np.int64
        assert all(len(v) == len(batch) for v in batch.inputs.values())
    ids = np.concatenate([b.row_ids for b in batches])
    np.testing.assert_array_equal(ids, np.arange(len(ds), dtype=np.int64))
    inputs = {k: np.concatenate([b.inputs[k] for b in batches]) for k in batches[0].inputs}
    labels = None
    if ds.has_labels:
        assert all(b.labels is not None for b in batches)
        labels = np.concatenate([b.labels for b in batches])  # type: ignore[misc]
    else:
        assert all(b.labels is None for b in batches)
    segments = {k: np.concatenate([b.segments[k] for b in batches]) for k in ds.segment_columns}
    return inputs, labels, segments


def expected_segment(values: pd.Series) -> list[Any]:
    """Reference for segment cleaning: pandas' notion of missing, replaced by '<NA>'."""
    return ["<NA>" if pd.isna(v) else v for v in values.tolist()]


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(name="make_frame")
def make_frame_fixture() -> Callable[..., pd.DataFrame]:
    return make_frame


@pytest.fixture(name="collect")
def collect_fixture() -> Callable[[Dataset, int], tuple[dict[str, Any], Any, dict[str, Any]]]:
    return collect


@pytest.fixture(name="expected_segment")
def expected_segment_fixture() -> Callable[[pd.Series], list[Any]]:
    return expected_segment
