"""A repeated column name is an error, never a silent shift of the features (exit 5)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compval.data import load_dataset
from compval.errors import DataError, ExitCode, exit_code_for
from compval.spec import DataRef


def test_csv_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    # pyarrow keeps one of the two 'a' columns: the model would get 2 features instead of 3.
    path.write_text("a,b,a,label\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(DataError, match=r"duplicate column name\(s\) \['a'\]") as caught:
        load_dataset(DataRef(path=str(path), labels="label"), base_dir=tmp_path)
    assert exit_code_for(caught.value) == ExitCode.RUN_ERROR
    assert "dup.csv" in str(caught.value)


def test_parquet_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    table = pa.table(
        [pa.array([1, 4]), pa.array([2, 5]), pa.array([3, 6]), pa.array([0, 1])],
        names=["a", "b", "a", "label"],
    )
    pq.write_table(table, path)
    # Before: a KeyError traceback from pyarrow ('Field "a" exists 2 times in schema').
    with pytest.raises(DataError, match=r"duplicate column name\(s\) \['a'\]"):
        load_dataset(DataRef(path=str(path), labels="label"), base_dir=tmp_path)
