from __future__ import annotations

import json
import pickle
import re
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from compval.errors import (
    ApproximationWarning,
    EmptyAccumulatorError,
    IncompatibleMergeError,
    InvalidParameterError,
)
from compval.stats import SliceResult, SliceSearch, paired_proportion_delta_ci

NAMES = [f"px_{i}" for i in range(6)] + ["ink"]
CATEGORICAL = [False] * 6 + [True]


def planted_data(n: int = 6000, seed: int = 3) -> dict[str, np.ndarray]:
    """Candidate wrong on 30% of rows where px_3 is in its top quartile and ink == "b"."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    ink = rng.choice(np.array(["a", "b", "c"]), size=n)
    ref = rng.uniform(size=n) < 0.9
    cand = ref.copy()
    noise = rng.uniform(size=n) < 0.02
    cand[noise] = ~cand[noise]
    top_quartile = x[:, 3] >= np.quantile(x[:4096, 3], 0.75)
    cand[top_quartile & (ink == "b") & (rng.uniform(size=n) < 0.3)] = False
    return {"x": x, "ink": ink, "ref": ref, "cand": cand, "ids": np.arange(n) * 7 + 11}


def feed(
    search: SliceSearch, data: dict[str, np.ndarray], batch: int, rows: slice = slice(None)
) -> SliceSearch:
    x, ink = data["x"][rows], data["ink"][rows]
    ids, ref, cand = data["ids"][rows], data["ref"][rows], data["cand"][rows]
    for start in range(0, len(ids), batch):
        part = slice(start, start + batch)
        columns: Sequence[np.ndarray] = [x[part, j] for j in range(6)] + [ink[part]]
        search.update(columns, ids[part], ref[part], cand[part])
    return search


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return planted_data()


def test_finds_the_planted_weak_slice(data: dict[str, np.ndarray]) -> None:
    results = feed(SliceSearch(NAMES, categorical=CATEGORICAL, seed=1), data, 500).result()
    top = results[0]
    assert re.fullmatch(r"px_3 >= [-0-9.e+]+ & ink = b", top.description), top.description
    assert top.features == ("px_3", "ink")
    mask = (data["x"][:, 3] >= np.quantile(data["x"][:4096, 3], 0.75)) & (data["ink"] == "b")
    assert top.n == mask.sum()
    assert top.reference_accuracy == pytest.approx(data["ref"][mask].mean())
    assert top.candidate_accuracy == pytest.approx(data["cand"][mask].mean())
    assert top.delta < -0.2 and top.ci[1] < -0.15
    assert top.p_value_adjusted < 1e-10
    assert len(results) == 10
    assert [r.delta for r in results] == sorted(r.delta for r in results)


@pytest.mark.parametrize("edge_rows", [1, 999, 4096, 6000])
def test_edges_are_numpy_quantiles_of_the_first_edge_rows(
    data: dict[str, np.ndarray], edge_rows: int
) -> None:
    """Quartile edges of each numeric column over its first ``edge_rows`` rows, NaN left out,
    whatever the batches; float32 and float64 columns alike."""
    x = data["x"].copy()
    x[[5, 17, 400], 2] = np.nan
    columns = [x[:, j].astype(np.float32) if j % 2 else x[:, j] for j in range(6)]
    search = SliceSearch(NAMES, categorical=CATEGORICAL, seed=1, edge_rows=edge_rows)
    for start in range(0, len(x), 700):
        part = slice(start, start + 700)
        search.update(
            [c[part] for c in columns] + [data["ink"][part]],
            data["ids"][part],
            data["ref"][part],
            data["cand"][part],
        )
    assert search.edges is not None
    for j, column in enumerate(columns):
        first = np.asarray(column[:edge_rows], dtype=np.float64)
        first = first[~np.isnan(first)]
        expected = np.unique(np.quantile(first, [0.25, 0.5, 0.75]))
        np.testing.assert_array_equal(search.edges[NAMES[j]], expected)


def test_identical_results_for_batch_sizes_64_and_1000(data: dict[str, np.ndarray]) -> None:
    small = feed(SliceSearch(NAMES, categorical=CATEGORICAL, seed=1), data, 64)
    large = feed(SliceSearch(NAMES, categorical=CATEGORICAL, seed=1), data, 1000)
    assert small.edges == large.edges
    assert small.result(top_k=1000) == large.result(top_k=1000)


def test_merge_of_two_halves_equals_one_pass(data: dict[str, np.ndarray]) -> None:
    one_pass = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 300)
    first = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 300, slice(0, 4500))
    assert first.edges is not None
    second = feed(first.empty(), data, 300, slice(4500, None))
    merged = first.merge(second)
    assert merged.rows_seen == one_pass.rows_seen == 6000
    assert merged.result(top_k=1000) == one_pass.result(top_k=1000)
    assert first.rows_seen == 4500  # merge is pure


def test_merge_before_edges_are_fixed_equals_one_pass(data: dict[str, np.ndarray]) -> None:
    one_pass = feed(SliceSearch(NAMES, categorical=CATEGORICAL, edge_rows=3000), data, 250)
    parts = [
        feed(SliceSearch(NAMES, categorical=CATEGORICAL, edge_rows=3000), data, 250, part)
        for part in (slice(0, 1000), slice(1000, 2500), slice(2500, 6000))
    ]
    early = parts[0].merge(parts[1])
    assert early.edges is None
    # The third part fixed its edges on its own rows; the first two must adopt the one-pass
    # edges, so merge them first and feed the rest through an empty() clone.
    merged = early.merge(feed(early.empty(), data, 250, slice(2500, 3000)))
    assert merged.edges is not None and merged.edges == one_pass.edges
    rest = feed(merged.empty(), data, 250, slice(3000, 6000))
    assert merged.merge(rest).result(top_k=1000) == one_pass.result(top_k=1000)
    assert parts[2].edges != one_pass.edges
    with pytest.raises(IncompatibleMergeError, match=r"numeric bin edges differ"):
        merged.merge(parts[2])


def test_unfixed_search_adopts_the_edges_of_a_fixed_one(data: dict[str, np.ndarray]) -> None:
    fixed = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 1000, slice(0, 5000))
    small = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 1000, slice(5000, None))
    assert small.edges is None
    merged = small.merge(fixed)
    assert merged.edges == fixed.edges
    one_pass = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 1000)
    assert merged.result(top_k=1000) == one_pass.result(top_k=1000)


def test_statistics_of_every_slice_match_direct_computation() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    colour = rng.choice(np.array(["red", "green", "blue", "grey"]), size=n)
    size = rng.choice(np.array([1, 2, 3]), size=n)
    ref = rng.uniform(size=n) < 0.8
    cand = np.where(rng.uniform(size=n) < 0.1, ~ref, ref)
    search = SliceSearch(["colour", "size"], categorical=[True, True])
    search.update(np.column_stack([colour, size]).astype(object), np.arange(n), ref, cand)
    results = search.result(min_rows=1, top_k=10_000, confidence=0.9)
    assert len(results) == 4 + 3 + 12
    p_values = []
    for result in results:
        mask = np.ones(n, dtype=bool)
        for condition in result.description.split(" & "):
            name, value = condition.split(" = ")
            mask &= (colour if name == "colour" else size.astype(str)) == value
        b = int(np.sum(mask & ref & ~cand))
        c = int(np.sum(mask & ~ref & cand))
        assert result.n == mask.sum()
        assert result.delta == pytest.approx((c - b) / mask.sum())
        assert result.p_value == pytest.approx(stats.binomtest(b, b + c).pvalue if b + c else 1.0)
        assert result.ci == pytest.approx(
            paired_proportion_delta_ci(b, c, int(mask.sum()), confidence=0.9)
        )
        assert result.flip_correct_to_wrong_rate == pytest.approx(b / mask.sum())
        assert result.slices_searched == len(results)
        p_values.append(result.p_value)
    holm = multipletests(p_values, method="holm")[1]
    np.testing.assert_allclose([r.p_value_adjusted for r in results], holm, rtol=1e-12)


def test_flip_rate_metric_ranks_by_correct_to_wrong_flips(data: dict[str, np.ndarray]) -> None:
    search = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 2000)
    results = search.result(metric="flip_rate", top_k=20)
    rates = [r.flip_correct_to_wrong_rate for r in results]
    assert rates == sorted(rates, reverse=True)
    assert "px_3 >=" in results[0].description and "ink = b" in results[0].description


def test_min_rows_and_whole_data_slices_are_skipped() -> None:
    n = 400
    group = np.where(np.arange(n) < 20, "rare", "common")
    constant = np.zeros(n)
    ref = np.ones(n, dtype=bool)
    cand = np.arange(n) % 3 != 0
    search = SliceSearch(["group", "const"], categorical=[True, False])
    search.update([group, constant], np.arange(n), ref, cand)
    descriptions = [r.description for r in search.result(min_rows=30, top_k=100)]
    assert descriptions == ["group = common"]
    assert search.result(min_rows=10_000) == []


def test_missing_values_and_many_categories() -> None:
    n = 2000
    rng = np.random.default_rng(8)
    value = rng.normal(size=n)
    value[:300] = np.nan
    code = (np.arange(n) % 300).astype(str)  # 300 categories: codes need uint16
    ref = np.ones(n, dtype=bool)
    cand = ~np.isnan(value)
    search = SliceSearch(["value", "code"], categorical=[False, True], n_bins=2)
    search.update([value, code], np.arange(n), ref, cand)
    top = search.result(min_rows=5)[0]
    assert top.description == "value is missing" and top.candidate_accuracy == 0.0
    assert len(search.result(min_rows=5, top_k=10_000)) > 300


def test_subsample_beyond_max_rows_is_deterministic(data: dict[str, np.ndarray]) -> None:
    first = feed(SliceSearch(NAMES, categorical=CATEGORICAL, max_rows=1500, seed=4), data, 100)
    second = feed(SliceSearch(NAMES, categorical=CATEGORICAL, max_rows=1500, seed=4), data, 777)
    with pytest.warns(ApproximationWarning, match=r"subsample of 1500 of 6000 rows"):
        a = first.result(min_rows=1, top_k=10_000)
    with pytest.warns(ApproximationWarning):
        b = second.result(min_rows=1, top_k=10_000)
    assert a == b
    ink_rows = sum(r.n for r in a if r.features == ("ink",))
    assert ink_rows == 1500


def test_search_is_picklable_and_results_serialize(data: dict[str, np.ndarray]) -> None:
    search = feed(SliceSearch(NAMES, categorical=CATEGORICAL), data, 3000)
    clone = pickle.loads(pickle.dumps(search))
    results = clone.result(top_k=3)
    assert results == search.result(top_k=3)
    payload = json.loads(json.dumps([r.to_dict() for r in results]))
    assert payload[0]["features"] == ["px_3", "ink"] and len(payload[0]["ci"]) == 2
    assert isinstance(results[0], SliceResult)


def test_result_with_fewer_rows_than_edge_rows_does_not_fix_edges() -> None:
    search = SliceSearch(["x"], categorical=[False], n_bins=2, edge_rows=100)
    search.update([np.arange(60.0)], np.arange(60), np.ones(60, bool), np.arange(60) < 30)
    assert search.result(min_rows=10)[0].description == "x >= 29.5"
    assert search.edges is None
    search.update(
        [np.arange(60.0, 120.0)], np.arange(60, 120), np.ones(60, bool), np.ones(60, bool)
    )
    assert search.edges == {"x": (49.5,)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_names": []}, r"feature_names must be non-empty strings; got \(\)"),
        (
            {"feature_names": ["a", "a"], "categorical": [True, True]},
            r"must be unique; got duplicates \['a'\]",
        ),
        (
            {"categorical": [True]},
            r"categorical must hold one bool per feature; got \(True,\) for 2",
        ),
        ({"n_bins": 300}, r"n_bins too large; got 300, expected at most 255"),
        ({"edge_rows": 0}, r"edge_rows: must be at least 1; got 0"),
    ],
)
def test_constructor_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"feature_names": ["a", "b"], "categorical": [True, False]}
    arguments.update(kwargs)
    names = arguments.pop("feature_names")
    with pytest.raises(InvalidParameterError, match=message):
        SliceSearch(names, **arguments)  # type: ignore[arg-type]


def test_update_errors() -> None:
    search = SliceSearch(["a", "b"], categorical=[True, False])
    ok = (np.arange(3), np.ones(3, bool), np.ones(3, bool))
    with pytest.raises(
        InvalidParameterError, match=r"wrong number of feature columns; got 1, expected 2"
    ):
        search.update([np.zeros(3)], *ok)
    with pytest.raises(InvalidParameterError, match=r"features must be 2-D \(rows, features\)"):
        search.update(np.zeros(3), *ok)
    with pytest.raises(
        InvalidParameterError, match=r"features must be a 2-D array or a list of columns; got int"
    ):
        search.update(3, *ok)
    with pytest.raises(InvalidParameterError, match=r"feature 'b' has shape \(2,\); got 3 row ids"):
        search.update([np.zeros(3), np.zeros(2)], *ok)
    with pytest.raises(
        InvalidParameterError, match=r"numeric feature 'b' holds non-numeric values"
    ):
        search.update([np.zeros(3), np.array(["x", "y", "z"])], *ok)
    with pytest.raises(InvalidParameterError, match=r"ref_correct: not a correctness flag"):
        search.update(
            [np.zeros(3), np.zeros(3)], np.arange(3), np.array([0, 2, 1]), np.ones(3, bool)
        )
    with pytest.raises(InvalidParameterError, match=r"cand_correct: wrong shape; got \(2,\)"):
        search.update([np.zeros(3), np.zeros(3)], np.arange(3), np.ones(3, bool), np.ones(2, bool))
    with pytest.raises(InvalidParameterError, match=r"row_ids: must be a 1-D integer array"):
        search.update([np.zeros(3), np.zeros(3)], np.zeros(3), np.ones(3, bool), np.ones(3, bool))
    many = np.arange(70_000).astype(str)
    with pytest.raises(
        InvalidParameterError, match=r"feature 'a' has too many categories; got 70000"
    ):
        search.update(
            [many, np.zeros(70_000)],
            np.arange(70_000),
            np.ones(70_000, bool),
            np.ones(70_000, bool),
        )
    assert search.rows_seen == 0  # failed updates change nothing
    search.update(
        [np.array([], dtype=str), np.array([])],
        np.array([], dtype=np.int64),
        np.array([], bool),
        np.array([], bool),
    )
    assert search.rows_seen == 0


def test_result_and_merge_errors() -> None:
    search = SliceSearch(["a"], categorical=[True])
    with pytest.raises(EmptyAccumulatorError, match=r"SliceSearch.result: no rows; got 0 rows"):
        search.result()
    search.update([np.array(["x", "y"])], np.arange(2), np.array([1, 0]), np.array([0, 1]))
    with pytest.raises(InvalidParameterError, match=r"unknown metric; got 'f1'"):
        search.result(metric="f1")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"confidence: out of range; got 1.5"):
        search.result(confidence=1.5)
    with pytest.raises(InvalidParameterError, match=r"pair_features: negative count; got -1"):
        search.result(pair_features=-1)
    with pytest.raises(IncompatibleMergeError, match=r"configurations differ"):
        search.merge(SliceSearch(["a"], categorical=[True], seed=3))
    with pytest.raises(IncompatibleMergeError, match=r"configurations differ; got 'str'"):
        search.merge("nope")  # type: ignore[arg-type]


def _mask(description: str, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Rows a slice description selects, parsed back (numbers print exactly in this test)."""
    mask = np.ones(len(next(iter(columns.values()))), dtype=bool)
    for condition in description.split(" & "):
        name, rest = condition.split(" ", 1)
        values = columns[name]
        if rest.startswith("= "):
            mask &= values == rest[2:]
        elif rest == "is missing":
            mask &= np.isnan(values)
        elif rest == "is not missing":
            mask &= ~np.isnan(values)
        elif rest.startswith("< "):
            mask &= values < float(rest[2:])
        elif rest.startswith(">= "):
            mask &= values >= float(rest[3:])
        else:
            low, high = (float(v) for v in re.findall(r"[-\d.]+", rest))
            mask &= (values >= low) & (values < high)
    return mask


def test_counts_of_every_slice_match_the_rows_for_every_key_width() -> None:
    # Pairs of small codes (uint16 keys), of a feature with 600 categories and a numeric one
    # (keys past 2**16), and of two features with 1,100 and 1,000 categories (past the dense
    # limit: the sparse path). Every slice's counts must be those of the rows it describes.
    rng = np.random.default_rng(11)
    n = 3000
    columns = {
        "a": rng.integers(0, 10, n).astype(float),
        "b": (rng.uniform(size=n) < 0.3).astype(float),  # ties: fewer edges than 'a'
        "g": rng.choice(np.array(["x", "y", "z"]), size=n),
        "id": rng.integers(0, 600, n).astype(str),
        "id2": rng.integers(0, 1100, n).astype(str),
        "id3": rng.integers(0, 1000, n).astype(str),
    }
    columns["a"][rng.uniform(size=n) < 0.1] = np.nan
    ref = rng.uniform(size=n) < 0.7
    cand = np.where(rng.uniform(size=n) < 0.2, ~ref, ref)
    names = list(columns)
    search = SliceSearch(names, categorical=[False, False, True, True, True, True])
    search.update([columns[k] for k in names], np.arange(n), ref, cand)
    results = search.result(min_rows=1, top_k=10**6, pair_features=len(names))
    assert len({r.description for r in results}) == len(results)
    assert {tuple(r.features) for r in results if len(r.features) == 2} >= {
        ("a", "b"),
        ("a", "id"),
        ("id2", "id3"),
    }
    # Every slice of the small features, and a fixed share of the thousands of others.
    checked = [r for i, r in enumerate(results) if i % 20 == 0 or "id" not in r.description]
    assert {tuple(r.features) for r in checked} >= {("a", "id"), ("id2", "id3")}
    for result in checked:
        mask = _mask(result.description, columns)
        assert result.n == int(mask.sum()), result.description
        assert result.flip_correct_to_wrong_rate * result.n == pytest.approx(
            int(np.sum(mask & ref & ~cand))
        )
        assert result.flip_wrong_to_correct_rate * result.n == pytest.approx(
            int(np.sum(mask & ~ref & cand))
        )
    assert len(results) == results[0].slices_searched


def test_infinite_values_fall_in_the_top_bin_of_a_feature_with_few_edges() -> None:
    # 'b' has one edge, 'a' three: +inf in 'b' once got a code past b's codes (a crash), or
    # the missing code. It belongs in b's top bin, like any value above the last edge.
    rng = np.random.default_rng(4)
    n = 5000
    a = rng.normal(size=n)
    b = np.zeros(n)
    b[-100:] = 1.0
    b[:50] = np.inf
    b[50:60] = -np.inf
    ref = rng.uniform(size=n) < 0.8
    cand = np.where(rng.uniform(size=n) < 0.1, ~ref, ref)
    search = SliceSearch(["a", "b"], categorical=[False, False])
    search.update([a, b], np.arange(n), ref, cand)
    assert search.edges is not None and search.edges["b"] == (0.0,)
    results = search.result(min_rows=1, top_k=10_000)
    singles = {r.description: r.n for r in results if r.features == ("b",)}
    assert singles == {"b < 0.0": 10, "b >= 0.0": n - 10}


def _stored_codes(search: SliceSearch) -> np.ndarray:
    return np.concatenate([codes for codes, _, _ in search._stored])


def test_float32_features_bin_exactly_as_their_float64_values(data: dict[str, np.ndarray]) -> None:
    """float32 columns are binned in float32 (``_float32_thresholds``): the same codes, edges
    and results as the same values given as float64, ties on the edges and inf/NaN included."""
    x32 = data["x"].astype(np.float32)
    # Values equal to the future edges (quantiles of the first 4,096 rows) and just around them.
    x32[5000:5010, 3] = np.quantile(x32[:4096, 3].astype(np.float64), 0.75)
    x32[5010:5020, 3] = np.nextafter(x32[5000:5010, 3], np.float32(np.inf))
    x32[5020, 0], x32[5021, 1], x32[5022, 2] = np.inf, -np.inf, np.nan
    as32 = {**data, "x": x32}
    as64 = {**data, "x": x32.astype(np.float64)}
    names, flags = NAMES, CATEGORICAL
    a = feed(SliceSearch(names, categorical=flags, seed=5), as32, batch=700)
    b = feed(SliceSearch(names, categorical=flags, seed=5), as64, batch=700)
    assert all(np.array_equal(e, f) for e, f in zip(a._edges, b._edges, strict=True))
    assert np.array_equal(_stored_codes(a), _stored_codes(b))
    assert a.result(min_rows=50) == b.result(min_rows=50)


def test_float32_thresholds_agree_with_float64_comparisons() -> None:
    from compval.stats._slices import _float32_thresholds

    rng = np.random.default_rng(0)
    f32 = np.finfo(np.float32)
    x = (rng.normal(size=3000) * 10.0 ** rng.integers(-40, 38, 3000)).astype(np.float32)
    x[:8] = [np.inf, -np.inf, np.nan, 0.0, -0.0, f32.max, -f32.max, f32.smallest_subnormal]
    edges = np.concatenate(
        [
            x[rng.integers(8, 3000, 40)].astype(np.float64),  # exactly representable
            x[rng.integers(8, 3000, 40)].astype(np.float64) * (1 + 1e-12),  # between floats
            [np.nan, 1e39, -1e39, 1e-46, -1e-46, 0.0],
        ]
    )
    assert x.dtype == np.float32
    thresholds = _float32_thresholds(edges)
    assert thresholds.dtype == np.float32
    with np.errstate(invalid="ignore"):
        exact = x[:, None].astype(np.float64) >= edges[None, :]
        fast = x[:, None] >= thresholds[None, :]
    assert np.array_equal(exact, fast)


@pytest.mark.parametrize(
    "column",
    [
        np.array(["b", "a", "b", "é", "a"], dtype=object),
        np.array([1, "1", 1.0, True, None], dtype=object),  # equal as keys, not as text
        np.array(["a\x00", "a", "b"], dtype=object),  # numpy's text drops trailing NULs
        np.array([1.5, float("nan"), 2.0, float("nan")], dtype=object),
        np.array([3, 1, 3]),
        np.array(["x", "y", "x"]),
        np.array([], dtype=object),
    ],
)
def test_unique_text_equals_numpy_unique_of_the_text(column: np.ndarray) -> None:
    from compval.stats._slices import _unique_text

    unique, inverse = _unique_text(column)
    expected, expected_inverse = np.unique(column.astype(str), return_inverse=True)
    assert list(unique) == list(expected)
    assert np.array_equal(inverse, expected_inverse.reshape(-1))
