"""as_dataset dispatch, and that importing compval.data stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compval.data import ArrayDataset, as_dataset
from compval.errors import DataError, InvalidParameterError


def test_dataset_returned_as_is():
    ds = ArrayDataset(np.zeros((3, 2)))
    assert as_dataset(ds) is ds


def test_dataframe(frame):
    ds = as_dataset(frame, labels="label", segments=["lang"], features=["f_int"])
    (batch,) = list(ds.batches(1000))
    np.testing.assert_array_equal(batch.inputs["features"][:, 0], frame["f_int"].to_numpy())
    np.testing.assert_array_equal(batch.labels, frame["label"].to_numpy())
    assert ds.segment_columns == ("lang",)


def test_tuple_and_array():
    x = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    ds = as_dataset((x, y))
    assert ds.has_labels and len(ds) == 6
    (batch,) = list(ds.batches(10))
    np.testing.assert_array_equal(batch.labels, y)
    multi = as_dataset(({"a": x, "b": x[:, :1]}, y))
    assert set(next(iter(multi.batches(2))).inputs) == {"a", "b"}
    unlabelled = as_dataset(x)
    assert not unlabelled.has_labels
    np.testing.assert_array_equal(next(iter(unlabelled.batches(10))).inputs["features"], x)


def test_paths_relative_to_working_directory(tmp_path, monkeypatch, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    np.save(tmp_path / "x.npy", np.ones((5, 2)))
    monkeypatch.chdir(tmp_path)
    ds = as_dataset("d.parquet", labels="label", segments=["lang"])
    assert len(ds) == len(frame) and ds.has_labels
    assert len(as_dataset(Path("x.npy"))) == 5
    with pytest.raises(DataError, match=r"not found; got resolved path"):
        as_dataset("missing.csv")


@pytest.mark.parametrize(
    ("obj", "kwargs", "match"),
    [
        ([[1, 2], [3, 4]], {}, r"cannot make a dataset from list.*expected a Dataset, a pandas"),
        ({"x": np.ones(3)}, {}, r"cannot make a dataset from dict"),
        (
            (np.ones((2, 2)), np.ones(2), np.ones(2)),
            {},
            r"a tuple must be \(X, y\); got a tuple of 3",
        ),
        (
            (np.ones((2, 2)), np.ones(2)),
            {"labels": "y"},
            r"column names do not apply to an \(X, y\) tuple",
        ),
        (np.ones((2, 2)), {"segments": ["s"]}, r"column names do not apply to a numpy array"),
        (ArrayDataset(np.ones((2, 2))), {"features": ["a"]}, r"do not apply to a Dataset"),
        (np.ones((2, 2)), {"segments": "s"}, r"'segments' must be a sequence of column names"),
    ],
)
def test_as_dataset_errors(obj, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        as_dataset(obj, **kwargs)


def test_import_does_not_load_pandas_or_pyarrow():
    code = (
        "import sys, compval.data, numpy as np\n"
        "ds = compval.data.as_dataset((np.ones((4, 2)), np.arange(4)))\n"
        "list(ds.batches(3)); ds.fingerprint()\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_functions_name_the_package_classes_keep_their_module():
    import compval.data as data

    assert set(data.__all__) == {
        "ArrayDataset",
        "Batch",
        "Dataset",
        "as_dataset",
        "feature_names",
        "from_dataframe",
        "load_dataset",
        "TEXT_INPUTS",
        "TextDataset",
        "TextTokenizer",
        "load_text_dataset",
        "load_tokenizer",
    }
    # Functions name the package; classes keep their defining module (compval._public).
    assert data.ArrayDataset.__module__ == "compval.data._dataset"
    assert data.load_dataset.__module__ == "compval.data"


def test_missing_extra_named(tmp_path, monkeypatch, frame):
    from compval.data import from_dataframe, load_dataset
    from compval.errors import MissingDependencyError
    from compval.spec._model import DataRef

    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    for module in ("pyarrow", "pyarrow.csv", "pyarrow.parquet", "pandas"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'compval\[data\]'"):
        load_dataset(DataRef(path=str(path)), base_dir=tmp_path)
    with pytest.raises(MissingDependencyError, match=r"'pandas' is not installed"):
        from_dataframe(frame, labels=None)
