"""ArrayDataset and from_dataframe: batches equal the source, validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compval.data import ArrayDataset, Batch, Dataset, from_dataframe
from compval.errors import DataError, InvalidParameterError

BATCH_SIZES = [1, 7, 64, 257, 1000]


# -- ArrayDataset: contents -------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_array_batches_equal_source(batch_size, collect):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(257, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=257)
    seg = rng.choice(["a", "b"], size=257)
    ds = ArrayDataset(x, labels=y, segments={"group": seg})
    assert isinstance(ds, Dataset)
    assert len(ds) == 257
    assert ds.has_labels
    assert ds.segment_columns == ("group",)
    assert ds.input_names == ("features",)
    inputs, labels, segments = collect(ds, batch_size)
    assert list(inputs) == ["features"]
    assert inputs["features"].dtype == np.float32
    np.testing.assert_array_equal(inputs["features"], x)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(segments["group"], seg)


@pytest.mark.parametrize("span_values", [1, 30, 64, 10_000])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
def test_array_batches_say_which_are_finite_per_span(monkeypatch, span_values, batch_size):
    # The NaN check runs once per span of whole batches: the same batches as slicing one by
    # one, and a batch is said finite only when its span (so the batch itself) is.
    import compval.data._dataset as dataset_module

    monkeypatch.setattr(dataset_module, "_FINITE_SPAN_VALUES", span_values)
    x = np.arange(97 * 4, dtype=np.float32).reshape(97, 4)
    x[41, 2] = np.inf
    texts = np.array([[f"t{i}"] for i in range(97)], dtype=object)
    ds = ArrayDataset({"x": x, "words": texts}, labels=np.arange(97))
    batches = list(ds.batches(batch_size))
    starts = list(range(0, 97, batch_size))
    assert [int(b.row_ids[0]) for b in batches] == starts
    for batch, lo in zip(batches, starts, strict=True):
        np.testing.assert_array_equal(batch.inputs["x"], x[lo : lo + batch_size])
        if batch.inputs_finite:
            assert np.isfinite(batch.inputs["x"]).all()
    span = batch_size * max(1, span_values // (4 * batch_size))
    bad_span = 41 // span
    assert [b.inputs_finite for b in batches] == [lo // span != bad_span for lo in starts]


def test_array_batches_are_views():
    x = np.arange(30.0).reshape(10, 3)
    y = np.arange(10)
    ds = ArrayDataset(x, labels=y)
    for batch in ds.batches(4):
        assert np.shares_memory(batch.inputs["features"], x)
        assert np.shares_memory(batch.labels, y)


def test_array_multi_input_mapping(collect):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 100, size=(20, 8))
    mask = np.ones((20, 8), dtype=np.int64)
    ds = ArrayDataset({"input_ids": ids, "attention_mask": mask})
    assert not ds.has_labels
    assert ds.input_names == ("input_ids", "attention_mask")
    inputs, labels, _ = collect(ds, 6)
    assert labels is None
    np.testing.assert_array_equal(inputs["input_ids"], ids)
    np.testing.assert_array_equal(inputs["attention_mask"], mask)


def test_array_one_dimensional_features_and_lists():
    ds = ArrayDataset(["a b", "c d", "e"], labels=[0, 1, 0])
    (batch,) = list(ds.batches(10))
    assert isinstance(batch, Batch)
    assert batch.inputs["features"].tolist() == ["a b", "c d", "e"]
    assert batch.labels is not None and batch.labels.tolist() == [0, 1, 0]


def test_array_segment_missing_values_become_na():
    ds = ArrayDataset(
        np.zeros((4, 1)),
        segments={
            "s": np.array(["x", None, np.nan, "y"], dtype=object),
            "f": np.array([1.5, np.nan, 2.0, np.nan]),
            "n": pd.array([1, pd.NA, 3, 4], dtype="Int64").to_numpy(),
            "d": np.array(["2024-01-01", "NaT", "2024-01-02", "2024-01-03"], dtype="M8[D]"),
            "i": np.array([4, 5, 6, 7]),
            "p": np.array(["a", pd.NA, pd.NaT, "b"], dtype=object),
        },
    )
    (batch,) = list(ds.batches(4))
    assert batch.segments["s"].tolist() == ["x", "<NA>", "<NA>", "y"]
    assert batch.segments["f"].tolist() == [1.5, "<NA>", 2.0, "<NA>"]
    assert batch.segments["n"].tolist() == [1, "<NA>", 3, 4]
    assert batch.segments["d"][1] == "<NA>"
    assert batch.segments["i"].dtype.kind == "i"  # nothing missing: left as is
    assert batch.segments["p"].tolist() == ["a", "<NA>", "<NA>", "b"]


def test_array_repr():
    ds = ArrayDataset({"a": np.zeros((2, 3), np.float32)}, labels=[0, 1], segments={"s": [1, 2]})
    assert repr(ds) == (
        "ArrayDataset(rows=2, inputs={a: float32[2, 3]}, labels=True, segments=['s'])"
    )


def test_array_fingerprint_stable_and_sensitive():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    y = rng.integers(0, 2, size=50)
    seg = np.array(["a", "b"] * 25, dtype=object)
    base = ArrayDataset(x, labels=y, segments={"s": seg}).fingerprint()
    assert len(base) == 64
    int(base, 16)
    assert ArrayDataset(x.copy(), labels=y.copy(), segments={"s": seg.copy()}).fingerprint() == base
    x2 = x.copy()
    x2[17, 1] += 1e-12
    changed = [
        ArrayDataset(x2, labels=y, segments={"s": seg}),
        ArrayDataset(x, labels=1 - y, segments={"s": seg}),
        ArrayDataset(x, segments={"s": seg}),
        ArrayDataset(x, labels=y),
        ArrayDataset(x, labels=y, segments={"t": seg}),
        ArrayDataset(x.astype(np.float32), labels=y, segments={"s": seg}),
        ArrayDataset({"other": x}, labels=y, segments={"s": seg}),
        ArrayDataset(x, labels=y, segments={"s": seg[::-1].copy()}),
    ]
    fingerprints = {d.fingerprint() for d in changed}
    assert base not in fingerprints
    assert len(fingerprints) == len(changed)


def test_array_fingerprint_non_contiguous_equals_contiguous():
    x = np.arange(60.0).reshape(20, 3)
    view = np.asfortranarray(x)
    assert ArrayDataset(view).fingerprint() == ArrayDataset(x).fingerprint()


# -- ArrayDataset: errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": np.float64(1.0)}, InvalidParameterError, r"input 'features' is a scalar"),
        ({"features": {}}, InvalidParameterError, r"'features' is an empty mapping"),
        ({"features": {1: np.zeros(3)}}, InvalidParameterError, r"input names must be non-empty"),
        ({"features": {"": np.zeros(3)}}, InvalidParameterError, r"input names must be non-empty"),
        (
            {"features": [[1, 2], [3]]},
            InvalidParameterError,
            r"input 'features' cannot be converted to a numpy array",
        ),
        (
            {"features": np.zeros((3, 2)), "labels": np.zeros((3, 2))},
            InvalidParameterError,
            r"labels must be 1-D; got shape \(3, 2\).*argmax",
        ),
        (
            {"features": np.zeros((3, 2)), "segments": ["a", "b", "c"]},
            InvalidParameterError,
            r"'segments' must be a mapping",
        ),
        (
            {"features": np.zeros((3, 2)), "segments": {3: ["a", "b", "c"]}},
            InvalidParameterError,
            r"segment names must be non-empty strings",
        ),
        (
            {"features": np.zeros((3, 2)), "segments": {"s": np.zeros((3, 2))}},
            InvalidParameterError,
            r"segment 's' must be 1-D",
        ),
        (
            {"features": np.zeros((3, 2)), "labels": np.zeros(4)},
            DataError,
            r"different numbers of rows; got input 'features': 3, labels: 4",
        ),
        (
            {"features": {"a": np.zeros(3), "b": np.zeros(2)}},
            DataError,
            r"different numbers of rows; got input 'a': 3, input 'b': 2",
        ),
        (
            {"features": np.zeros((3, 2)), "segments": {"s": [1, 2]}},
            DataError,
            r"segment 's': 2",
        ),
        ({"features": np.zeros((0, 2))}, DataError, r"no rows; got 0 rows, expected at least 1"),
        (
            {"features": np.zeros((4, 2)), "labels": np.array([1.0, np.nan, 0.0, np.nan])},
            DataError,
            r"label column 'labels' has missing values; got 2 of 4 rows",
        ),
        (
            {"features": np.zeros((3, 2)), "labels": np.array(["a", None, "b"], dtype=object)},
            DataError,
            r"label column 'labels' has missing values; got 1 of 3 rows",
        ),
    ],
)
def test_array_dataset_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ArrayDataset(**kwargs)


@pytest.mark.parametrize(
    ("batch_size", "match"),
    [
        (0, r"must be positive; got 0"),
        (-3, r"got -3"),
        (2.5, r"must be an int; got 2.5"),
        (True, r"must be an int; got True"),
        ("8", r"must be an int"),
    ],
)
def test_batch_size_errors(batch_size, match):
    ds = ArrayDataset(np.zeros((3, 1)))
    with pytest.raises(InvalidParameterError, match=match):
        ds.batches(batch_size)


def test_numpy_integer_batch_size_accepted():
    ds = ArrayDataset(np.zeros((5, 1)))
    assert [len(b) for b in ds.batches(np.int64(2))] == [2, 2, 1]


# -- from_dataframe ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_from_dataframe_equals_frame(frame, collect, expected_segment, batch_size):
    ds = from_dataframe(frame, labels="label", segments=["lang", "bucket"])
    assert ds.segment_columns == ("lang", "bucket")
    inputs, labels, segments = collect(ds, batch_size)
    expected = frame[["f_float", "f_int", "f_f32"]].to_numpy()
    assert inputs["features"].dtype == np.float64
    np.testing.assert_array_equal(inputs["features"], expected)
    np.testing.assert_array_equal(labels, frame["label"].to_numpy())
    assert segments["lang"].tolist() == expected_segment(frame["lang"])
    assert segments["bucket"].tolist() == frame["bucket"].tolist()


def test_from_dataframe_explicit_features_order_and_dtype(frame):
    ds = from_dataframe(frame, labels=None, features=["f_f32"])
    (batch,) = list(ds.batches(1000))
    assert batch.labels is None
    assert batch.inputs["features"].dtype == np.float32
    np.testing.assert_array_equal(batch.inputs["features"][:, 0], frame["f_f32"].to_numpy())
    ds = from_dataframe(frame, labels=None, features=["f_int", "f_float"])
    (batch,) = list(ds.batches(1000))
    np.testing.assert_array_equal(batch.inputs["features"][:, 0], frame["f_int"].to_numpy())


def test_from_dataframe_string_labels_categorical_segments_nullable_features():
    df = pd.DataFrame(
        {
            "a": pd.array([1, None, 3], dtype="Int64"),
            "b": [0.5, 1.5, 2.5],
            "y": pd.array(["cat", "dog", "cat"], dtype="string"),
            "c": pd.Categorical(["u", None, "v"]),
        },
        index=[10, 20, 30],
    )
    ds = from_dataframe(df, labels="y", segments=["c"])
    (batch,) = list(ds.batches(8))
    np.testing.assert_array_equal(batch.inputs["features"], [[1.0, 0.5], [np.nan, 1.5], [3, 2.5]])
    assert batch.labels is not None and batch.labels.tolist() == ["cat", "dog", "cat"]
    assert batch.segments["c"].tolist() == ["u", "<NA>", "v"]
    assert batch.row_ids.tolist() == [0, 1, 2]  # positions, not the index


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"labels": "lable"},
            DataError,
            r"DataFrame: label column 'lable' not found; got columns \[.*'label'.*"
            r"Did you mean 'label'\?",
        ),
        (
            {"labels": "label", "segments": ["lagn"]},
            DataError,
            r"segment column 'lagn' not found.*Did you mean 'lang'\?",
        ),
        (
            {"labels": "label", "features": ["f_flaot"]},
            DataError,
            r"feature column 'f_flaot' not found.*Did you mean 'f_float'\?",
        ),
        ({"labels": "zzzzzz"}, DataError, r"Use one of the available columns"),
        (
            {"labels": "label"},
            DataError,
            r"text feature column 'lang' has missing values; got 3 of 257 rows.*Fill them",
        ),
        (
            {"labels": "label", "segments": ["lang"], "features": ["f_int", "label"]},
            DataError,
            r"the label column 'label' is also listed as a feature",
        ),
        (
            {"labels": "label", "segments": ["lang", "lang"]},
            DataError,
            r"segment columns are listed more than once; got \['lang'\]",
        ),
        (
            {"labels": "label", "segments": ["lang"], "features": ["f_int", "f_int"]},
            DataError,
            r"feature columns are listed more than once",
        ),
        (
            {"labels": "label", "segments": "lang"},
            InvalidParameterError,
            r"'segments' must be a sequence of column names; got the string 'lang'",
        ),
        (
            {"labels": "label", "segments": ["lang"], "features": "f_int"},
            InvalidParameterError,
            r"'features' must be a sequence",
        ),
    ],
)
def test_from_dataframe_errors(frame, kwargs, error, match):
    with pytest.raises(error, match=match):
        from_dataframe(frame, **kwargs)


def test_from_dataframe_text_feature_is_an_input_of_its_own(frame):
    df = frame.assign(lang=frame["lang"].fillna("xx"))
    ds = from_dataframe(df, labels="label", segments=["bucket"])
    assert ds.feature_columns == ("f_float", "f_int", "f_f32")
    (batch,) = list(ds.batches(len(df)))
    assert set(batch.inputs) == {"features", "lang"}
    assert batch.inputs["lang"].shape == (len(df), 1)
    assert batch.inputs["lang"][:, 0].tolist() == df["lang"].tolist()


def test_from_dataframe_feature_neither_number_nor_text_is_refused(frame):
    df = frame.assign(when=pd.Timestamp("2026-01-01"))
    with pytest.raises(DataError, match=r"numbers or text; got other columns \['when'\]"):
        from_dataframe(df, labels="label", segments=["lang"])


def test_from_dataframe_no_feature_columns():
    df = pd.DataFrame({"y": [0, 1], "s": ["a", "b"]})
    with pytest.raises(DataError, match=r"no feature columns"):
        from_dataframe(df, labels="y", segments=["s"])


def test_from_dataframe_no_rows(frame):
    with pytest.raises(DataError, match=r"DataFrame: the data has no rows"):
        from_dataframe(frame.iloc[:0], labels="label", segments=["lang"])


def test_from_dataframe_missing_labels(frame):
    df = frame.astype({"label": "float64"})
    df.loc[[2, 7, 9], "label"] = np.nan
    with pytest.raises(
        DataError, match=r"DataFrame: label column 'label' has missing values; got 3 of 257 rows"
    ):
        from_dataframe(df, labels="label", segments=["lang"])


def test_from_dataframe_not_a_frame():
    with pytest.raises(InvalidParameterError, match=r"'df' must be a pandas DataFrame; got dict"):
        from_dataframe({"a": [1]}, labels=None)  # type: ignore[arg-type]
