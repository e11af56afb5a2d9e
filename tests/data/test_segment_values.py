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


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("with_nulls", [False, True])
def test_parquet_text_segments_read_dictionary_encoded_equal_pandas(
    tmp_path: Path, large: bool, with_nulls: bool
) -> None:
    # Text segment columns are read dictionary-encoded; row groups with different
    # dictionaries, batches across row groups, nulls and large_string give what pandas reads.
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    words = rng.choice(["north", "south", "<NA>", "é", ""], size=1000).astype(object)
    if with_nulls:
        words[rng.random(1000) < 0.1] = None
    kind = pa.large_string() if large else pa.string()
    table = pa.table({"x": np.arange(1000.0), "region": pa.array(words.tolist(), kind)})
    path = tmp_path / "regions.parquet"
    pq.write_table(table, path, row_group_size=300)
    ds = load_dataset(DataRef(path=str(path), segments=["region"]), base_dir=tmp_path)
    expected = pd.read_parquet(path)["region"].tolist()
    missing = "<NA>"
    cleaned = [missing if v is None else ('"<NA>"' if v == "<NA>" else v) for v in expected]
    got = np.concatenate([b.segments["region"] for b in ds.batches(128)]).tolist()
    assert got == cleaned
    # Counted raw at open: a missing value and the text "<NA>" are two values.
    counts = pd.Series(expected, dtype=object).value_counts(dropna=False)
    assert sorted(ds.segment_value_counts["region"].values()) == sorted(counts.tolist())


@pytest.mark.parametrize("large", [False, True])
def test_growing_parquet_dictionaries_decode_only_the_words_used(
    tmp_path: Path, large: bool
) -> None:
    # Read dictionary-encoded, a column chunk's dictionary holds every value read so far: an
    # id-like column's later batches index a dictionary far larger than themselves.
    import pyarrow as pa
    import pyarrow.parquet as pq

    from compval.data._arrow import _dictionary_text, _dictionary_words

    ids = [None if i % 97 == 0 else f"id-{i}-é" for i in range(3000)]
    kind = pa.large_string() if large else pa.string()
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array(ids, kind)}), path)
    parquet = pq.ParquetFile(path, read_dictionary=["id"])
    got: list[object] = []
    sizes = []
    for batch in parquet.iter_batches(batch_size=500, columns=["id"]):
        column = batch.column(0)
        sizes.append(len(column.dictionary))
        got += _dictionary_text(pa, column).tolist()
    assert got == ids
    assert max(sizes) > 2 * 500  # the case under test: the large-dictionary branch ran
    dictionary = pa.array([f"w{i}" for i in range(100)], kind).slice(7, 50)
    picks = np.array([0, 3, 49])
    assert _dictionary_words(pa, dictionary, picks) == ["w7", "w10", "w56"]
