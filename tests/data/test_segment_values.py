"""Segment values: missing ones apart from the text ``<NA>``, and the cap on distinct values.

The end-to-end behaviour is tested through the CLI in ``tests/cli/test_hardening_cli.py``;
these pin the rules on each data source and on the segment table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from compval.data import ArrayDataset, load_dataset
from compval.errors import DataError
from compval.metrics import SegmentTable
from compval.spec import DataRef

TEXT = np.array([None, "<NA>", '"<NA>"', "a", np.nan, "a"], dtype=object)
#: What each of TEXT becomes: one reading per name.
CLEANED = ["<NA>", '"<NA>"', '"\\"<NA>\\""', "a", "<NA>", "a"]


def _segments(ds: Any, column: str) -> list[object]:
    return np.concatenate([b.segments[column] for b in ds.batches(4)]).tolist()


def test_arrays_keep_missing_apart_from_the_text_na() -> None:
    ds = ArrayDataset(np.zeros((6, 1)), segments={"kind": TEXT})
    assert _segments(ds, "kind") == CLEANED
    assert ds.segment_value_counts == {"kind": {"<NA>": 2, '"<NA>"': 1, '"\\"<NA>\\""': 1, "a": 2}}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_files_keep_missing_apart_from_the_text_na(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"x": np.arange(6.0), "kind": TEXT})
    path = tmp_path / f"d{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    ds = load_dataset(DataRef(path=str(path), segments=["kind"]), base_dir=tmp_path)
    assert _segments(ds, "kind") == CLEANED
    counts = ds.segment_value_counts
    # Counted raw at open: the missing values are one value, the two texts two others.
    assert sorted(counts["kind"].values()) == [1, 1, 2, 2]


def test_segment_names_of_a_numeric_column_with_missing_values() -> None:
    table = SegmentTable()
    values = ArrayDataset(np.zeros((4, 1)), segments={"s": [2.0, np.nan, 1.0, 2.0]})
    ids = table.ids_for("s", next(iter(values.batches(4))).segments["s"])
    assert [table.names[i] for i in ids] == ["s=2", "s=<NA>", "s=1", "s=2"]
    assert table.values_of("s") == 3


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npz"])
def test_every_file_format_caps_segment_values_at_open(tmp_path: Path, suffix: str) -> None:
    ids = np.arange(50).astype(str)
    path = tmp_path / f"d{suffix}"
    if suffix == ".npz":
        np.savez(path, x=np.zeros((50, 1)), shop=ids)
    else:
        frame = pd.DataFrame({"x": np.zeros(50), "shop": ids})
        frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    ref = {"path": str(path), "segments": ["shop"]}
    with pytest.raises(DataError, match=r"'shop'.* 40 .*got 50.*data\.max_segment_values"):
        load_dataset(DataRef(**ref, max_segment_values=40), base_dir=tmp_path)
    ds = load_dataset(DataRef(**ref, max_segment_values=50), base_dir=tmp_path)
    assert len(ds.segment_value_counts["shop"]) == 50
    assert load_dataset(DataRef(**ref, max_segment_values=None), base_dir=tmp_path)
