"""Parquet and CSV are read many rows at a time and cut into batches: the batches must be the
ones a batch-by-batch conversion gives (same rows, row ids, values and dtypes, same errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import compval.data._arrow as arrow_reader
from compval.data import load_dataset
from compval.data._arrow import _label_array, _segment_array
from compval.errors import DataError
from compval.spec._model import DataRef

N_ROWS = 1_009  # prime: no batch or read size divides it


def _table(n: int = N_ROWS, seed: int = 3) -> pa.Table:
    """Every kind of column the readers convert, with missing values in each that allows them."""
    rng = np.random.default_rng(seed)
    f_float = rng.normal(size=n)
    f_float[rng.random(n) < 0.05] = np.nan
    int_seg = rng.integers(0, 4, n).astype(object)
    int_seg[[10, 500, 1000]] = None  # nullable integer segment: object only where nulls are
    float_seg = rng.integers(0, 3, n).astype(float)
    float_seg[[20, 700]] = np.nan
    text = rng.choice(np.array(["de", "en", "fr"], dtype=object), size=n)
    text[[0, 333]] = None
    return pa.table(
        {
            "f_float": f_float,
            "f_int": rng.integers(-(2**62), 2**62, n),  # beyond float64's exact integers
            "f_f32": rng.normal(size=n).astype(np.float32),
            "f_bool": rng.random(n) < 0.5,
            "label": rng.integers(0, 3, n),
            "text": pa.array(text, pa.string()),
            "text_clean": pa.array(rng.choice(["a", "b"], size=n), pa.string()),
            "cat": pa.array(text, pa.string()).dictionary_encode(),
            "int_seg": pa.array(int_seg, pa.int64()),
            "float_seg": float_seg,
        }
    )


SEGMENTS = ["text", "text_clean", "cat", "int_seg", "float_seg"]
FEATURES = ["f_float", "f_int", "f_f32", "f_bool"]


def _expected(table: pa.Table, batch_size: int) -> list[dict[str, Any]]:
    """Batch-by-batch conversion of the whole table: what the readers did before."""
    out = []
    for lo in range(0, table.num_rows, batch_size):
        part = table.slice(lo, batch_size)
        matrix = np.empty((part.num_rows, len(FEATURES)), dtype=np.float64)
        for j, name in enumerate(FEATURES):
            matrix[:, j] = part.column(name).to_numpy(zero_copy_only=False)
        out.append(
            {
                "features": matrix,
                "labels": _label_array(pa, part.column("label")),
                "row_ids": np.arange(lo, lo + part.num_rows),
                "segments": {s: _segment_array(pa, part.column(s)) for s in SEGMENTS},
            }
        )
    return out


def _assert_same(batches: list[Any], expected: list[dict[str, Any]]) -> None:
    assert [len(b) for b in batches] == [len(e["row_ids"]) for e in expected]
    for batch, want in zip(batches, expected, strict=True):
        features = batch.inputs["features"]
        # A batch said to be finite must be (the run then skips its own check of it).
        assert not batch.inputs_finite or np.isfinite(features).all()
        assert features.dtype == want["features"].dtype
        assert features.flags.c_contiguous
        np.testing.assert_array_equal(features, want["features"])
        assert batch.row_ids.dtype == np.int64
        np.testing.assert_array_equal(batch.row_ids, want["row_ids"])
        assert batch.labels.dtype == want["labels"].dtype
        np.testing.assert_array_equal(batch.labels, want["labels"])
        for name in SEGMENTS:
            got, ref = batch.segments[name], want["segments"][name]
            assert got.dtype == ref.dtype, (name, got.dtype, ref.dtype)
            assert [repr(v) for v in got.tolist()] == [repr(v) for v in ref.tolist()], name


def _load(path: Path) -> Any:
    ref = DataRef(path=str(path), labels="label", segments=SEGMENTS, features=FEATURES)
    return load_dataset(ref, base_dir=Path("."))


@pytest.mark.parametrize("read_rows", [64, 100, 4096])
@pytest.mark.parametrize("batch_size", [1, 7, 64, 256, 2000])
def test_parquet_batches_equal_batch_by_batch_conversion(
    tmp_path, monkeypatch, read_rows, batch_size
):
    # Small reads over row groups of 150 rows: reads span row groups and hold many batches.
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", read_rows)
    table = _table()
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=150)
    _assert_same(list(_load(path).batches(batch_size)), _expected(table, batch_size))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(("read_rows", "batch_size"), [(100, 50), (64, 7), (4096, 256), (300, 1)])
def test_only_the_read_holding_a_nan_leaves_the_nan_check_to_the_run(
    tmp_path, monkeypatch, suffix, read_rows, batch_size
):
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", read_rows)
    monkeypatch.setattr(arrow_reader, "_FIRST_READ_ROWS", read_rows)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=N_ROWS), "b": rng.normal(size=N_ROWS)})
    frame["label"] = rng.integers(0, 2, N_ROWS)
    frame.loc[250, "b"] = np.nan
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, row_group_size=100)
    ref = DataRef(path=str(path), labels="label")
    batches = list(load_dataset(ref, base_dir=Path(".")).batches(batch_size))
    flags = [b.inputs_finite for b in batches]
    for batch in batches:  # a batch said to be finite is (the run skips its own check)
        assert not batch.inputs_finite or np.isfinite(batch.inputs["features"]).all()
    assert not flags[250 // batch_size]  # the NaN's batch is left to the run
    if read_rows < N_ROWS or suffix == ".parquet":  # several reads (parquet: row groups of 100)
        assert sum(flags) >= len(batches) // 2  # the other reads' batches are marked
    if (read_rows, batch_size) == (100, 50):  # reads of 100 rows: the third holds row 250
        assert flags == [i not in (4, 5) for i in range(len(batches))]


def test_parquet_single_row_group(tmp_path):
    table = _table()
    path = tmp_path / "one.parquet"
    pq.write_table(table, path)
    _assert_same(list(_load(path).batches(100)), _expected(table, 100))


@pytest.mark.parametrize("read_rows", [64, 4096])
@pytest.mark.parametrize("batch_size", [1, 50, 256])
def test_csv_batches_equal_batch_by_batch_conversion(tmp_path, monkeypatch, read_rows, batch_size):
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", read_rows)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=N_ROWS),
            "b": rng.integers(0, 9, N_ROWS),
            "label": rng.integers(0, 3, N_ROWS),
            "g": rng.choice(["x", "y", ""], size=N_ROWS),
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(DataRef(path=str(path), labels="label", segments=["g"]), base_dir=Path("."))
    whole = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    batches = list(ds.batches(batch_size))
    assert [len(b) for b in batches][:-1] == [batch_size] * (len(batches) - 1)
    for batch in batches:
        lo, hi = int(batch.row_ids[0]), int(batch.row_ids[-1]) + 1
        np.testing.assert_array_equal(batch.row_ids, np.arange(lo, hi))
        part = whole.slice(lo, hi - lo)
        np.testing.assert_array_equal(
            batch.inputs["features"], np.stack([part["a"], part["b"]], axis=1).astype(np.float64)
        )
        np.testing.assert_array_equal(batch.labels, part["label"].to_numpy())
        ref = _segment_array(pa, part["g"])
        assert batch.segments["g"].dtype == ref.dtype
        assert batch.segments["g"].tolist() == ref.tolist()


def test_read_size_is_a_multiple_of_the_batch_size():
    read = arrow_reader._read_rows
    assert read(256, 200) == 65_536
    assert read(256, 200, limit=5_000) == 4_864  # a row group caps it
    assert read(4096, 72, limit=5_000) == 4_096
    assert read(1000, 10**9) == 1000  # never below one batch
    assert read(300, 8) % 300 == 0


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        # The earlier null is in 'a', and 'a' comes first: 'a' is named.
        (170, 180, r"'a' \(int64\) has missing values; got one at row 170"),
        # Both nulls are in the batch of rows 128..191: the first column in feature order
        # with a null in that batch is named, as a batch-by-batch conversion did.
        (185, 140, r"'a' \(int64\) has missing values; got one at row 185"),
        # 'b' has a null in an earlier batch than 'a'.
        (300, 100, r"'b' \(bool\) has missing values; got one at row 100"),
    ],
)
def test_null_in_int_feature_raises_at_its_batch(tmp_path, monkeypatch, first, second, message):
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", 256)
    n = 400
    a = pa.array([None if i == first else 2**60 + i for i in range(n)], pa.int64())
    b = pa.array([None if i == second else i % 2 == 0 for i in range(n)], pa.bool_())
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"a": a, "b": b}), path)  # stacked as int64
    ds = load_dataset(DataRef(path=str(path)), base_dir=Path("."))
    seen = []
    with pytest.raises(DataError, match=message):
        for batch in ds.batches(64):
            seen.append(batch)
    # Every batch before the failing one came out, with exact int64 values.
    assert len(seen) == min(first, second) // 64
    if seen:
        got = np.concatenate([s.inputs["features"][:, 0] for s in seen])
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, 2**60 + np.arange(len(got)))


def _arrays_of_every_type() -> list[pa.Array]:
    rng = np.random.default_rng(2)
    n = 37
    out = []
    for nulls in (False, True):
        mask = np.zeros(n, dtype=bool)
        mask[[3, 20]] = nulls
        for dtype in (np.int8, np.int32, np.int64, np.uint16, np.uint64):
            out.append(pa.array(rng.integers(0, 100, n).astype(dtype), mask=mask))
        for dtype in (np.float16, np.float32, np.float64):
            values = rng.normal(size=n).astype(dtype)
            values[5] = np.nan
            out.append(pa.array(values, mask=mask))
        out.append(pa.array(rng.random(n) < 0.5, mask=mask))
        text = [str(v) for v in rng.integers(0, 9, n)]
        out += [pa.array(text, pa.string(), mask=mask), pa.array(text, pa.large_string())]
        out.append(pa.array(rng.integers(0, 10**6, n).astype("datetime64[ms]"), mask=mask))
    return out


@pytest.mark.parametrize("array", _arrays_of_every_type(), ids=lambda a: f"{a.type}-{a.null_count}")
def test_numpy_conversion_equals_pyarrows(array):
    # The readers convert numbers, bools and text from arrow's buffers (pyarrow's to_numpy
    # imports pandas); the result must be what to_numpy gives, for slices at any bit offset
    # and for chunked columns.
    pieces = [
        array,
        array.slice(3, 25),
        array.slice(9),
        array.slice(4, 0),
        pa.chunked_array([array.slice(0, 11), array.slice(11)]),
        pa.chunked_array([array.slice(5, 13)]),
    ]
    for piece in pieces:
        want = piece.to_numpy(zero_copy_only=False)
        got = arrow_reader._to_numpy(pa, piece)
        assert got.dtype == want.dtype
        assert [repr(v) for v in got.tolist()] == [repr(v) for v in want.tolist()]
        assert got.flags.writeable == want.flags.writeable


def test_reading_does_not_import_pandas(tmp_path):
    # pyarrow's to_numpy imports pandas (a quarter of a second) for any column type.
    path = tmp_path / "t.parquet"
    pq.write_table(_table(), path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from compval.data import load_dataset\n"
        "from compval.spec import DataRef\n"
        f"ref = DataRef(path={str(path)!r}, labels='label', segments={SEGMENTS!r},\n"
        f"              features={FEATURES!r})\n"
        "ds = load_dataset(ref, base_dir=Path('.'))\n"
        "assert sum(len(b) for b in ds.batches(100)) == len(ds)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
