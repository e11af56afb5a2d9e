"""The slice search's state round-trips: a rebuilt search merges and answers the same."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from compval.metrics import SegmentTable, WeakSlices
from compval.stats import SliceSearch


def _rows(n: int, start: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b", "c"], size=n)
    ref = rng.uniform(size=n) < 0.9
    # The candidate is worse on large x of kind c: the slice the search should find.
    cand = ref & ~((x > 0.8) & (kind == "c") & (rng.uniform(size=n) < 0.6))
    return [x, kind], np.arange(start, start + n), ref, cand


def _search() -> SliceSearch:
    return SliceSearch(["x", "kind"], categorical=[False, True], n_bins=4, edge_rows=4096, seed=3)


@pytest.mark.parametrize("rows", [0, 1000, 9000])  # empty, edges pending, edges fixed
def test_state_round_trip_answers_and_merges_the_same(rows: int) -> None:
    search = _search()
    if rows:
        search.update(*_rows(rows, 0, seed=1))
    restored = SliceSearch.from_state(pickle.loads(pickle.dumps(search.state())))
    assert restored.rows_seen == search.rows_seen and restored.edges == search.edges
    other = search.empty()  # a shard shares the fixed edges, as the docs ask
    other.update(*_rows(6000, rows, seed=2))
    a, b = search.merge(other), restored.merge(other)
    assert a.result(min_rows=30, margin=0.0) == b.result(min_rows=30, margin=0.0)
    assert a.result(min_rows=30) == b.result(min_rows=30)
    # Updating the restored copy goes on exactly as the original would.
    more = _rows(3000, rows + 6000, seed=3)
    search.update(*more)
    restored.update(*more)
    assert search.result(min_rows=30) == restored.result(min_rows=30)


def test_weak_slices_state_round_trip() -> None:
    acc = WeakSlices(SegmentTable(), features=["x", "kind"], categorical=[False, True], seed=3)
    acc.search.update(*_rows(9000, 0, seed=1))
    copy = WeakSlices.from_state(acc.state())
    expected = acc.discovered(min_rows=30, confidence=0.95, top_k=5, margin=0.0)
    assert (
        expected and copy.discovered(min_rows=30, confidence=0.95, top_k=5, margin=0.0) == expected
    )
    assert (
        copy.merge(acc.empty()).discovered(min_rows=30, confidence=0.95, top_k=5, margin=0.0)
        == expected
    )
