"""load_dataset for .npy, .npz, .csv and .parquet: contents, fingerprints and errors."""

from __future__ import annotations

import os
import shutil
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

from compval.data import Dataset, from_dataframe, load_dataset
from compval.errors import DataError, InvalidParameterError
from compval.spec._model import DataRef

BATCH_SIZES = [1, 7, 64, 257, 1000]
FEATURES = ["f_float", "f_int", "f_f32"]


def load(path: Path | str, **ref: Any) -> Any:
    """Open ``path``; typed Any so tests can reach the concrete readers' extras."""
    return load_dataset(DataRef(path=str(path), **ref), base_dir=Path("/nonexistent-base"))


@pytest.fixture
def parquet_path(tmp_path, frame):
    path = tmp_path / "data.parquet"
    frame.to_parquet(path, row_group_size=50)  # several row groups
    return path


@pytest.fixture
def csv_path(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def npz_path(tmp_path, frame):
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x=frame[FEATURES].to_numpy(),
        y=frame["label"].to_numpy(),
        bucket=frame["bucket"].to_numpy(),
        lang=frame["lang"].fillna("<NA>").to_numpy().astype(str),
    )
    return path


# -- contents ---------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_parquet_equals_source(parquet_path, frame, collect, expected_segment, batch_size):
    ds = load(parquet_path, labels="label", segments=["lang", "bucket"])
    assert isinstance(ds, Dataset)
    assert len(ds) == len(frame)
    assert ds.has_labels and ds.segment_columns == ("lang", "bucket")
    inputs, labels, segments = collect(ds, batch_size)
    # int64 + float32 + float64 columns stack to numpy's common dtype, float64.
    assert inputs["features"].dtype == np.float64
    np.testing.assert_array_equal(inputs["features"], frame[FEATURES].to_numpy(np.float64))
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, frame["label"].to_numpy())
    assert segments["lang"].tolist() == expected_segment(frame["lang"])
    assert segments["bucket"].tolist() == frame["bucket"].tolist()


def test_parquet_keeps_file_dtype(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    path = tmp_path / "f32.parquet"
    pq.write_table(pa.table({f"c{i}": x[:, i] for i in range(3)}), path, row_group_size=9)
    ds = load(path)
    assert not ds.has_labels
    (batch,) = list(ds.batches(100))
    assert batch.labels is None
    assert batch.inputs["features"].dtype == np.float32
    np.testing.assert_array_equal(batch.inputs["features"], x)


def test_parquet_explicit_feature_order(parquet_path, frame, collect):
    ds = load(parquet_path, features=["f_int", "f_float"], segments=["lang"])
    assert ds.feature_columns == ("f_int", "f_float")
    inputs, labels, _ = collect(ds, 100)
    assert labels is None
    np.testing.assert_array_equal(inputs["features"], frame[["f_int", "f_float"]].to_numpy(float))


def test_parquet_segment_types_and_missing(tmp_path):
    table = pa.table(
        {
            "x": pa.array([1.0, 2.0, 3.0, 4.0]),
            "n": pa.array([7, None, 9, 7], pa.int32()),
            "d": pa.array(["a", None, "b", "a"]).dictionary_encode(),
            "f": pa.array([0.5, float("nan"), None, 1.0]),
        }
    )
    path = tmp_path / "seg.parquet"
    pq.write_table(table, path, row_group_size=3)
    ds = load(path, features=["x"], segments=["n", "d", "f"])
    batches = list(ds.batches(2))
    n = np.concatenate([b.segments["n"] for b in batches]).tolist()
    assert n == [7, "<NA>", 9, 7]
    assert all(type(v) is int for v in (n[0], n[2]))  # ints stay ints, not 7.0
    assert np.concatenate([b.segments["d"] for b in batches]).tolist() == ["a", "<NA>", "b", "a"]
    assert np.concatenate([b.segments["f"] for b in batches]).tolist() == [0.5, "<NA>", "<NA>", 1.0]


def test_parquet_pandas_index_not_a_feature(tmp_path, frame):
    path = tmp_path / "indexed.parquet"
    frame.set_index(pd.Index(np.arange(len(frame)) * 10, name="rid")).to_parquet(path)
    ds = load(path, labels="label", segments=["lang", "bucket"])
    assert ds.feature_columns == tuple(FEATURES)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_csv_equals_pandas(csv_path, collect, expected_segment, batch_size):
    reference = pd.read_csv(csv_path, float_precision="round_trip")
    ds = load(csv_path, labels="label", segments=["lang", "bucket"])
    assert isinstance(ds, Dataset)
    assert len(ds) == len(reference)
    inputs, labels, segments = collect(ds, batch_size)
    assert inputs["features"].dtype == np.float64
    np.testing.assert_array_equal(inputs["features"], reference[FEATURES].to_numpy(np.float64))
    np.testing.assert_array_equal(labels, reference["label"].to_numpy())
    assert segments["lang"].tolist() == expected_segment(reference["lang"])
    assert segments["bucket"].tolist() == reference["bucket"].tolist()


def test_csv_string_labels_and_unnamed_index(tmp_path, frame):
    df = frame.assign(label=frame["label"].map({0: "cat", 1: "dog", 2: "eel"}))
    path = tmp_path / "indexed.csv"
    df.to_csv(path)  # pandas writes its index as a first column without a name
    ds = load(path, labels="label", segments=["lang"])
    assert ds.feature_columns == ("f_float", "f_int", "f_f32", "bucket")
    labels = np.concatenate([b.labels for b in ds.batches(100)])
    assert labels.tolist() == df["label"].tolist()


def test_csv_type_stable_past_the_first_block(tmp_path):
    # pyarrow infers types from the first block (128 KiB here); a float after it must parse.
    n = 60_000
    lines = ["a,b,y"] + [f"{i % 97},{i % 5},{i % 2}" for i in range(n)] + ["1.5,2,0"]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * (128 << 10)
    # The hazard is real: pyarrow alone, with the same block size, fails on the late float.
    options = pacsv.ReadOptions(block_size=128 << 10)
    with pytest.raises(pa.ArrowInvalid, match=r"1\.5"), pacsv.open_csv(path, options) as reader:
        reader.read_all()
    ds = load(path, labels="y")
    assert len(ds) == n + 1
    last = list(ds.batches(50_000))[-1]
    np.testing.assert_array_equal(last.inputs["features"][-1], [1.5, 2.0])
    assert last.labels is not None and last.labels.dtype == np.int64


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_npz_equals_arrays(npz_path, frame, collect, batch_size):
    ds = load(npz_path, segments=["lang", "bucket"])  # x and y found by default
    assert isinstance(ds, Dataset)
    assert ds.has_labels
    inputs, labels, segments = collect(ds, batch_size)
    np.testing.assert_array_equal(inputs["features"], frame[FEATURES].to_numpy())
    np.testing.assert_array_equal(labels, frame["label"].to_numpy())
    # A text array cannot hold a missing value: the text "<NA>" in it is text, quoted so
    # that it is not read as missing (docs/spec.md, Segments).
    assert segments["lang"].tolist() == frame["lang"].fillna('"<NA>"').tolist()
    np.testing.assert_array_equal(segments["bucket"], frame["bucket"].to_numpy())


def test_npz_several_named_inputs_and_alternative_keys(tmp_path, collect):
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 1000, size=(30, 6))
    mask = rng.integers(0, 2, size=(30, 6))
    labels = rng.choice(["pos", "neg"], size=30)
    path = tmp_path / "multi.npz"
    np.savez(path, input_ids=ids, attention_mask=mask, labels=labels)
    ds = load(path, features=["input_ids", "attention_mask"])
    inputs, got_labels, _ = collect(ds, 8)
    assert set(inputs) == {"input_ids", "attention_mask"}
    np.testing.assert_array_equal(inputs["input_ids"], ids)
    np.testing.assert_array_equal(inputs["attention_mask"], mask)
    np.testing.assert_array_equal(got_labels, labels)

    path2 = tmp_path / "alt.npz"
    np.savez(path2, features=ids, target=labels)
    ds2 = load(path2, labels="target")
    inputs2, labels2, _ = collect(ds2, 7)
    np.testing.assert_array_equal(inputs2["features"], ids)
    np.testing.assert_array_equal(labels2, labels)
    assert not load(tmp_path / "alt.npz").has_labels


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_npy_memory_mapped(tmp_path, collect, batch_size):
    x = np.random.default_rng(6).normal(size=(257, 4))
    path = tmp_path / "x.npy"
    np.save(path, x)
    ds = load(path)
    assert isinstance(ds, Dataset)
    assert not ds.has_labels and ds.segment_columns == ()
    inputs, labels, _ = collect(ds, batch_size)
    assert labels is None
    np.testing.assert_array_equal(inputs["features"], x)
    # Each batch is a view of the memory map, not a copy in memory.
    features = next(iter(ds.batches(10))).inputs["features"]
    assert not features.flags.owndata
    bases = []
    base = features.base
    while base is not None:
        bases.append(base)
        base = getattr(base, "base", None)
    assert any(isinstance(b, np.memmap) for b in bases)


def test_relative_path_resolved_against_base_dir(tmp_path):
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", np.ones((3, 2)))
    ds = load_dataset(DataRef(path="sub/x.npy"), base_dir=tmp_path)
    assert len(ds) == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz", "npy"])
def test_explicit_format_overrides_extension(tmp_path, frame, fmt):
    path = tmp_path / "data.bin"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "npz":
        with path.open("wb") as stream:
            np.savez(stream, x=np.ones((4, 2)))
    else:
        with path.open("wb") as stream:
            np.save(stream, np.ones((4, 2)))
    extra = {"segments": ["lang"]} if fmt in ("csv", "parquet") else {}
    ds = load(path, format=fmt, **extra)
    assert len(ds) == (len(frame) if fmt in ("csv", "parquet") else 4)


# -- fingerprints -----------------------------------------------------------------------------
def _all_formats(tmp_path: Path, frame: pd.DataFrame) -> dict[str, Path]:
    paths = {
        "parquet": tmp_path / "d.parquet",
        "csv": tmp_path / "d.csv",
        "npz": tmp_path / "d.npz",
        "npy": tmp_path / "d.npy",
    }
    frame.to_parquet(paths["parquet"])
    frame.to_csv(paths["csv"], index=False)
    np.savez(paths["npz"], x=frame[FEATURES].to_numpy(), y=frame["label"].to_numpy())
    np.save(paths["npy"], frame[FEATURES].to_numpy())
    return paths


_FINGERPRINTS = """
import sys
from pathlib import Path
import numpy as np
from compval.data import ArrayDataset, load_dataset
from compval.spec._model import DataRef

for path in sys.argv[1:]:
    print(load_dataset(DataRef(path=path), base_dir=Path(".")).fingerprint())
segment = np.array(["a", None, 3], dtype=object)
labels = np.array(["u", "v", "w"], dtype=object)
print(ArrayDataset(np.eye(3), labels=labels, segments={"s": segment}).fingerprint())
"""


def test_fingerprint_stable_across_processes(tmp_path, frame):
    paths = _all_formats(tmp_path, frame.drop(columns="lang"))
    files = [str(paths[k]) for k in ("parquet", "csv", "npz", "npy")]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    result = subprocess.run(
        [sys.executable, "-c", _FINGERPRINTS, *files],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = result.stdout.split()
    from compval.data import ArrayDataset

    ours = [load(p).fingerprint() for p in files]
    segment = np.array(["a", None, 3], dtype=object)
    labels = np.array(["u", "v", "w"], dtype=object)
    ours.append(ArrayDataset(np.eye(3), labels=labels, segments={"s": segment}).fingerprint())
    assert theirs == ours
    assert len(set(ours)) == len(ours)
    assert all(len(f) == 64 for f in ours)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "npz", "npy"])
def test_fingerprint_follows_content_not_path(tmp_path, frame, fmt):
    frame = frame.drop(columns="lang")
    path = _all_formats(tmp_path, frame)[fmt]
    copy = tmp_path / "copy" / path.name
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    first = load(path).fingerprint()
    assert load(path).fingerprint() == first
    assert load(copy).fingerprint() == first
    changed = frame.copy()
    changed.loc[10, "f_int"] += 1
    _all_formats(tmp_path / "copy", changed)
    assert load(copy).fingerprint() != first


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_fingerprint_follows_column_selection(tmp_path, frame, fmt):
    path = _all_formats(tmp_path, frame)[fmt]
    prints = [
        load(path, labels="label", segments=["lang"]).fingerprint(),
        load(path, labels="label", segments=["lang"], features=["f_int", "f_float"]).fingerprint(),
        load(path, labels="label", segments=["lang"], features=["f_float", "f_int"]).fingerprint(),
        load(path, segments=["lang"], features=FEATURES).fingerprint(),
        load(path, labels="label", segments=["lang", "bucket"]).fingerprint(),
    ]
    assert len(set(prints)) == len(prints)
    explicit = load(path, labels="label", segments=["lang"], features=[*FEATURES, "bucket"])
    assert explicit.fingerprint() == prints[0]  # the default selection, spelled out


def test_npz_fingerprint_follows_key_selection(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, x=np.ones((3, 2)), y=np.arange(3), g=np.array([1, 1, 2]))
    assert load(path).fingerprint() != load(path, segments=["g"]).fingerprint()


# -- errors -----------------------------------------------------------------------------------
def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(
        DataError,
        match=r"unknown data format; got extension '.xlsx', expected one of \.npy, "
        r"\.npz, \.csv, \.parquet",
    ):
        load(path)


def test_missing_file_names_resolved_path(tmp_path):
    with pytest.raises(DataError, match=r"not found; got resolved path '.*/nope/data\.csv'"):
        load_dataset(DataRef(path="nope/data.csv"), base_dir=tmp_path)


def test_directory_is_not_a_file(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(DataError, match=r"is not a file"):
        load(tmp_path / "d.parquet")


def test_load_dataset_requires_dataref(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"'ref' must be a DataRef; got str"):
        load_dataset("x.csv", base_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.parquet", b"not a parquet file at all", r"cannot be read as parquet; got Arrow"),
        ("bad.npz", b"PK\x03\x04 truncated zip", r"cannot be read as npz; got BadZipFile"),
        ("bad.npy", b"\x93NUMPY garbage", r"cannot be read as npy"),
        ("bad.csv", b"a,b\n1,2\n3,4,5\n", r"cannot be read as CSV; got ArrowInvalid.*columns"),
        ("empty.csv", b"", r"the data has no rows"),
        ("header.csv", b"a,b,y\n", r"the data has no rows"),
    ],
)
def test_unreadable_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        load(path)
    assert name in str(info.value)


def test_corrupt_parquet_body_detected_when_read(tmp_path, frame):
    path = tmp_path / "c.parquet"
    frame.to_parquet(path, row_group_size=50, compression="snappy")
    data = bytearray(path.read_bytes())
    data[200:1200] = bytes(1000)  # zero out pages inside the first row groups
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"c\.parquet.*cannot be read as parquet"):
        ds = load(path, segments=["lang"])
        list(ds.batches(64))


def test_npy_errors(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 2)))
    for field, value in (("labels", "y"), ("features", ["a"]), ("segments", ["g"])):
        with pytest.raises(DataError, match=rf"a \.npy file holds one array.*got {field}="):
            load(path, **{field: value})
    np.save(path, np.float64(3.0))
    with pytest.raises(DataError, match=r"holds a scalar"):
        load(path)
    np.save(path, np.ones((0, 3)))
    with pytest.raises(DataError, match=r"the data has no rows"):
        load(path)
    np.save(path, np.array(["a", None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"cannot be read as npy; got ValueError"):
        load(path)
    zipped = tmp_path / "z.npz"
    np.savez(zipped, x=np.ones(3))
    with pytest.raises(DataError, match=r"is not a \.npy file; got a \.npz archive"):
        load(zipped, format="npy")
    with pytest.raises(DataError, match=r"is not a \.npz archive; got a single \.npy array"):
        load(tmp_path / "x.npy", format="npz")


@pytest.mark.parametrize(
    ("arrays", "ref", "match"),
    [
        (
            {"x": np.ones((3, 2)), "label": np.arange(3)},
            {"labels": "lable"},
            r"label key 'lable' not found; got keys \['x', 'label'\].*Did you mean 'label'\?",
        ),
        ({"x": np.ones((3, 2))}, {"segments": ["grp"]}, r"segment key 'grp' not found"),
        (
            {"x": np.ones((3, 2))},
            {"features": ["xx", "x"]},
            r"feature key 'xx' not found.*Did you mean 'x'\?",
        ),
        ({"inputs": np.ones((3, 2))}, {}, r"no feature key; got keys \['inputs'\], expected 'x'"),
        (
            {"x": np.ones((3, 2)), "features": np.ones((3, 2))},
            {},
            r"the feature key is ambiguous; got keys \['x', 'features'\]",
        ),
        (
            {"x": np.ones((3, 2)), "y": np.arange(3), "labels": np.arange(3)},
            {},
            r"the label key is ambiguous",
        ),
        (
            {"x": np.ones((3, 2)), "y": np.arange(4)},
            {},
            r"different numbers of rows; got feature key 'x': 3, label key 'y': 4",
        ),
        ({"x": np.ones((3, 2)), "y": np.ones((3, 2))}, {}, r"label key 'y' must be 1-D"),
        (
            {"x": np.ones((3, 2)), "g": np.ones((3, 2))},
            {"segments": ["g"]},
            r"segment key 'g' must be 1-D",
        ),
        ({"x": np.float64(1.0)}, {}, r"feature key 'x' holds a scalar"),
        ({"x": np.ones((0, 2)), "y": np.arange(0)}, {}, r"the data has no rows"),
        (
            {"x": np.ones((3, 2)), "y": np.array([0.0, np.nan, 1.0])},
            {},
            r"label column 'y' has missing values; got 1 of 3 rows",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, ref, match):
    path = tmp_path / "e.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        load(path, **ref)


def test_npz_label_also_feature(tmp_path):
    path = tmp_path / "e.npz"
    np.savez(path, x=np.ones((3, 2)), y=np.arange(3))
    # Listed as a feature, 'y' is not picked as the default label...
    assert not load(path, features=["x", "y"]).has_labels
    # ...and naming it as both is refused.
    with pytest.raises(DataError, match=r"the label key 'y' is also listed as a feature key"):
        load(path, features=["x", "y"], labels="y")


def test_npz_object_arrays_refused(tmp_path):
    path = tmp_path / "o.npz"
    np.savez(path, x=np.ones((2, 2)), y=np.array(["a", None], dtype=object))
    with pytest.raises(DataError, match=r"cannot be read as npz; got ValueError: Object arrays"):
        load(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize(
    ("ref", "match"),
    [
        (
            {"labels": "lable"},
            r"label column 'lable' not found; got columns \['f_float', .*Did you mean 'label'\?",
        ),
        (
            {"labels": "label", "segments": ["lagn"]},
            r"segment column 'lagn' not found.*Did you mean 'lang'\?",
        ),
        (
            {"labels": "label", "segments": ["lang"], "features": ["f_in"]},
            r"feature column 'f_in' not found.*Did you mean 'f_int'\?",
        ),
        (
            {"labels": "label", "segments": ["lang"], "features": ["label", "f_int"]},
            r"the label column 'label' is also listed as a feature column",
        ),
        ({"segments": ["lang", "lang"]}, r"segment columns are listed more than once"),
    ],
)
def test_columnar_column_errors(tmp_path, frame, fmt, ref, match):
    path = _all_formats(tmp_path, frame)[fmt]
    with pytest.raises(DataError, match=match):
        load(path, **ref)


def _write(df, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_columnar_text_feature_is_an_input_of_its_own(tmp_path, frame, fmt):
    """A text column among the features: numbers stay one array, the text is its own input."""
    df = frame.assign(lang=frame["lang"].fillna("xx"))
    ds = load(_write(df, tmp_path / f"t.{fmt}"), labels="label")
    numeric = [c for c in df.columns if c not in ("label", "lang")]
    assert list(ds.feature_columns) == numeric
    batches = list(ds.batches(100))
    assert set(batches[0].inputs) == {"features", "lang"}
    lang = np.concatenate([b.inputs["lang"] for b in batches])
    assert lang.shape == (len(df), 1) and lang.dtype == object
    assert lang[:, 0].tolist() == df["lang"].tolist()
    features = np.concatenate([b.inputs["features"] for b in batches])
    # CSV keeps float32 values as their shortest text: equal to float32 precision.
    np.testing.assert_allclose(features, df[numeric].to_numpy(np.float64), rtol=1e-7)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_columnar_text_feature_with_a_missing_value_is_refused(tmp_path, frame, fmt):
    df = frame.assign(lang=frame["lang"].fillna("xx"))
    df.loc[130, "lang"] = None
    ds = load(_write(df, tmp_path / f"t.{fmt}"), labels="label")
    match = r"feature column 'lang' \(text\) has missing values; got one at row 130"
    batches = ds.batches(64)
    assert [len(next(batches)) for _ in range(2)] == [64, 64]  # the batches before it
    with pytest.raises(DataError, match=match):
        next(batches)


def test_parquet_feature_neither_number_nor_text_is_refused(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(
        {"x": [1.0, 2.0], "when": pd.to_datetime(["2026-01-01", "2026-01-02"]), "y": [0, 1]}
    ).to_parquet(path)
    with pytest.raises(DataError, match=r"feature columns must be numbers or text; got \['when"):
        load(path, labels="y")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_columnar_missing_labels_counted(tmp_path, frame, fmt):
    df = frame.astype({"label": "float64"})
    df.loc[[1, 50, 51, 256], "label"] = np.nan
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, row_group_size=40)
    with pytest.raises(DataError, match=r"label column 'label' has missing values; got 4 of 257"):
        load(path, labels="label", segments=["lang"])


def test_columnar_no_feature_columns(tmp_path):
    path = tmp_path / "nf.csv"
    path.write_text("y,g\n1,a\n0,b\n")
    with pytest.raises(DataError, match=r"no feature columns"):
        load(path, labels="y", segments=["g"])


def test_parquet_no_rows(tmp_path, frame):
    path = tmp_path / "empty.parquet"
    frame.iloc[:0].to_parquet(path)
    with pytest.raises(DataError, match=r"the data has no rows; got 0 rows"):
        load(path, labels="label", segments=["lang"])


def test_integer_feature_with_nulls(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(
        pa.table({"a": pa.array([1, 2, None, 4, 5], pa.int64()), "b": [0.0, 1, 2, 3, 4]}),
        path,
        row_group_size=2,
    )
    ds = load(path)
    with pytest.raises(
        DataError, match=r"feature column 'a' \(int64\) has missing values; got one at row 2"
    ):
        list(ds.batches(2))


def test_csv_missing_values(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("a,flag,g,y\n1,true,x,0\n,false,,1\nNaN,true,NA,0\n")
    ds = load(path, labels="y", segments=["g"])
    (batch,) = list(ds.batches(10))
    np.testing.assert_array_equal(batch.inputs["features"], [[1, 1], [np.nan, 0], [np.nan, 1]])
    assert batch.segments["g"].tolist() == ["x", "<NA>", "<NA>"]
    path.write_text("a,flag,y\n1,true,0\n2,,1\n")
    with pytest.raises(DataError, match=r"feature column 'flag' \(bool\) has missing values"):
        list(load(path, labels="y").batches(10))


def test_csv_non_numeric_feature_after_first_block_is_a_read_error(tmp_path):
    n = 60_000
    path = tmp_path / "late.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(n)) + "oops,1\n")
    with pytest.raises(DataError, match=r"late\.csv.*cannot be read as CSV.*oops"):
        load(path, labels="y")


def test_csv_segment_empty_in_first_block(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("a,g\n1,\n2,\n")
    ds = load(path, segments=["g"])
    (batch,) = list(ds.batches(5))
    assert batch.segments["g"].tolist() == ["<NA>", "<NA>"]


def test_reprs_and_input_names(tmp_path, frame):
    paths = _all_formats(tmp_path, frame.drop(columns="lang"))
    assert repr(load(paths["parquet"])) == f"ParquetDataset({str(paths['parquet'])!r}, rows=257)"
    assert repr(load(paths["csv"])) == f"CsvDataset({str(paths['csv'])!r}, rows=257)"
    assert repr(load(paths["npy"])) == f"NpyDataset({str(paths['npy'])!r}, rows=257)"
    assert load(paths["npz"]).input_names == ("features",)


def test_fingerprint_of_a_vanished_file(tmp_path):
    path = tmp_path / "gone.npy"
    np.save(path, np.ones((3, 2)))
    ds = load(path)
    path.unlink()
    with pytest.raises(DataError, match=r"gone\.npy.*cannot be read for fingerprinting"):
        ds.fingerprint()


def test_text_feature_named_features_is_refused(tmp_path):
    """It would take the place of the numeric columns' array: a silent mix-up."""
    path = _write(
        pd.DataFrame({"x": [1.0, 2.0], "features": ["a", "b"], "y": [0, 1]}), tmp_path / "f.csv"
    )
    with pytest.raises(DataError, match=r"a text feature column is named 'features'"):
        load(path, labels="y")
    df = pd.DataFrame({"x": [1.0, 2.0], "features": ["a", "b"], "y": [0, 1]})
    with pytest.raises(DataError, match=r"DataFrame: a text feature column is named 'features'"):
        from_dataframe(df, labels="y")
