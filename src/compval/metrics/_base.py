"""The accumulator contract and the block-sum machinery shared by continuous metrics.

Laws, enforced by ``tests/metrics/test_laws.py`` for every accumulator:

* split invariance: updating on A then B gives the same estimates as merging the
  accumulator fed A with the one fed B;
* merge is commutative and associative, and ``empty()`` is its identity;
* ``from_state(acc.state())`` round-trips exactly.

State is sums, counts and maxima, never means, so merging is exact. State is indexed by
segment id; ids are assigned in order of first appearance (``SegmentTable``) and merges re-map
by segment *name*, so no result depends on ids.

Confidence intervals: continuous metrics keep their sums per (segment, block), where a row's
block is a hash of (seed, row id); a bootstrap replicate weights each block by Poisson(1)
(``compval.stats.block_weights``), so randomness is a function of (seed, row id, replicate)
and never of batch size or sharding. Each metric is a function of the sums, evaluated on the
totals for the estimate, on the weighted sums for the replicates and on the totals less one
block for the jackknife: one implementation. The interval is the t-expanded BCa interval
(``compval.stats.bca_intervals``): a plain percentile interval of a mean of skewed or
heavy-tailed rows covers 0.91-0.95 of the time; docs/statistics.md has the measured grid.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from typing_extensions import Self

from compval.errors import IncompatibleMergeError
from compval.metrics._segments import SegmentTable
from compval.types import Array

#: Rows are hashed into this many blocks (``PairedRows.blocks``); accumulators may use fewer
#: (a divisor), taking the block id modulo their count.
N_BLOCKS_MAX = 256

__all__ = [
    "N_BLOCKS_MAX",
    "Accumulator",
    "BlockSumsAccumulator",
    "ColumnEntries",
    "Derived",
    "MetricEstimate",
    "PairedRows",
    "Resampling",
]


@dataclass(frozen=True, slots=True)
class PairedRows:
    """One batch of paired outputs, prepared by the runner for the accumulators.

    Attributes:
        reference: The reference's compared output, float64, shape (rows, values per row).
        candidate: The candidate's, same shape.
        row_ids: int64 stable row ids.
        blocks: int64 bootstrap block of each row (a hash of seed and row id).
        segment_ids: int64 (groupings, rows): row r belongs to segment ``segment_ids[g, r]``
            for every grouping g (overall, label, each segment column).
        finite: bool (rows,): both models' outputs are finite on this row.
        labels: Classification: int64 class index (-1 when unknown); regression: float64
            (rows, outputs); None without labels.
        ref_pred: int64 predicted class index of the reference (classification).
        cand_pred: Same for the candidate.
        ref_prob: float64 (rows, classes) probabilities, when the outputs carry them.
        cand_prob: Same for the candidate.
        kl: Per-row KL(reference || candidate) (0 on non-finite rows), computed once per batch
            for the accumulators that need it.
        slice_columns: The columns the weak-slice search reads (features, then segment
            columns), for the rows in ``slice_keep`` only; None when no search runs.
        slice_keep: bool (rows,) mask of the rows the slice search sees; None for all.
    """

    reference: Array
    candidate: Array
    row_ids: Array
    blocks: Array
    segment_ids: Array
    finite: Array
    labels: Array | None = None
    ref_pred: Array | None = None
    cand_pred: Array | None = None
    ref_prob: Array | None = None
    cand_prob: Array | None = None
    kl: Array | None = None
    slice_columns: Sequence[Array] | None = None
    slice_keep: Array | None = None


@dataclass(frozen=True, slots=True)
class Resampling:
    """Bootstrap settings for ``Accumulator.estimates``."""

    replicates: int
    confidence: float
    seed: int


@dataclass(frozen=True, slots=True)
class MetricEstimate:
    """A metric's values in one segment, with intervals when resampling was on.

    ``paired`` metrics (agreement, output fidelity, KL) have one value, in ``candidate``;
    the others have a value per model and ``delta`` = candidate - reference. ``ci`` bounds the
    delta (paired: the value); ``ci_candidate`` and ``ci_ratio`` bound the candidate's value
    and candidate / reference. ``se``, ``se_candidate`` and ``se_ratio`` are the bootstrap
    standard errors of the delta (paired: the value), the candidate's value and the ratio (used
    for sample-size estimates and multi-segment p-values).
    """

    metric: str
    segment: str | None
    higher_is_better: bool | None
    paired: bool
    n: int
    reference: float | None
    candidate: float | None
    delta: float | None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    ci_candidate: tuple[float, float] | None = None
    ci_ratio: tuple[float, float] | None = None
    se: float | None = None
    confidence: float | None = None
    p_adjusted: float | None = None
    ci_method: str | None = None
    se_candidate: float | None = None
    se_ratio: float | None = None
    #: Per-row standard deviation of the delta if the candidate were truly no worse (delta
    #: 0), for sample-size planning; paired proportions: sqrt(discordant share).
    planning_sd: float | None = None


@dataclass(frozen=True, slots=True)
class Derived:
    """A metric computed from sums.

    ``fn`` maps sums (..., columns) to values (...), or, for unpaired metrics, to a
    (reference, candidate) pair of such arrays.
    """

    name: str
    higher_is_better: bool | None
    paired: bool
    fn: Callable[[Array], Any]
    bootstrap: bool = True


class Accumulator(abc.ABC):
    """Streaming, mergeable state for a family of metrics, per segment.

    Subclasses implement ``update``, ``merge``, ``state``, ``from_state`` and ``estimates``.
    They are created with the run's ``SegmentTable`` (shared, so ids agree across families).
    """

    family: ClassVar[str]

    def __init__(self, segments: SegmentTable) -> None:
        self.segments = segments

    @abc.abstractmethod
    def update(self, rows: PairedRows) -> None:
        """Add one batch."""

    @abc.abstractmethod
    def merge(self, other: Self) -> Self:
        """A new accumulator holding both states; neither input is changed."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """Sums and counts, with the segment names they are indexed by."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild an accumulator from ``state()``."""

    @abc.abstractmethod
    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """Every metric of the family in every segment that saw rows."""

    @abc.abstractmethod
    def empty(self) -> Self:
        """An accumulator with the same configuration and no rows."""


def _compact(cells: Array, n_cells: int) -> tuple[Array, Array]:
    """``np.unique(cells, return_inverse=True)`` for ints in ``[0, n_cells)``, in linear time.

    A table of all cells is cheap when it is not much larger than the batch (the usual case:
    tens of segments x 256 blocks); sorting the batch's cells cost more than the rest of the
    update. A huge table (100k segments) falls back to the sort.
    """
    if n_cells > 8 * cells.size:
        touched, local = np.unique(cells, return_inverse=True)
        return touched, local.reshape(-1)
    present = np.bincount(cells, minlength=n_cells)
    touched = np.flatnonzero(present)
    rank = np.empty(n_cells, dtype=np.int64)
    rank[touched] = np.arange(touched.size)
    return touched, rank[cells]


def _grouping_spans(seg: Array) -> list[tuple[int, int]] | None:
    """Per grouping, the range ``[lo, hi)`` of its segment ids, or None if two ranges overlap.

    Disjoint ranges mean no segment id occurs in two groupings (the engine's layout: overall,
    each label, each segment column's values), so per-grouping work touches disjoint state.
    """
    if seg.shape[1] == 0:
        return None
    lows, highs = seg.min(axis=1), seg.max(axis=1) + 1
    order = np.argsort(lows, kind="stable")
    if np.any(lows[order][1:] < highs[order][:-1]):
        return None
    return [(int(lo), int(hi)) for lo, hi in zip(lows, highs, strict=True)]


def _segment_maxima(maxima: Array, seg: Array, values: Array) -> None:
    """``np.maximum.at(maxima, seg[g], values)`` for every grouping g, in place.

    Each grouping's maxima are first taken into a fresh ``-inf`` array with one 1-D
    ``ufunc.at`` per column, then folded into the state with ``np.maximum``: numpy's fast
    ``ufunc.at`` path takes 1-D operands, and the 2-D call, or a call into a target already
    holding the state's values, measured 10-25x slower. The result is the same: a maximum does
    not depend on grouping, ``np.maximum`` keeps its first argument among equal values (so the
    earliest of two signed zeros, as the one-step call does), and NaN propagates either way.
    """
    with np.errstate(invalid="ignore"):  # NaN propagates, as in ``np.maximum``
        for g in range(seg.shape[0]):
            ids = seg[g]
            lo, hi = int(ids.min()), int(ids.max()) + 1
            local_ids = ids - lo if lo else ids
            for c in range(values.shape[1]):
                local = np.full(hi - lo, -np.inf)
                np.maximum.at(local, local_ids, values[:, c])
                maxima[lo:hi, c] = np.maximum(maxima[lo:hi, c], local)


@dataclass(frozen=True, slots=True)
class ColumnEntries:
    """One per-row value in one of the columns ``start + step * k``, k < ``width``.

    A third form of ``BlockSumsAccumulator._row_values``' values (a list of these), for rows
    that each touch a few columns: row r adds ``weights[r]`` (1.0 when None) to column
    ``start + step * offsets[r]`` (``start`` when ``offsets`` is None). The entries of one
    accumulator must touch disjoint columns: each entry is then summed with its own small
    ``bincount``, and every sum still takes its rows in row order, bit for bit the sums of the
    flat sparse form (which needs an index per row and column, a few times the memory traffic).
    """

    start: int
    step: int = 1
    width: int = 1
    offsets: Array | None = None
    weights: Array | None = None

    def masked(self, mask: Array) -> ColumnEntries:
        """The entries of the rows in ``mask`` only."""
        return ColumnEntries(
            self.start,
            self.step,
            self.width,
            None if self.offsets is None else self.offsets[mask],
            None if self.weights is None else self.weights[mask],
        )


def _entries_as_sparse(entries: Sequence[ColumnEntries], n: int) -> tuple[Array, Array]:
    """The (column index, value) pair of arrays, shape (rows, entries), of ``entries``."""
    cols = np.empty((n, len(entries)), dtype=np.int64)
    vals = np.empty((n, len(entries)))
    for i, entry in enumerate(entries):
        offsets = 0 if entry.offsets is None else entry.step * entry.offsets
        cols[:, i] = entry.start + offsets
        vals[:, i] = 1.0 if entry.weights is None else entry.weights
    return cols, vals


def _add_entries(
    target: Array, local: Array, n_cells: int, entries: Sequence[ColumnEntries]
) -> None:
    """Add ``entries`` into ``target`` (cells, columns): row r goes to cell ``local[r]``."""
    for entry in entries:
        index: Array = local if entry.offsets is None else local * entry.width + entry.offsets
        size = n_cells * entry.width
        # Counts (no weights) are exact integers: the same values as summing 1.0 per row.
        sums: Array = (
            np.bincount(index, minlength=size)
            if entry.weights is None
            else np.bincount(index, weights=entry.weights, minlength=size)
        )
        stop = entry.start + entry.step * entry.width
        target[:, entry.start : stop : entry.step] += sums.reshape(n_cells, entry.width)


class BlockSumsAccumulator(Accumulator):
    """Per-row values summed per (segment, block), plus per-segment maxima.

    Subclasses set ``columns`` (names of the per-row sums), ``max_columns`` (per-row values
    whose maximum is kept), and implement ``_row_values`` and ``derived``.
    """

    n_blocks: ClassVar[int] = 256

    def __init__(self, segments: SegmentTable, **config: Any) -> None:
        super().__init__(segments)
        self.config = dict(config)
        n_cols = len(self.columns())
        self._sums = np.zeros((len(segments), self.n_blocks, n_cols))
        self._maxima = np.full((len(segments), len(self.max_columns())), -np.inf)
        self._rows = np.zeros(len(segments), dtype=np.int64)

    # -- subclass interface --------------------------------------------------------------
    @abc.abstractmethod
    def columns(self) -> Sequence[str]:
        """Names of the per-row quantities that are summed."""

    def max_columns(self) -> Sequence[str]:
        """Names of the per-row quantities whose maximum is kept."""
        return ()

    @abc.abstractmethod
    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        """Per-row values to sum, per-row values to maximize (or None), rows that count.

        The values are either dense, shape (rows, columns), or sparse, a pair of arrays
        ``(column_index, value)`` of shape (rows, k) when each row touches only k columns
        (histograms), or a list of :class:`ColumnEntries` touching disjoint columns
        (calibration bins; the cheapest form when it applies).
        """

    @abc.abstractmethod
    def derived(self) -> Sequence[Derived]:
        """The metrics, as functions of the sums."""

    def _maximum_metrics(self) -> Sequence[tuple[str, int]]:
        """(metric name, max column) pairs reported from maxima (lower is better)."""
        return ()

    def bootstrap_columns(self) -> int:
        """How many leading columns the metrics with intervals read (default: all)."""
        return len(self.columns())

    def _block_has_rows(self) -> Array:
        """(segments, blocks): whether a block holds rows (its ``rows`` column, else any sum)."""
        names = list(self.columns())
        if "rows" in names:
            has: Array = self._sums[..., names.index("rows")] > 0
            return has
        return np.asarray(np.any(self._sums != 0, axis=-1))

    # -- accumulator ---------------------------------------------------------------------
    def _grow(self) -> None:
        missing = len(self.segments) - self._sums.shape[0]
        if missing > 0:
            self._sums = np.concatenate(
                [self._sums, np.zeros((missing, *self._sums.shape[1:]))], axis=0
            )
            self._maxima = np.concatenate(
                [self._maxima, np.full((missing, self._maxima.shape[1]), -np.inf)], axis=0
            )
            self._rows = np.concatenate([self._rows, np.zeros(missing, dtype=np.int64)])

    def update(self, rows: PairedRows) -> None:
        """Add one batch: ``bincount``s over (segment, block, column), rows in row order."""
        self._grow()
        values, maxima, mask = self._row_values(rows)
        every = bool(mask.all())
        seg = rows.segment_ids if every else rows.segment_ids[:, mask]
        if seg.shape[1] == 0:
            return
        n_seg, n_blocks, n_cols = self._sums.shape
        spans = _grouping_spans(seg)
        if isinstance(values, list):
            # Per-grouping bincounts as in the dense path below, under the same size limit.
            if spans is not None and self._sums.size <= 4 * seg.size * len(values):
                entries = values if every else [entry.masked(mask) for entry in values]
                blocks = rows.blocks if every else rows.blocks[mask]
                self._update_entries(entries, seg, blocks, spans)
                self._rows += np.bincount(seg.reshape(-1), minlength=n_seg)
                if maxima is not None and maxima.shape[1]:
                    _segment_maxima(self._maxima, seg, maxima if every else maxima[mask])
                return
            values = _entries_as_sparse(values, mask.size)
        if isinstance(values, tuple):
            cols, vals = (values[0], values[1]) if every else (values[0][mask], values[1][mask])
        else:
            vals = values if every else values[mask]
            cols = np.broadcast_to(np.arange(n_cols), vals.shape)
        blocks = rows.blocks if every else rows.blocks[mask]
        cell = seg * n_blocks + (blocks % n_blocks if n_blocks != N_BLOCKS_MAX else blocks)[None, :]
        if spans is not None and self._sums.size <= 4 * seg.shape[0] * vals.size:
            # Each grouping's segments are a range of ids that no other grouping touches, so
            # each (segment, block, column) sum takes its rows in the same order as in one
            # bincount over all groupings: the same sums, bit for bit, without copying the
            # values once per grouping. Dense values need no flat index at all: one bincount
            # per (grouping, column).
            by_column = None if isinstance(values, tuple) else np.ascontiguousarray(vals.T)
            for g, (lo, hi) in enumerate(spans):
                local = cell[g] - lo * n_blocks
                target = self._sums[lo:hi].reshape(-1, n_cols)
                if by_column is not None:
                    for j in range(n_cols):
                        target[:, j] += np.bincount(
                            local, weights=by_column[j], minlength=target.shape[0]
                        )
                else:
                    flat = (local[:, None] * n_cols + cols).reshape(-1)
                    target += np.bincount(
                        flat, weights=vals.reshape(-1), minlength=target.size
                    ).reshape(target.shape)
        elif self._sums.size <= 4 * seg.shape[0] * vals.size:
            # Small state: one dense bincount straight into it.
            weights = np.broadcast_to(vals[None, :, :], (seg.shape[0], *vals.shape)).reshape(-1)
            flat = (cell[..., None] * n_cols + cols[None, :, :]).reshape(-1)
            self._sums += np.bincount(flat, weights=weights, minlength=self._sums.size).reshape(
                self._sums.shape
            )
        else:
            # Large state (many segments or columns): compact to the (segment, block) cells the
            # batch touches, so the cost stays proportional to the batch.
            weights = np.broadcast_to(vals[None, :, :], (seg.shape[0], *vals.shape)).reshape(-1)
            touched, local = _compact(cell.reshape(-1), n_seg * n_blocks)
            flat = (local.reshape(*seg.shape, 1) * n_cols + cols[None, :, :]).reshape(-1)
            added = np.bincount(flat, weights=weights, minlength=touched.size * n_cols)
            self._sums.reshape(-1, n_cols)[touched] += added.reshape(-1, n_cols)
        self._rows += np.bincount(seg.reshape(-1), minlength=n_seg)
        if maxima is not None and maxima.shape[1]:
            maxima = maxima if every else maxima[mask]
            _segment_maxima(self._maxima, seg, maxima)

    def _update_entries(
        self,
        entries: Sequence[ColumnEntries],
        seg: Array,
        blocks: Array,
        spans: list[tuple[int, int]],
    ) -> None:
        """Add ``entries`` per grouping (disjoint id ranges: see the dense path in ``update``)."""
        n_blocks, n_cols = self._sums.shape[1:]
        block = blocks % n_blocks if n_blocks != N_BLOCKS_MAX else blocks
        for g, (lo, hi) in enumerate(spans):
            local = (seg[g] - lo) * n_blocks + block
            target = self._sums[lo:hi].reshape(-1, n_cols)
            _add_entries(target, local, target.shape[0], entries)

    def empty(self) -> Self:
        """Same configuration, a fresh segment table, no rows."""
        return type(self)(SegmentTable(), **self.config)

    def state(self) -> dict[str, Any]:
        """Sums (segments, blocks, columns), maxima, row counts, segment names, config."""
        self._grow()
        return {
            "segments": list(self.segments.names),
            "sums": self._sums.copy(),
            "maxima": self._maxima.copy(),
            "rows": self._rows.copy(),
            "config": dict(self.config),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()`` with a fresh segment table holding its names."""
        acc = cls(SegmentTable(state["segments"]), **state.get("config", {}))
        acc._sums = np.array(state["sums"], dtype=np.float64)
        acc._maxima = np.array(state["maxima"], dtype=np.float64)
        rows = state.get("rows")
        acc._rows = (
            np.zeros(acc._sums.shape[0], dtype=np.int64)
            if rows is None
            else np.array(rows, dtype=np.int64)
        )
        return acc

    def merge(self, other: Self) -> Self:
        """Union of segments by name; sums add, maxima take the maximum."""
        if type(other) is not type(self) or other.config != self.config:
            raise IncompatibleMergeError(
                f"cannot merge {type(self).__name__}({self.config}) with "
                f"{type(other).__name__}({getattr(other, 'config', None)})"
            )
        mine, theirs = self.state(), other.state()
        table = SegmentTable(mine["segments"])
        lut = table.align(theirs["segments"])
        n = len(table)
        sums = np.zeros((n, *mine["sums"].shape[1:]))
        maxima = np.full((n, mine["maxima"].shape[1]), -np.inf)
        rows = np.zeros(n, dtype=np.int64)
        k = mine["sums"].shape[0]
        sums[:k] += mine["sums"]
        maxima[:k] = mine["maxima"]
        rows[:k] += mine["rows"]
        np.add.at(sums, lut, theirs["sums"])
        np.maximum.at(maxima, lut, theirs["maxima"])
        np.add.at(rows, lut, theirs["rows"])
        return type(self).from_state(
            {
                "segments": table.names,
                "sums": sums,
                "maxima": maxima,
                "rows": rows,
                "config": self.config,
            }
        )

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """Every derived metric in every segment with rows; intervals from block weights."""
        from compval.stats import block_weights

        self._grow()
        totals = self._sums.sum(axis=1)  # (segments, columns)
        reps = None
        wants = any(m.bootstrap for m in self.derived())
        if resampling is not None and resampling.replicates > 0 and wants:
            weights = block_weights(
                n_blocks=self.n_blocks, replicates=resampling.replicates, seed=resampling.seed
            )
            # One GEMM: (replicates, blocks) @ (blocks, segments * columns), over the columns
            # the bootstrapped metrics read.
            used = self._sums[..., : self.bootstrap_columns()]
            n_seg, n_blocks, n_cols = used.shape
            flat = used.transpose(1, 0, 2).reshape(n_blocks, n_seg * n_cols)
            reps = (weights @ flat).reshape(-1, n_seg, n_cols)
            # Leave-one-block-out sums (segments, blocks, columns) for the BCa acceleration;
            # blocks without rows are no jackknife unit.
            held_out = totals[:, None, :n_cols] - used
            empty = ~self._block_has_rows()
        out: list[MetricEstimate] = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for metric in self.derived():
                # One metric at a time: every segment's replicate rows are stacked into one
                # matrix for the intervals, and with all metrics at once that matrix took
                # 2,000 replicates x 3 rows x metrics x segments (about 500 MB for 900
                # segments). Each row's interval is its own, so the results are the same.
                items: list[EstimateItem] = []
                point = metric.fn(totals)
                rep = jack = None
                if reps is not None and metric.bootstrap:
                    rep = metric.fn(reps)
                    jack = _mask(metric.fn(held_out), empty)
                for s, name in enumerate(self.segments.names[: totals.shape[0]]):
                    n = int(self._rows[s])
                    if n == 0:
                        continue
                    items.append(
                        EstimateItem(
                            metric=metric.name,
                            segment=name,
                            higher_is_better=metric.higher_is_better,
                            paired=metric.paired,
                            n=n,
                            point=_pick(point, s),
                            replicates=None if rep is None else _pick(rep, (slice(None), s)),
                            jackknife=None if jack is None else _pick(jack, s),
                        )
                    )
                out.extend(build_estimates(items, resampling, method=BLOCK_BCA))
            for metric_name, col in self._maximum_metrics():
                for s, name in enumerate(self.segments.names[: totals.shape[0]]):
                    if self._rows[s] == 0 or not np.isfinite(self._maxima[s, col]):
                        continue
                    out.append(
                        MetricEstimate(
                            metric=metric_name,
                            segment=name,
                            higher_is_better=False,
                            paired=True,
                            n=int(self._rows[s]),
                            reference=None,
                            candidate=float(self._maxima[s, col]),
                            delta=None,
                        )
                    )
        return out


#: Replicate vectors per interval computation (``_intervals``): 16 MB per copy at 2,000
#: replicates.
_INTERVAL_ROWS = 1024

#: ``MetricEstimate.ci_method`` of block-sum metrics: BCa over the Poisson block bootstrap,
#: with the block jackknife for the acceleration and t-expanded levels.
BLOCK_BCA = "block_bootstrap_bca"


def _mask(value: Any, empty: Array) -> Any:
    """NaN where ``empty`` (a metric's leave-one-block-out values of blocks without rows)."""
    if isinstance(value, tuple):
        return tuple(np.where(empty, np.nan, v) for v in value)
    return np.where(empty, np.nan, value)


def _pick(value: Any, index: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(v[index] for v in value)
    return value[index]


def _float(x: Any) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value


@dataclass(frozen=True, slots=True)
class EstimateItem:
    """One metric in one segment, before its intervals are computed.

    ``point`` is a scalar (paired) or a (reference, candidate) pair; ``replicates`` the same
    with a leading replicate axis, or None; ``jackknife`` the same with a leading axis of
    leave-one-block-out values (NaN for empty blocks), which turns the percentile interval
    into the t-expanded BCa interval (``compval.stats.bca_intervals``). With
    ``upper_replicates`` (same shape as ``replicates``) the interval's lower end is read from
    ``replicates`` and its upper end from ``upper_replicates`` (draws from two posteriors, one
    pessimistic and one optimistic for the candidate).
    """

    metric: str
    segment: str | None
    higher_is_better: bool | None
    paired: bool
    n: int
    point: Any
    replicates: Any
    jackknife: Any = None
    upper_replicates: Any = None


def build_estimates(
    items: Sequence[EstimateItem], resampling: Resampling | None, *, method: str
) -> list[MetricEstimate]:
    """Turn items into MetricEstimates, computing every interval in one call per method.

    For a paired metric the interval bounds its value; otherwise the delta (candidate -
    reference), the candidate's value and the ratio each get one. Items with ``jackknife``
    values get t-expanded BCa intervals, the others percentile intervals. ``se`` is the
    replicates' standard deviation of the quantity ``ci`` bounds.
    """
    confidence = resampling.confidence if resampling is not None else None
    rows: list[Array] = []
    uppers: list[Array | None] = []
    points: list[float] = []
    jacks: list[Array | None] = []
    for it in items:
        if it.replicates is None or confidence is None:
            continue
        jk = it.jackknife
        if it.paired:
            rows.append(np.asarray(it.replicates, dtype=np.float64))
            uppers.append(
                None if it.upper_replicates is None else np.asarray(it.upper_replicates, float)
            )
            points.append(float(it.point))
            jacks.append(None if jk is None else np.asarray(jk, dtype=np.float64))
        else:
            rows += _unpaired_rows(it.replicates)
            uppers += (
                [None] * 3 if it.upper_replicates is None else _unpaired_rows(it.upper_replicates)
            )
            p_ref, p_cand = float(it.point[0]), float(it.point[1])
            with np.errstate(divide="ignore", invalid="ignore"):
                p_rel = p_cand / p_ref if p_ref != 0 else np.nan
            points += [p_cand - p_ref, p_cand, p_rel]
            if jk is None:
                jacks += [None, None, None]
            else:
                j_ref = np.asarray(jk[0], dtype=np.float64)
                j_cand = np.asarray(jk[1], dtype=np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    j_rel = np.where(j_ref != 0, j_cand / j_ref, np.nan)
                jacks += [j_cand - j_ref, j_cand, j_rel]
    bounds, spreads = _intervals(rows, confidence, points=points, jackknife=jacks, upper=uppers)
    out: list[MetricEstimate] = []
    k = 0

    def take() -> tuple[tuple[float, float] | None, float | None]:
        nonlocal k
        b, sd = bounds[k], spreads[k]
        k += 1
        return b, sd

    for it in items:
        has = it.replicates is not None and confidence is not None
        if it.paired:
            value = _float(it.point)
            ci, se = take() if has else (None, None)
            out.append(
                MetricEstimate(
                    metric=it.metric,
                    segment=it.segment,
                    higher_is_better=it.higher_is_better,
                    paired=True,
                    n=it.n,
                    reference=None,
                    candidate=value,
                    delta=None,
                    ci=ci,
                    ci_candidate=ci,
                    se=se,
                    se_candidate=se,
                    confidence=confidence if ci is not None else None,
                    ci_method=method if ci is not None else None,
                )
            )
            continue
        ref, cand = (_float(v) for v in it.point)
        delta = None if ref is None or cand is None else cand - ref
        ratio = None if ref is None or cand is None or ref == 0 else cand / ref
        ci = ci_cand = ci_ratio = se = None
        se_cand = se_ratio = None
        if has:
            ci, se = take()
            ci_cand, se_cand = take()
            ci_ratio, se_ratio = take()
        out.append(
            MetricEstimate(
                metric=it.metric,
                segment=it.segment,
                higher_is_better=it.higher_is_better,
                paired=False,
                n=it.n,
                reference=ref,
                candidate=cand,
                delta=delta,
                ratio=ratio,
                ci=ci,
                ci_candidate=ci_cand,
                ci_ratio=ci_ratio,
                se=se,
                se_candidate=se_cand,
                se_ratio=se_ratio,
                confidence=confidence if ci is not None else None,
                ci_method=method if ci is not None else None,
            )
        )
    return out


def _unpaired_rows(replicates: Any) -> list[Array]:
    """Replicates of (reference, candidate) -> those of the delta, the candidate and the ratio."""
    r_ref = np.asarray(replicates[0], dtype=np.float64)
    r_cand = np.asarray(replicates[1], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(r_ref != 0, r_cand / r_ref, np.nan)
    return [r_cand - r_ref, r_cand, rel]


def _finite(rows: Sequence[Array]) -> Array:
    # Inf replicates (e.g. a ratio over a zero) are as uninformative as NaN ones.
    matrix = np.vstack(rows)
    out: Array = np.where(np.isfinite(matrix), matrix, np.nan)
    return out


def _intervals(
    rows: list[Array],
    confidence: float | None,
    *,
    points: Sequence[float] = (),
    jackknife: Sequence[Array | None] = (),
    upper: Sequence[Array | None] = (),
) -> tuple[list[tuple[float, float] | None], list[float | None]]:
    """Intervals and standard deviations of many replicate vectors at once.

    Rows with a jackknife vector get t-expanded BCa intervals; rows with an ``upper`` vector
    take their lower end from the row and their upper end from it; the others get percentile
    intervals. NaN replicates (e.g. a segment that got no rows in a replicate) are ignored,
    as in ``compval.stats.percentile_interval``; a vector with fewer than two finite values gets
    no interval.
    """
    if not rows or confidence is None:
        return [], []
    if len(rows) > _INTERVAL_ROWS:
        # In blocks of rows: the computation below makes about a dozen copies of the
        # (rows, replicates) matrix, 300 MB for 900 segments; each row's interval is its own,
        # so the results are the same.
        blocks = [
            _intervals(
                rows[lo : lo + _INTERVAL_ROWS],
                confidence,
                points=points[lo : lo + _INTERVAL_ROWS],
                jackknife=jackknife[lo : lo + _INTERVAL_ROWS],
                upper=upper[lo : lo + _INTERVAL_ROWS],
            )
            for lo in range(0, len(rows), _INTERVAL_ROWS)
        ]
        return [b for block in blocks for b in block[0]], [s for block in blocks for s in block[1]]
    from compval.stats import bca_intervals, bootstrap_quantiles, percentile_intervals

    matrix = _finite(rows)
    ok = (~np.isnan(matrix)).sum(axis=1) >= 2
    bounds: list[tuple[float, float] | None] = [None] * len(rows)
    spreads: list[float | None] = [None] * len(rows)
    has_jack = np.array([j is not None for j in jackknife] or [False] * len(rows))
    has_upper = np.array([u is not None for u in upper] or [False] * len(rows))
    low = np.full(len(rows), np.nan)
    high = np.full(len(rows), np.nan)
    plain = ok & ~has_jack & ~has_upper
    if plain.any():
        low[plain], high[plain] = percentile_intervals(matrix[plain], confidence=confidence)
    split = ok & has_upper
    if split.any():
        tail = (1.0 - confidence) / 2.0
        picked = [int(i) for i in np.flatnonzero(split)]
        levels = np.full((len(picked), 1), tail)
        low[split] = bootstrap_quantiles(matrix[split], levels)[:, 0]
        tops = _finite([u for i in picked if (u := upper[i]) is not None])
        high[split] = bootstrap_quantiles(tops, 1.0 - levels)[:, 0]
    bca = ok & has_jack
    if bca.any():
        chosen = [int(i) for i in np.flatnonzero(bca)]
        jack = np.vstack([jk for i in chosen if (jk := jackknife[i]) is not None])
        theta = np.asarray(points, dtype=np.float64)[chosen]
        low[bca], high[bca] = bca_intervals(
            theta, matrix[bca], np.where(np.isfinite(jack), jack, np.nan), confidence=confidence
        )
    if ok.any():
        sub = matrix[ok]
        sd = (
            np.std(sub, axis=1, ddof=1)
            if not np.isnan(sub).any()
            else np.nanstd(sub, axis=1, ddof=1)
        )
        for j, i in enumerate(np.flatnonzero(ok)):
            if np.isnan(low[i]) or np.isnan(high[i]):
                continue
            bounds[i] = (float(low[i]), float(high[i]))
            spreads[i] = float(sd[j])
    # A value that is infinite at the point and in every replicate is exact, not unknown: the
    # SQNR of a candidate whose outputs equal the reference's on every row is +inf in every
    # resample (no error anywhere). Its interval is the point itself, so a bound on it decides.
    if len(points) == len(rows):
        for k, (row, point) in enumerate(zip(rows, points, strict=True)):
            if bounds[k] is None and math.isinf(point) and row.size and np.all(row == point):
                bounds[k], spreads[k] = (point, point), 0.0
    return bounds, spreads
