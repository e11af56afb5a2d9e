"""Classification metrics from the 3-way contingency table (label, reference, candidate).

Direction convention: ``*_score`` and ``*_agreement`` are higher-is-better; ``*_rate`` is
lower-is-better, except ``flip_wrong_to_correct_rate`` which has no direction.

For each segment the table counts rows per (true class, reference prediction, candidate
prediction) cell. It holds everything: both models' accuracy, per-class precision / recall /
F1, macro and weighted F1, top-1 agreement and flips. The table is stored sparse (only cells
that occur, usually the diagonal plus the errors), so it scales to many classes. A bootstrap
replicate draws Poisson(n) for a cell of n rows, which is exactly the row-level Poisson
bootstrap but costs O(cells x replicates), independent of the number of rows.

Per-class metrics follow scikit-learn's conventions: a class with no predicted (or no true)
rows has precision (recall) 0, and macro F1 averages over the classes that occur in the true
labels or the model's predictions within the segment (sklearn's ``labels=None``).
"""

from __future__ import annotations

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

        Metrics get Poisson-table intervals; the tests (``paired_tests``) have none.
        """
        from compval.stats import poisson_table_counts, stable_hash

        out: list[MetricEstimate] = self.paired_tests()
        groups: list[tuple[list[MetricEstimate], Mapping[str, tuple[int, int, int, int, int]]]]
        groups = []
        for name, (label, ref, cand, count) in self.segment_cells().items():
            weights = count[None, :].astype(np.float64)
            if resampling is not None and resampling.replicates > 0:
                reps = poisson_table_counts(
                    count,
                    replicates=resampling.replicates,
                    seed=resampling.seed,
                    stream=stable_hash(f"table:{name}"),
                )
                weights = np.concatenate([weights, reps.astype(np.float64)], axis=0)
            per_class = name is None or not str(name).startswith("label=")
            metrics = TableMetrics(label, ref, cand, class_names=self.class_names)
            items = [
                EstimateItem(
                    metric=metric,
                    segment=name,
                    higher_is_better=hib,
                    paired=paired,
                    n=int(count.sum()),
                    point=_row(values, 0),
                    replicates=_row(values, slice(1, None)) if weights.shape[0] > 1 else None,
                )
                for metric, hib, paired, values in metrics.compute(weights, per_class=per_class)
            ]
            estimates = build_estimates(items, resampling, method="poisson_table_bootstrap")
            groups.append((estimates, metrics.paired_counts(count, per_class=per_class)))
        if resampling is not None and resampling.replicates > 0:
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


#: Fewer rows than this where the two models' predictions differ, and a bootstrap interval of
#: a non-linear metric (precision, F1, macro/weighted F1) is not trusted: resampling a table
#: with no (or few) discordant cells cannot vary the delta, so the interval collapses towards
#: [0, 0] whatever the number of rows. Such estimates carry no interval and criteria on them
#: are inconclusive ("cannot be decided at these counts"), never passed on a point estimate.
MIN_DISAGREEMENTS_FOR_BOOTSTRAP = 10

#: Interval methods recorded in ``MetricEstimate.ci_method``.
TANGO = "tango_score"
EXACT = "clopper_pearson"
UNTRUSTED = "none: too few disagreements for the bootstrap"

_NONLINEAR = ("precision_score", "f1_score", "macro_f1_score", "weighted_f1_score")


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
    for (e, counts), ok in zip(flat, exact, strict=True):
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
        elif (
            e.metric.split("[", 1)[0] in _NONLINEAR
            and counts["__disagreements__"][0] < MIN_DISAGREEMENTS_FOR_BOOTSTRAP
        ):
            e = replace(
                e, ci=None, ci_candidate=None, ci_ratio=None, se=None, se_candidate=None,
                se_ratio=None, ci_method=UNTRUSTED, confidence=None,
            )  # fmt: skip
        out.append(e)
    return out


def _row(values: Any, index: Any) -> Any:
    if isinstance(values, tuple):
        return tuple(v[index] for v in values)
    return values[index]


class TableMetrics:
    """Metric math on one segment's cells, vectorized over rows of weights.

    ``weights`` has shape (M, cells): row 0 is usually the observed counts and the other rows
    bootstrap replicates; every metric comes out with shape (M,).
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

    def compute(
        self, weights: Array, *, per_class: bool = True
    ) -> list[tuple[str, bool | None, bool, Any]]:
        """(metric name, higher_is_better, paired, values) for every metric of the segment.

        Unpaired values are (reference, candidate) tuples. Per-class metrics are named
        ``recall_score[<class name>]`` (the class index when the class has no name).
        """
        w = weights
        n = w.sum(axis=1)
        label, ref, cand = self.label, self.ref, self.cand
        out: list[tuple[str, bool | None, bool, Any]] = []
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(("top1_agreement", True, True, (w @ (ref == cand)) / n))
            if not self.has_labels:
                return out
            ref_ok, cand_ok = label == ref, label == cand
            out.append(("accuracy_score", True, False, ((w @ ref_ok) / n, (w @ cand_ok) / n)))
            out.append(("flip_correct_to_wrong_rate", False, True, (w @ (ref_ok & ~cand_ok)) / n))
            out.append(("flip_wrong_to_correct_rate", None, True, (w @ (~ref_ok & cand_ok)) / n))
            if not per_class:
                return out
            k = self.n_classes
            eye = np.eye(k + 1, dtype=np.float64)[:, :k]
            true_k = w @ eye[label]
            stats = {}
            for side, pred, ok in (("ref", ref, ref_ok), ("cand", cand, cand_ok)):
                pred_k = w @ eye[pred]
                tp_k = w @ (eye[label] * ok[:, None])
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
        proportions. ``__disagreements__`` carries the rows where the predictions differ.
        """
        label, ref, cand = self.label, self.ref, self.cand
        n = int(count.sum())
        agree = int(count[ref == cand].sum())
        out = {
            "top1_agreement": (0, 0, n, agree, agree),
            "__disagreements__": (n - agree, 0, n, 0, 0),
        }
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
