"""The block-sum fast paths give bit for bit the sums of the general ones.

``ColumnEntries`` (one small bincount per entry) against the flat sparse form it replaced,
and the per-segment maxima against ``np.maximum.at`` on the whole state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from metrics_helpers import make_rows

from compval.metrics import Calibration, ColumnEntries, KLQuantiles, PairedRows, SegmentTable
from compval.metrics._base import _entries_as_sparse, _segment_maxima
from compval.types import Array


class _FlatCalibration(Calibration):
    """Calibration with its entries given in the flat (column, value) form."""

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        entries, maxima, mask = super()._row_values(rows)
        return _entries_as_sparse(entries, mask.size), maxima, mask


class _FlatKL(KLQuantiles):
    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        entries, maxima, mask = super()._row_values(rows)
        return _entries_as_sparse(entries, mask.size), maxima, mask


def _batches(seed: int, n: int, late_class: bool) -> list[dict[str, np.ndarray]]:
    """Three batches; with ``late_class`` a class and a region first appear in the last one,
    so that its segment ids interleave (no disjoint grouping ranges: the general path)."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(3):
        k = 5
        labels = rng.integers(0, 4 if late_class and b < 2 else k, n)
        ref = rng.normal(size=(n, k)) * rng.uniform(0.1, 4)
        cand = ref + rng.normal(scale=0.3, size=(n, k))
        cand[rng.random(n) < 0.05, 1] = np.nan  # masked rows
        regions = ["north", "south"] + (["east"] if b == 2 or not late_class else [])
        region = np.array(regions, dtype=object)[rng.integers(0, len(regions), n)]
        out.append({"ref": ref, "cand": cand, "labels": labels, "region": region, "b": b})
    return out


@pytest.mark.parametrize("fast, flat", [(Calibration, _FlatCalibration), (KLQuantiles, _FlatKL)])
@pytest.mark.parametrize("late_class", [False, True])
@pytest.mark.parametrize("n", [1, 7, 500])
def test_column_entries_equal_the_flat_sparse_sums(
    fast: type, flat: type, late_class: bool, n: int
) -> None:
    table = SegmentTable()
    a, b = fast(table), flat(table)
    for batch in _batches(n + late_class, n, late_class):
        rows = make_rows(
            table,
            ref=batch["ref"],
            cand=batch["cand"],
            labels=batch["labels"],
            region=batch["region"],
            row_ids=np.arange(n, dtype=np.int64) + batch["b"] * n,
        )
        # make_rows' KL is absent: the accumulators compute it from the probabilities.
        a.update(rows)
        b.update(rows)
    sa, sb = a.state(), b.state()
    assert np.array_equal(sa["sums"], sb["sums"])
    assert np.array_equal(sa["rows"], sb["rows"])
    assert sa["segments"] == sb["segments"]
    assert sa["sums"].sum() > 0


def test_entries_count_each_row_in_its_column() -> None:
    """A hand-computed case: two cells, a strided entry and a weighted one."""
    from compval.metrics._base import _add_entries

    target = np.zeros((2, 7))
    local = np.array([0, 1, 1, 0, 1])
    entries = [
        ColumnEntries(0),
        ColumnEntries(1, 2, 3, np.array([0, 2, 2, 1, 0])),
        ColumnEntries(2, 2, 3, np.array([0, 2, 2, 1, 0]), np.array([0.5, 1.0, 2.0, 4.0, 8.0])),
    ]
    _add_entries(target, local, 2, entries)
    expected = np.array(
        [
            # rows 0 and 3: offsets 0 and 1
            [2, 1, 0.5, 1, 4.0, 0, 0],
            # rows 1, 2 and 4: offsets 2, 2 and 0
            [3, 1, 8.0, 0, 0, 2, 3.0],
        ]
    )
    assert np.array_equal(target, expected)


@pytest.mark.parametrize("seed", range(6))
def test_segment_maxima_equal_one_maximum_at(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_seg, k = 400, 9, 3
    # Overall (0), then two groupings with disjoint ids, as the engine lays them out.
    seg = np.stack([np.zeros(n, np.int64), rng.integers(1, 4, n), rng.integers(4, n_seg, n)])
    values = np.abs(rng.normal(size=(n, k)))
    values[rng.random((n, k)) < 0.3] = 0.0
    values[rng.random((n, k)) < 0.2] *= -0.0  # signed zeros, in some order
    values[rng.integers(0, n), 1] = np.nan
    state = np.full((n_seg, k), -np.inf)
    state[2] = [0.0, -0.0, 5.0]  # a state that already holds values
    expected = state.copy()
    with np.errstate(invalid="ignore"):
        for g in range(seg.shape[0]):
            np.maximum.at(expected, seg[g], values)
    _segment_maxima(state, seg, values)
    assert np.array_equal(state, expected, equal_nan=True)
    assert np.array_equal(np.signbit(state), np.signbit(expected))
