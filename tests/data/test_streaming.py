"""Streaming: parquet and CSV read a bounded number of rows at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import compval.data._arrow as arrow_reader
from compval.data import load_dataset
from compval.spec._model import DataRef

N_ROWS = 200_000
N_COLS = 8
TABLE_BYTES = N_ROWS * N_COLS * 8  # 12.8 MB of float64


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(N_ROWS, N_COLS))
    table = pa.table({f"c{j}": values[:, j] for j in range(N_COLS)})
    table = table.append_column("label", pa.array(rng.integers(0, 3, N_ROWS)))
    path: Path = tmp_path_factory.mktemp("stream") / "big.parquet"
    pq.write_table(table, path, row_group_size=5_000, compression="none")
    return path


def _peak_during(iterable) -> tuple[int, int]:
    """Peak growth of Arrow's allocated bytes while consuming ``iterable``, and row count."""
    baseline = pa.total_allocated_bytes()
    peak = 0
    rows = 0
    for batch in iterable:
        peak = max(peak, pa.total_allocated_bytes() - baseline)
        rows += len(batch)
    return peak, rows


def test_parquet_streams_with_bounded_memory(big_parquet):
    ds = load_dataset(DataRef(path=str(big_parquet), labels="label"), base_dir=Path("."))
    assert len(ds) == N_ROWS
    peak, rows = _peak_during(ds.batches(4096))
    assert rows == N_ROWS
    # One row group (5,000 rows x 9 columns) plus one batch is a few hundred KB.
    assert peak < TABLE_BYTES / 8, (peak, TABLE_BYTES)


def test_memory_probe_sees_a_whole_table_read(big_parquet):
    # The probe must be able to fail: reading the table at once shows up in full.
    baseline = pa.total_allocated_bytes()
    table = pq.read_table(big_parquet)
    grown = pa.total_allocated_bytes() - baseline
    del table
    assert grown >= TABLE_BYTES


def test_csv_streams_with_bounded_memory(tmp_path, monkeypatch):
    # pyarrow's CSV reader parses blocks ahead of the consumer; with its 1 MiB default blocks
    # a 20 MB file is almost wholly in memory at once. compval's smaller blocks bound it.
    # Reads of 16k rows, so that the two reads compval holds (one converted ahead) are small
    # next to this 20 MB file: what is measured is the parser's blocks, not compval's reads.
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", 16_384)
    rng = np.random.default_rng(8)
    n_rows = 250_000
    values = rng.normal(size=(n_rows, 4))
    path = tmp_path / "big.csv"
    pacsv.write_csv(pa.table({c: values[:, i] for i, c in enumerate("abcd")}), path)
    size = path.stat().st_size
    assert size > 15e6
    ds = load_dataset(DataRef(path=str(path)), base_dir=Path("."))
    assert len(ds) == n_rows
    peak, rows = _peak_during(ds.batches(1000))
    assert rows == n_rows
    assert peak < size / 3, (peak, size)


def test_parquet_memory_does_not_follow_the_row_group_size(tmp_path, monkeypatch):
    # One row group for the whole file (pandas and pyarrow write up to a million rows per row
    # group): reading it unbuffered would hold every column chunk whole, the whole table.
    # Reads of 16k rows (two held: one converted ahead) keep compval's own reads small next
    # to this 12.8 MB file, so that what is measured is the column chunks.
    monkeypatch.setattr(arrow_reader, "_READ_ROWS", 16_384)
    rng = np.random.default_rng(9)
    values = rng.normal(size=(N_ROWS, N_COLS))
    path = tmp_path / "one_group.parquet"
    pq.write_table(
        pa.table({f"c{j}": values[:, j] for j in range(N_COLS)}),
        path,
        row_group_size=N_ROWS,
        data_page_size=64 << 10,
        use_dictionary=False,
        compression="none",
    )
    ds = load_dataset(DataRef(path=str(path)), base_dir=Path("."))
    peak, rows = _peak_during(ds.batches(256))
    assert rows == N_ROWS
    # Two reads (16,384 rows, 1 MB each) and a page per column, about 4 MB; unbuffered, 12.9 MB.
    assert peak < TABLE_BYTES / 3, (peak, TABLE_BYTES)
