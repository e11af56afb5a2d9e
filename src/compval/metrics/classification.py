"""Classification metrics from the 3-way contingency table (label, reference, candidate).

Direction convention: ``*_score`` and ``*_agreement`` are higher-is-better; ``*_rate`` is
lower-is-better, except ``flip_wrong_to_correct_rate`` which has no direction.

For each segment the table counts rows per (true class, reference prediction, candidate
prediction) cell. It holds everything: both models' accuracy, per-class precision / recall /
F1, macro and weighted F1, top-1 agreement and flips. The table is stored sparse (only cells
that occur, usually the diagonal plus the errors), so it scales to many classes.

Intervals (docs/statistics.md has the measured coverage): proportions (accuracy, recall,
agreement, flip rates) get Tango score and Clopper-Pearson intervals from their counts; the
non-linear metrics get a Bayesian bootstrap of the table: Gamma(count) per cell plus a prior on
discordant cells that were never observed, so zero observed flips never gives a zero-width
interval. Either way the cost is O(cells x replicates), independent of the number of rows.

Per-class metrics follow scikit-learn's conventions: a class with no predicted (or no true)
rows has precision (recall) 0, and macro F1 averages over the classes that occur in the true
labels or the model's predictions within the segment (sklearn's ``labels=None``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from statistics import NormalDist
from typing import Any

import numpy as np
from typing_extensions import Self

from compval.errors import IncompatibleMergeError
from compval.metrics._base import (
    Accumulator,
    EstimateItem,
    MetricEstimate,
    PairedRows,
    Resampling,
    build_estimates,
)
from compval.metrics._segments import SegmentTable
from compval.results import FlipMatrix
from compval.types import Array

__all__ = ["ContingencyTable", "TableMetrics"]

_BITS = 16
_MASK = (1 << _BITS) - 1
#: Label code of rows without a label.
NO_LABEL = _MASK
#: Prediction code of rows whose output was NaN/Inf: never equal to a label, so it counts as
#: a wrong prediction, and it is left out of per-class metrics.
INVALID = _MASK - 1


def _encode(seg: Array, label: Array, ref: Array, cand: Array) -> Array:
    return (
        (seg.astype(np.int64) << 48)
        | (label.astype(np.int64) << 32)
        | (ref.astype(np.int64) << 16)
        | cand.astype(np.int64)
    )


def _decode(keys: Array) -> tuple[Array, Array, Array, Array]:
    return (keys >> 48, (keys >> 32) & _MASK, (keys >> 16) & _MASK, keys & _MASK)


class ContingencyTable(Accumulator):
    """Sparse per-segment counts of (label, reference prediction, candidate prediction).

    Class indices and segment ids must be below 65,536.
    """

    family = "classification"

    def __init__(self, segments: SegmentTable, *, class_names: Sequence[str] = ()) -> None:
        super().__init__(segments)
        self.class_names: list[str] = list(class_names)
        self._keys = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[Array, Array]] = []
        self._pending_rows = 0

    def update(self, rows: PairedRows) -> None:
        """Count the batch's cells for every grouping (one ``np.unique`` per batch)."""
        if rows.ref_pred is None or rows.cand_pred is None:
            raise ValueError("ContingencyTable needs predicted classes")
        n = rows.ref_pred.shape[0]
        ref_pred = np.where(rows.ref_pred < 0, INVALID, rows.ref_pred)
        cand_pred = np.where(rows.cand_pred < 0, INVALID, rows.cand_pred)
        labels = (
            np.full(n, NO_LABEL, dtype=np.int64)
            if rows.labels is None
            else np.where(rows.labels < 0, NO_LABEL, rows.labels)
        )
        seg = rows.segment_ids
        keys = _encode(
            seg.reshape(-1),
            np.tile(labels, seg.shape[0]),
            np.tile(ref_pred, seg.shape[0]),
            np.tile(cand_pred, seg.shape[0]),
        )
        # Count the chunk's cells now (a chunk has far fewer distinct cells than rows), so
        # the work is done as rows stream in, not in one large sort at the end.
        cells, counts = np.unique(keys, return_counts=True)
        self._pending.append((cells, counts))
        self._pending_rows += cells.size
        if self._pending_rows > 1_000_000:
            self._consolidate()

    def _consolidate(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys, *(c for c, _ in self._pending)])
        counts = np.concatenate([self._counts, *(n for _, n in self._pending)])
        self._pending, self._pending_rows = [], 0
        self._keys, inverse = np.unique(keys, return_inverse=True)
        self._counts = np.bincount(inverse.reshape(-1), weights=counts).astype(np.int64)

    def state(self) -> dict[str, Any]:
        """Sorted cell keys and their counts, with segment and class names."""
        self._consolidate()
        return {
            "segments": list(self.segments.names),
            "class_names": list(self.class_names),
            "keys": self._keys.copy(),
            "counts": self._counts.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()``."""
        acc = cls(SegmentTable(state["segments"]), class_names=state.get("class_names", ()))
        acc._keys = np.asarray(state["keys"], dtype=np.int64)
        acc._counts = np.asarray(state["counts"], dtype=np.int64)
        return acc

    def empty(self) -> Self:
        """Same classes, no rows."""
        return type(self)(SegmentTable(), class_names=self.class_names)

    def merge(self, other: Self) -> Self:
        """Add counts cell by cell; segments are matched by name, classes must agree."""
        if not isinstance(other, ContingencyTable):
            raise IncompatibleMergeError(f"cannot merge ContingencyTable with {type(other)}")
        mine, theirs = self.state(), other.state()
        a, b = mine["class_names"], theirs["class_names"]
        if a and b and a[: len(b)] != b[: len(a)]:
            raise IncompatibleMergeError(f"cannot merge tables with different classes: {a} and {b}")
        table = SegmentTable(mine["segments"])
        lut = table.align(theirs["segments"])
        seg, label, ref, cand = _decode(theirs["keys"])
        remapped = _encode(lut[seg], label, ref, cand)
        keys = np.concatenate([mine["keys"], remapped])
        counts = np.concatenate([mine["counts"], theirs["counts"]])
        uniq, inverse = np.unique(keys, return_inverse=True)
        merged = np.bincount(inverse.reshape(-1), weights=counts).astype(np.int64)
        return type(self).from_state(
            {
                "segments": table.names,
                "class_names": a if len(a) >= len(b) else b,
                "keys": uniq,
                "counts": merged,
            }
        )

    # -- results -------------------------------------------------------------------------
    def segment_cells(self) -> dict[str | None, tuple[Array, Array, Array, Array]]:
        """Per segment name: (label, ref_pred, cand_pred, count) arrays of its cells."""
        self._consolidate()
        seg, label, ref, cand = _decode(self._keys)
        bounds = np.searchsorted(seg, np.arange(len(self.segments) + 1))
        out: dict[str | None, tuple[Array, Array, Array, Array]] = {}
        for s, name in enumerate(self.segments.names):
            lo, hi = bounds[s], bounds[s + 1]
            if hi > lo:
                out[name] = (label[lo:hi], ref[lo:hi], cand[lo:hi], self._counts[lo:hi])
        return out

    def flip_matrix(self) -> FlipMatrix | None:
        """Reference prediction x candidate prediction over all rows (None before any row)."""
        cells = self.segment_cells().get(None)
        if cells is None:
            return None
        _, ref, cand, count = cells
        k = max(
            len(self.class_names), *(int(a[a != INVALID].max(initial=-1)) + 1 for a in (ref, cand))
        )
        invalid = bool(np.any(ref == INVALID) or np.any(cand == INVALID))
        size = k + int(invalid)
        # Rows without a valid prediction get the extra index k.
        key = np.where(ref == INVALID, k, ref) * size + np.where(cand == INVALID, k, cand)
        keys, inverse = np.unique(key, return_inverse=True)
        rows = np.bincount(inverse.reshape(-1), weights=count).astype(np.int64)
        r, c = np.divmod(keys, size)
        agreed = np.zeros(size, dtype=np.int64)
        agreed[r[r == c]] = rows[r == c]
        off = np.flatnonzero(r != c)
        off = off[np.lexsort((c[off], r[off], -rows[off]))]
        names = [self.class_names[i] if i < len(self.class_names) else str(i) for i in range(k)]
        return FlipMatrix(
            classes=(*names, *(["(no valid prediction)"] if invalid else [])),
            agreed=tuple(int(v) for v in agreed),
            moved=tuple((int(r[i]), int(c[i]), int(rows[i])) for i in off),
        )

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """The paired tests, then every classification metric in every segment.

        Proportions get exact or score intervals (``_exact_intervals``); the non-linear
        metrics (precision, F1, macro and weighted F1) get the Bayesian table bootstrap
        (``TableMetrics.posterior_sums``); the tests (``paired_tests``) have none.
        """
        from compval.stats import stable_hash

        out: list[MetricEstimate] = self.paired_tests()
        groups: list[tuple[list[MetricEstimate], Mapping[str, tuple[int, int, int, int, int]]]]
        groups = []
        resampled = resampling is not None and resampling.replicates > 0
        for name, (label, ref, cand, count) in self.segment_cells().items():
            per_class = name is None or not str(name).startswith("label=")
            metrics = TableMetrics(label, ref, cand, class_names=self.class_names)
            counts = metrics.paired_counts(count, per_class=per_class)
            rows: dict[str, tuple[slice, slice]] = {}
            if resampled and per_class and metrics.has_labels:
                assert resampling is not None
                sums, rows = metrics.posterior_sums(
                    count,
                    per_class=per_class,
                    replicates=min(resampling.replicates, MAX_POSTERIOR_DRAWS),
                    seed=resampling.seed,
                    stream=stable_hash(f"table:{name}"),
                )
            else:
                sums = metrics.sums(count[None, :].astype(np.float64), per_class=per_class)
            items = []
            for metric, hib, paired, values in metrics.from_sums(sums, per_class=per_class):
                low, high = _replicates(metric, values, rows, counts)
                items.append(
                    EstimateItem(
                        metric=metric,
                        segment=name,
                        higher_is_better=hib,
                        paired=paired,
                        n=int(count.sum()),
                        point=_row(values, 0),
                        replicates=low,
                        upper_replicates=high,
                    )
                )
            estimates = build_estimates(items, resampling, method=BAYESIAN_TABLE)
            groups.append((estimates, counts))
        if resampled:
            assert resampling is not None
            return out + _exact_intervals(groups, resampling.confidence)
        return out + [e for estimates, _ in groups for e in estimates]

    def paired_tests(self) -> list[MetricEstimate]:
        """Paired tests and distances per segment, from the table (no pass over rows).

        * ``mcnemar_pvalue``: exact McNemar on the discordant pairs (two-sided; needs labels):
          do the two models differ in accuracy?
        * ``stuart_maxwell_pvalue``: Stuart-Maxwell marginal homogeneity on the (reference
          prediction, candidate prediction) table: do the two models predict the classes
          equally often? Paired, so a directed shift of a few rows in thousands is seen.
        * ``prediction_js_distance``, ``prediction_psi_distance``: effect sizes of the shift
          between the two predicted-class distributions (unpaired distances; no test).

        P-values that underflow are floored at the smallest positive double, never 0 or 1.
        They are reported as metrics, so a criterion can gate on them like on any other.
        """
        from compval.stats import jensen_shannon, mcnemar_exact, psi, stuart_maxwell

        out: list[MetricEstimate] = []
        for name, (label, ref, cand, count) in self.segment_cells().items():
            n = int(count.sum())
            if np.all(label != NO_LABEL):
                b = int(count[(label == ref) & (label != cand)].sum())
                c = int(count[(label != ref) & (label == cand)].sum())
                p = mcnemar_exact(b, c, n=n).p_value
                assert p is not None
                out.append(_paired_value("mcnemar_pvalue", name, n, p, True))
            k = int(max(ref[ref != INVALID].max(initial=0), cand[cand != INVALID].max(initial=0)))
            k += 2  # one more for the rows a model gave no valid prediction (NaN/Inf output)
            ref_idx = np.where(ref == INVALID, k - 1, ref)
            cand_idx = np.where(cand == INVALID, k - 1, cand)
            table = np.zeros((k, k), dtype=np.int64)
            np.add.at(table, (ref_idx, cand_idx), count)
            ref_counts, cand_counts = table.sum(axis=1), table.sum(axis=0)
            shift = stuart_maxwell(table).p_value
            assert shift is not None
            out.append(_paired_value("stuart_maxwell_pvalue", name, n, shift, True))
            if ref_counts.sum() == 0:
                continue
            for metric, value in (
                ("prediction_js_distance", jensen_shannon(ref_counts, cand_counts).estimate),
                ("prediction_psi_distance", psi(ref_counts, cand_counts).estimate),
            ):
                out.append(_paired_value(metric, name, n, value, False))
        return out


def _paired_value(
    metric: str, segment: str | None, n: int, value: float, hib: bool
) -> MetricEstimate:
    """A paired metric without an interval (a test's p-value or a distance)."""
    return MetricEstimate(
        metric=metric,
        segment=segment,
        higher_is_better=hib,
        paired=True,
        n=n,
        reference=None,
        candidate=float(value),
        delta=None,
    )


#: Posterior draws per prior and interval end (at most; fewer when ``replicates`` is smaller).
#: An interval's end is a 2.5% quantile of the draws: with 500 draws its Monte Carlo error is
#: about 6% of the interval's half-width (3% with 2,000), and the simulations behind
#: docs/statistics.md meet their bounds with 300. The draws are most of the statistics' cost of
#: a run with 50 segments: with 1,000 draws ``benchmarks/bench_statistics.py`` ran 1.54-1.59x
#: as long as the run without statistics, with 500 about 1.4x.
MAX_POSTERIOR_DRAWS = 500

#: Interval methods recorded in ``MetricEstimate.ci_method``.
TANGO = "tango_score"
EXACT = "clopper_pearson"
BAYESIAN_TABLE = "bayesian_table_bootstrap"

#: The averages over classes: their intervals come from the draws whose prior is spread over
#: the classes (about one discordant row per direction in the segment).
_AGGREGATE = ("macro_f1_score", "weighted_f1_score")


def _replicates(
    metric: str,
    values: Any,
    rows: Mapping[str, tuple[slice, slice]],
    counts: Mapping[str, tuple[int, int, int, int, int]],
) -> tuple[Any, Any]:
    """The posterior draws of a metric's lower and upper interval ends, or (None, None).

    Proportions with counts get exact intervals (``_exact_intervals``), so they need no
    draws; the class averages use the draws of the segment-wide prior, every per-class metric
    those of the per-class prior (``TableMetrics.posterior_sums``).
    """
    if not rows or (metric in counts and counts[metric][2] > 0):
        return None, None
    low, high = rows["aggregate" if metric in _AGGREGATE else "per_class"]
    return _row(values, low), _row(values, high)


def _exact_intervals(
    groups: Sequence[tuple[list[MetricEstimate], Mapping[str, tuple[int, int, int, int, int]]]],
    confidence: float,
) -> list[MetricEstimate]:
    """Replace bootstrap intervals by score intervals wherever the metric is a proportion.

    Each group is one segment's estimates and its counts:
    ``counts[metric] = (b, c, n, reference successes, candidate successes)`` where ``b``
    counts rows the reference got right and the candidate wrong and ``c`` the reverse (for
    per-class recall: within the class's rows). Paired deltas get Tango's score interval,
    single proportions the Clopper-Pearson interval; both keep their coverage at small and zero
    counts, where a bootstrap of a table without discordant cells returns [0, 0]. The ratio's
    interval is the delta's divided by the reference's value (which the ratio is conditional
    on). Every interval of every segment is computed in one vectorized call per method.
    """
    from compval.stats import clopper_pearson_intervals, tango_intervals

    flat = [(e, counts) for estimates, counts in groups for e in estimates]
    exact = [e.metric in counts and e.n > 0 and counts[e.metric][2] > 0 for e, counts in flat]
    picked = [counts[e.metric] for (e, counts), ok in zip(flat, exact, strict=True) if ok]
    table = np.asarray(picked, dtype=np.int64).reshape(-1, 5)
    b, c, n, ref_ok, cand_ok = table.T
    z = float(NormalDist().inv_cdf(0.5 + confidence / 2.0))
    d_low, d_high = tango_intervals(b, c, n, z=z)
    c_low, c_high = clopper_pearson_intervals(cand_ok, n, confidence=confidence)
    out: list[MetricEstimate] = []
    row = 0
    for (e, _), ok in zip(flat, exact, strict=True):
        if ok:
            cand_ci = (float(c_low[row]), float(c_high[row]))
            if e.paired:
                e = replace(
                    e, ci=cand_ci, ci_candidate=cand_ci, ci_method=EXACT, confidence=confidence
                )
            else:
                delta_ci = (float(d_low[row]), float(d_high[row]))
                ref_value = ref_ok[row] / n[row]
                ratio_ci = (
                    None
                    if ref_value == 0
                    else (1 + delta_ci[0] / ref_value, 1 + delta_ci[1] / ref_value)
                )
                e = replace(
                    e,
                    ci=delta_ci,
                    ci_candidate=cand_ci,
                    ci_ratio=ratio_ci,
                    ci_method=TANGO,
                    confidence=confidence,
                    # Under delta 0 the paired difference is +-1 on discordant rows, else 0;
                    # at least one discordant row, so no-flip data still plans honestly.
                    planning_sd=math.sqrt(max(int(b[row] + c[row]), 1) / int(n[row])),
                )
            row += 1
        out.append(e)
    return out


def _row(values: Any, index: Any) -> Any:
    if isinstance(values, tuple):
        return tuple(v[index] for v in values)
    return values[index]


class TableMetrics:
    """Metric math on one segment's cells, vectorized over rows of weights.

    ``weights`` has shape (M, cells): row 0 is usually the observed counts and the other rows
    posterior draws; ``sums`` reduces them to the sums every metric is a ratio of, and every
    metric comes out with shape (M,).
    """

    def __init__(
        self, label: Array, ref: Array, cand: Array, *, class_names: Sequence[str] = ()
    ) -> None:
        self.class_names = list(class_names)
        self.has_labels = bool(np.all(label != NO_LABEL))
        valid = [a[a < INVALID] for a in (ref, cand, label if self.has_labels else ref)]
        k = max(len(self.class_names), *(int(a.max(initial=-1)) + 1 for a in valid))
        self.n_classes = k
        # Invalid predictions (NaN/Inf outputs) get the extra index k: wrong, never a class.
        self.label = label
        self.ref = np.where(ref == INVALID, k, ref)
        self.cand = np.where(cand == INVALID, k, cand)

    def posterior_sums(
        self, count: Array, *, per_class: bool, replicates: int, seed: int, stream: int
    ) -> tuple[Array, dict[str, tuple[slice, slice]]]:
        """Bayesian-bootstrap draws of the table's sums, with a prior on unobserved discordance.

        Each draw weights every observed cell by Gamma(count) and adds prior cells: for every
        class c present, a row the candidate misses (label c, reference c, candidate none of
        the classes), one it wrongly calls c (label none of the classes, reference right), and
        the same two for the reference. Each touches class c alone.

        Each end of an interval comes from its own draws, as an exact interval takes each
        bound from the tail on its side: the lower end from draws whose prior holds only the
        candidate's misses and false alarms, the upper end from draws whose prior holds only
        the reference's. Zero observed discordance then still allows about 3.7 rows the
        candidate got wrong at the lower end (the exact Poisson bound, Gamma(0 + 1)), and an
        observed improvement is not inflated by prior mass on its own side.

        Two sizes of prior are drawn:

        * ``per_class``: shape 1 per prior cell, so each class keeps its own allowance;
          per-class precision and F1 use these draws.
        * ``aggregate``: shape 1 / (classes present) per prior cell, one row's worth for the
          segment; macro and weighted F1 use these (a per-class prior would claim one
          discordant row per class, far more than a segment of identical predictions allows).

        With many discordant rows the prior is negligible and the draws are Rubin's Bayesian
        bootstrap of the table. Sums are linear in the weights, so the observed cells' sums
        are computed once and each prior adds its few cells' sums: O(cells x replicates),
        independent of the number of rows.

        Args:
            count: Rows in each of the segment's cells (the arrays this object was built on).
            per_class: Whether per-class sums are wanted (``sums``).
            replicates: Draws per prior and side.
            seed: The run's seed.
            stream: The segment's stream (``stable_hash`` of its name).

        Returns:
            ``(sums, rows)``: sums (row 0: the observed counts; then the draws) for
            ``from_sums``, and, per prior, the rows of the lower end's draws and of the upper
            end's.
        """
        from compval.stats import gamma_table_weights

        k = self.n_classes
        present = np.zeros(k + 1, dtype=bool)
        for codes in (self.label, self.ref, self.cand):
            present[codes[codes < k]] = True
        classes = np.flatnonzero(present[:k])
        none = np.full(classes.size, k)
        # Candidate misses, candidate false alarms | reference misses, reference false alarms.
        # Index k is "none of the classes": wrong, and never a class.
        prior = copy.copy(self)
        prior.label = np.concatenate([classes, none, classes, none])
        prior.ref = np.concatenate([classes, none, none, classes])
        prior.cand = np.concatenate([none, classes, classes, none])
        m = prior.label.size
        half = m // 2
        shapes = np.concatenate(
            [count.astype(np.float64), np.full(m, 1.0 / max(classes.size, 1)), np.ones(m)]
        )
        draws = gamma_table_weights(shapes, replicates=replicates, seed=seed, stream=stream)
        observed = self.sums(
            np.concatenate([count[None, :].astype(np.float64), draws[:, : count.size]]),
            per_class=per_class,
        )
        worse, better = prior.subset(slice(0, half)), prior.subset(slice(half, m))
        groups = [observed[:1]]
        start = count.size
        for draw in (draws[:, start : start + m], draws[:, start + m :]):
            groups += [
                observed[1:] + worse.sums(draw[:, :half], per_class=per_class),
                observed[1:] + better.sums(draw[:, half:], per_class=per_class),
            ]

        def block(i: int) -> slice:
            return slice(1 + i * replicates, 1 + (i + 1) * replicates)

        rows = {"aggregate": (block(0), block(1)), "per_class": (block(2), block(3))}
        return np.concatenate(groups), rows

    def compute(
        self, weights: Array, *, per_class: bool = True
    ) -> list[tuple[str, bool | None, bool, Any]]:
        """(metric name, higher_is_better, paired, values) for every metric of the segment.

        Unpaired values are (reference, candidate) tuples. Per-class metrics are named
        ``recall_score[<class name>]`` (the class index when the class has no name).
        """
        return self.from_sums(self.sums(weights, per_class=per_class), per_class=per_class)

    def subset(self, cells: slice) -> TableMetrics:
        """The same metrics over a slice of the cells."""
        part = copy.copy(self)
        part.label, part.ref, part.cand = self.label[cells], self.ref[cells], self.cand[cells]
        return part

    def sums(self, weights: Array, *, per_class: bool = True) -> Array:
        """Every sum the metrics need, per row of weights: shape (M, 6 + 5 x classes).

        Columns: rows, agreements, correct per model, the two flips, then (per class, with
        labels and ``per_class``) true, predicted by each model, true positives of each model.
        """
        label, ref, cand = self.label, self.ref, self.cand
        ref_ok, cand_ok = label == ref, label == cand
        masks = (
            np.ones(label.size, dtype=bool),
            ref == cand,
            ref_ok,
            cand_ok,
            ref_ok & ~cand_ok,
            ~ref_ok & cand_ok,
        )
        cells = [np.flatnonzero(m) for m in masks]
        columns = [np.full(c.size, j) for j, c in enumerate(cells)]
        width = len(masks)
        if self.has_labels and per_class:
            k = self.n_classes
            codes = (label, ref, cand, np.where(ref_ok, label, k), np.where(cand_ok, label, k))
            for i, code in enumerate(codes):
                keep = np.flatnonzero(code < k)
                cells.append(keep)
                columns.append(width + i * k + code[keep])
            width += 5 * k
        return _grouped_sums(weights, np.concatenate(cells), np.concatenate(columns), width)

    def from_sums(
        self, sums: Array, *, per_class: bool = True
    ) -> list[tuple[str, bool | None, bool, Any]]:
        """The metrics of ``compute`` from the sums of ``sums``."""
        n = sums[:, 0]
        out: list[tuple[str, bool | None, bool, Any]] = []
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(("top1_agreement", True, True, sums[:, 1] / n))
            if not self.has_labels:
                return out
            out.append(("accuracy_score", True, False, (sums[:, 2] / n, sums[:, 3] / n)))
            out.append(("flip_correct_to_wrong_rate", False, True, sums[:, 4] / n))
            out.append(("flip_wrong_to_correct_rate", None, True, sums[:, 5] / n))
            if not per_class:
                return out
            k = self.n_classes
            true_k, pred_ref, pred_cand, tp_ref, tp_cand = (
                sums[:, 6 + i * k : 6 + (i + 1) * k] for i in range(5)
            )
            stats = {}
            for side, pred_k, tp_k in (("ref", pred_ref, tp_ref), ("cand", pred_cand, tp_cand)):
                precision = np.where(pred_k > 0, tp_k / pred_k, 0.0)
                recall = np.where(true_k > 0, tp_k / true_k, 0.0)
                denom = true_k + pred_k
                f1 = np.where(denom > 0, 2 * tp_k / denom, 0.0)
                present = denom > 0
                macro = (f1 * present).sum(axis=1) / present.sum(axis=1)
                weighted = (f1 * true_k).sum(axis=1) / true_k.sum(axis=1)
                stats[side] = (precision, recall, f1, macro, weighted, present)
            r, c = stats["ref"], stats["cand"]
            out.append(("macro_f1_score", True, False, (r[3], c[3])))
            out.append(("weighted_f1_score", True, False, (r[4], c[4])))
            observed = r[5][0] | c[5][0]
            for cls in np.flatnonzero(observed):
                tag = f"[{self._name(int(cls))}]"
                out.append(("precision_score" + tag, True, False, (r[0][:, cls], c[0][:, cls])))
                out.append(("recall_score" + tag, True, False, (r[1][:, cls], c[1][:, cls])))
                out.append(("f1_score" + tag, True, False, (r[2][:, cls], c[2][:, cls])))
        return out

    def paired_counts(
        self, count: Array, *, per_class: bool = True
    ) -> dict[str, tuple[int, int, int, int, int]]:
        """Counts behind the proportion metrics: metric -> (b, c, n, ref ok, cand ok).

        ``top1_agreement`` and the flip rates are single proportions (their "ok" counts are
        agreements, b and c); ``accuracy_score`` and ``recall_score[<class>]`` are paired
        proportions.
        """
        label, ref, cand = self.label, self.ref, self.cand
        n = int(count.sum())
        agree = int(count[ref == cand].sum())
        out = {"top1_agreement": (0, 0, n, agree, agree)}
        if not self.has_labels:
            return out
        ref_ok, cand_ok = label == ref, label == cand
        b = int(count[ref_ok & ~cand_ok].sum())
        c = int(count[~ref_ok & cand_ok].sum())
        out["accuracy_score"] = (b, c, n, int(count[ref_ok].sum()), int(count[cand_ok].sum()))
        out["flip_correct_to_wrong_rate"] = (b, c, n, b, b)
        out["flip_wrong_to_correct_rate"] = (b, c, n, c, c)
        if per_class:
            for cls in np.unique(label[label < INVALID]):
                rows = label == cls
                bk = int(count[rows & ref_ok & ~cand_ok].sum())
                ck = int(count[rows & ~ref_ok & cand_ok].sum())
                nk = int(count[rows].sum())
                ok_r, ok_c = int(count[rows & ref_ok].sum()), int(count[rows & cand_ok].sum())
                out[f"recall_score[{self._name(int(cls))}]"] = (bk, ck, nk, ok_r, ok_c)
        return out

    def _name(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)


def _grouped_sums(w: Array, cells: Array, columns: Array, width: int) -> Array:
    """``out[:, j] = sum of w[:, i] over the (i, j) pairs``: a sparse product, (M, width).

    Each cell feeds about eleven sums, so a sparse product costs O(M x cells) whatever the
    number of classes; a dense indicator matrix would cost O(M x cells x width), and
    multithreaded BLAS spends more time synchronizing threads than multiplying on matrices this
    small (ten times more on a busy machine, measured in ``benchmarks/bench_statistics.py``).

    Each sum adds its cells in increasing cell order, one at a time from zero (the order of
    scipy's CSC product, which this replaced to keep ``scipy.sparse``, a quarter of a second
    to import, off a run's path): columns fed by many cells with one running sum each
    (``np.add.accumulate`` is sequential), the others a cell rank at a time for all at once.
    """
    order = np.lexsort((cells, columns))
    cells, columns = cells[order], columns[order]
    weights = np.ascontiguousarray(w.T)  # (cells, M): a cell's weights are one row
    out = np.zeros((width, w.shape[0]))
    starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]]) if columns.size else columns
    lengths = np.diff(np.r_[starts, columns.size])
    long = lengths > _LONG_SUM
    for start, length in zip(starts[long], lengths[long], strict=True):
        run = weights[cells[start : start + length]]
        out[columns[start]] = np.add.accumulate(run, axis=0)[-1]
    starts, lengths = starts[~long], lengths[~long]
    for rank in range(int(lengths.max(initial=0))):
        at = starts[lengths > rank] + rank
        out[columns[at]] += weights[cells[at]]
    result: Array = out.T
    return result


#: Sums over more cells than this get a running sum of their own in ``_grouped_sums``.
_LONG_SUM = 32
