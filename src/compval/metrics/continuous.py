"""Metrics of continuous outputs, kept as block sums (see ``_base``).

Direction convention: ``*_similarity``, ``*_db`` and ``*_score`` are higher-is-better;
``*_diff``, ``*_divergence``, ``*_error``, ``*_loss`` and ``*_count`` are lower-is-better.

Rows where either model's output is NaN or Inf are counted by ``NonFiniteCounts`` and left
out of every other continuous metric (one NaN would otherwise poison all of them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from compval.metrics._base import BlockSumsAccumulator, ColumnEntries, Derived, PairedRows
from compval.metrics._segments import SegmentTable
from compval.results import CalibrationBins, Reliability
from compval.stats import calibration_bins, ece_from_sums, row_max, row_sum
from compval.types import Array

__all__ = [
    "Calibration",
    "KLQuantiles",
    "NonFiniteCounts",
    "OutputFidelity",
    "ProbabilityDivergence",
    "RegressionErrors",
    "kl_divergence_rows",
]

#: Probabilities are clipped to this before logs, so a candidate that gives a class exactly
#: zero probability yields a large finite KL rather than infinity.
PROB_EPS = 1e-12


def kl_divergence_rows(p: Array, q: Array) -> Array:
    """Per-row KL(p || q) in nats for probability rows (terms with p == 0 contribute 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # p * (log p - log q), computed in place (the same operations, fewer temporaries).
        terms = np.log(np.clip(p, PROB_EPS, None))
        terms -= np.log(np.clip(q, PROB_EPS, None))
        terms *= p
        terms = np.where(p > 0, terms, 0.0)
    out: Array = np.maximum(row_sum(terms), 0.0)
    return out


def _kl(rows: PairedRows) -> Array:
    """Per-row KL of a batch: the runner's precomputed one, else computed here."""
    if rows.kl is not None:
        return rows.kl
    if rows.ref_prob is None or rows.cand_prob is None:
        raise ValueError("KL divergence needs probabilities")
    kl = np.zeros(rows.ref_prob.shape[0])
    mask = rows.finite
    kl[mask] = kl_divergence_rows(rows.ref_prob[mask], rows.cand_prob[mask])
    return kl


class NonFiniteCounts(BlockSumsAccumulator):
    """NaN and Inf element counts in each model's outputs, over every row."""

    family = "nonfinite"
    n_blocks: ClassVar[int] = 1

    def columns(self) -> Sequence[str]:
        """Element counts per model."""
        return ("nan_ref", "inf_ref", "nan_cand", "inf_cand")

    def update(self, rows: PairedRows) -> None:
        """Count NaN/Inf; when every row is finite only the row counts change."""
        if (
            rows.finite.all()
            and np.isfinite(rows.reference).all()
            and np.isfinite(rows.candidate).all()
        ):
            self._grow()
            self._rows += np.bincount(rows.segment_ids.reshape(-1), minlength=len(self._rows))
            return
        super().update(rows)

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        ref, cand = rows.reference, rows.candidate
        values = np.stack(
            [
                np.isnan(ref).sum(axis=1),
                np.isinf(ref).sum(axis=1),
                np.isnan(cand).sum(axis=1),
                np.isinf(cand).sum(axis=1),
            ],
            axis=1,
        ).astype(np.float64)
        return values, None, np.ones(ref.shape[0], dtype=bool)

    def derived(self) -> Sequence[Derived]:
        """nan_count, inf_count and nonfinite_count per model."""
        return (
            Derived("nan_count", False, False, lambda s: (s[..., 0], s[..., 2]), bootstrap=False),
            Derived("inf_count", False, False, lambda s: (s[..., 1], s[..., 3]), bootstrap=False),
            Derived(
                "nonfinite_count",
                False,
                False,
                lambda s: (s[..., 0] + s[..., 1], s[..., 2] + s[..., 3]),
                bootstrap=False,
            ),
        )


class OutputFidelity(BlockSumsAccumulator):
    """How close the candidate's raw outputs are to the reference's.

    ``mean_abs_diff`` averages |ref - cand| over all output elements; ``max_abs_diff`` is the
    largest; ``sqnr_db`` = 10 log10(sum ref^2 / sum (ref - cand)^2) over all elements (inf
    when the outputs are identical); ``cosine_similarity`` averages the per-row cosine of the
    two output vectors (1 when both are zero, 0 when only one is).
    """

    family = "fidelity"

    def columns(self) -> Sequence[str]:
        """Row and element counts, absolute error, signal and noise power, cosine."""
        return ("rows", "elements", "abs", "signal", "noise", "cosine")

    def max_columns(self) -> Sequence[str]:
        """Largest absolute difference of a row."""
        return ("max_abs",)

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        ref, cand = rows.reference, rows.candidate
        mask = rows.finite
        if not mask.all():
            ref = np.where(mask[:, None], ref, 0.0)
            cand = np.where(mask[:, None], cand, 0.0)
        diff = ref - cand
        abs_diff = np.abs(diff)
        signal = np.einsum("ij,ij->i", ref, ref)
        power_cand = np.einsum("ij,ij->i", cand, cand)
        denom = np.sqrt(signal * power_cand)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where(
                denom > 0,
                np.einsum("ij,ij->i", ref, cand) / denom,
                np.where((signal == 0) & (power_cand == 0), 1.0, 0.0),
            )
        values = np.empty((ref.shape[0], 6))
        values[:, 0] = 1.0
        values[:, 1] = ref.shape[1]
        values[:, 2] = row_sum(abs_diff)
        values[:, 3] = signal
        values[:, 4] = np.einsum("ij,ij->i", diff, diff)
        values[:, 5] = cosine
        return values, row_max(abs_diff)[:, None], mask

    def derived(self) -> Sequence[Derived]:
        """mean_abs_diff, sqnr_db, cosine_similarity."""
        return (
            Derived("mean_abs_diff", False, True, lambda s: s[..., 2] / s[..., 1]),
            Derived("sqnr_db", True, True, lambda s: 10.0 * np.log10(s[..., 3] / s[..., 4])),
            Derived("cosine_similarity", True, True, lambda s: s[..., 5] / s[..., 0]),
        )

    def _maximum_metrics(self) -> Sequence[tuple[str, int]]:
        return (("max_abs_diff", 0),)


class ProbabilityDivergence(BlockSumsAccumulator):
    """Mean KL(reference || candidate) of the predicted class distributions, in nats."""

    family = "kl"

    def columns(self) -> Sequence[str]:
        """Row count and KL sum."""
        return ("rows", "kl")

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        kl = _kl(rows)
        return np.stack([np.ones_like(kl), kl], axis=1), None, rows.finite

    def derived(self) -> Sequence[Derived]:
        """mean_kl_divergence."""
        return (Derived("mean_kl_divergence", False, True, lambda s: s[..., 1] / s[..., 0]),)


class KLQuantiles(BlockSumsAccumulator):
    """The 99th percentile of per-row KL, from a log-spaced histogram (approximate).

    Bins are log-spaced over [1e-10, 1e3] with 16 bins per decade, plus an underflow and an
    overflow bin; the quantile interpolates within its bin in log space, so its relative error
    is below one bin width (a factor of 10**(1/16), about 15%). Exact enough to gate on tails
    without keeping every row.
    """

    family = "kl_quantiles"
    n_blocks: ClassVar[int] = 1
    EDGES: ClassVar[Array] = np.logspace(-10, 3, 13 * 16 + 1)

    def columns(self) -> Sequence[str]:
        """Histogram bins: underflow, the log-spaced bins, overflow."""
        return tuple(f"bin{i}" for i in range(len(self.EDGES) + 1))

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        kl = _kl(rows)
        bins = np.searchsorted(self.EDGES, kl, side="right")
        return [ColumnEntries(0, 1, len(self.EDGES) + 1, bins)], None, rows.finite

    def derived(self) -> Sequence[Derived]:
        """p99_kl_divergence (no interval: a block bootstrap of a tail quantile is unreliable)."""
        return (Derived("p99_kl_divergence", False, True, self._p99, bootstrap=False),)

    def _p99(self, sums: Array) -> Array:
        return histogram_quantile(sums, self.EDGES, 0.99)


def histogram_quantile(counts: Array, edges: Array, q: float) -> Array:
    """Quantile ``q`` of histograms ``counts`` (..., len(edges) + 1), log-interpolated.

    Bin 0 is [0, edges[0]); bin i is [edges[i-1], edges[i]); the last is [edges[-1], inf),
    reported as edges[-1].
    """
    total = counts.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(counts, axis=-1)
    target = q * total
    idx = np.argmax(cdf >= target, axis=-1)
    below = np.take_along_axis(cdf, idx[..., None], axis=-1) - np.take_along_axis(
        counts, idx[..., None], axis=-1
    )
    in_bin = np.take_along_axis(counts, idx[..., None], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(((target - below) / in_bin)[..., 0], 0.0, 1.0)
    log_edges = np.log(edges)
    lo = np.where(idx == 0, log_edges[0] - 1.0, log_edges[np.clip(idx - 1, 0, len(edges) - 1)])
    hi = log_edges[np.clip(idx, 0, len(edges) - 1)]
    value = np.exp(lo + frac * (hi - lo))
    value = np.where(idx == 0, edges[0] * frac, value)
    value = np.where(idx >= len(edges), edges[-1], value)
    return np.where(total[..., 0] > 0, value, np.nan)


class Calibration(BlockSumsAccumulator):
    """Brier score and expected calibration error (equal-width confidence bins) per model.

    ``brier_loss`` is the mean over rows of sum_k (p_k - [k == label])^2, the multiclass Brier
    score; ``expected_calibration_error`` is sum_b (n_b / n) |accuracy_b - confidence_b| over
    equal-width bins of the top-class probability.
    """

    family = "calibration"
    N_BINS: ClassVar[int] = 15

    def columns(self) -> Sequence[str]:
        """Rows, Brier sums, and per-bin count / confidence / correct sums per model."""
        names = ["rows", "brier_ref", "brier_cand"]
        for side in ("ref", "cand"):
            for b in range(self.N_BINS):
                names += [f"{side}_n{b}", f"{side}_conf{b}", f"{side}_ok{b}"]
        return tuple(names)

    def bootstrap_columns(self) -> int:
        """Rows and the two Brier sums: ECE, read from the bins, has no interval."""
        return 3

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        if rows.ref_prob is None or rows.cand_prob is None or rows.labels is None:
            raise ValueError("Calibration needs probabilities and labels")
        n, k = rows.ref_prob.shape
        mask = rows.finite & (rows.labels >= 0) & (rows.labels < k)
        every = bool(mask.all())
        labels = rows.labels if every else np.where(mask, rows.labels, 0)
        rows_idx = np.arange(n)
        # Each row touches 9 columns: rows, two Brier sums, and (count, confidence, correct)
        # of its confidence bin for each model.
        entries = [ColumnEntries(0)]
        bins = []
        sides = ((rows.ref_prob, rows.ref_pred), (rows.cand_prob, rows.cand_pred))
        for j, (prob, pred) in enumerate(sides):
            p = prob if every else np.where(mask[:, None], prob, 0.0)
            brier = np.einsum("ij,ij->i", p, p) - 2 * p[rows_idx, labels] + 1.0
            entries.append(ColumnEntries(1 + j, weights=brier))
            conf = p[rows_idx, pred] if pred is not None and every else p.max(axis=1)
            correct = (pred if pred is not None and every else p.argmax(axis=1)) == labels
            b = calibration_bins(conf, self.N_BINS)
            base = 3 + j * 3 * self.N_BINS
            bins += [
                ColumnEntries(base, 3, self.N_BINS, b),
                ColumnEntries(base + 1, 3, self.N_BINS, b, conf),
                ColumnEntries(base + 2, 3, self.N_BINS, b, correct.astype(np.float64)),
            ]
        return entries + bins, None, mask

    def derived(self) -> Sequence[Derived]:
        """brier_loss and expected_calibration_error per model."""
        return (
            Derived(
                "brier_loss", False, False, lambda s: (s[..., 1] / s[..., 0], s[..., 2] / s[..., 0])
            ),
            # Binned ECE is biased and not a smooth function of the sums: a percentile interval
            # of it covers 0.16-0.39 of the time (audit). It is reported without an interval.
            Derived("expected_calibration_error", False, False, self._ece, bootstrap=False),
        )

    def reliability(self) -> Reliability | None:
        """Both models' confidence bins over all rows (None before any row)."""
        self._grow()
        totals = self._sums[0].sum(axis=0)
        if totals[0] == 0:
            return None
        sides = []
        for j in range(2):
            base = 3 + j * 3 * self.N_BINS
            block = totals[base : base + 3 * self.N_BINS]
            rows, conf, ok = block[0::3], block[1::3], block[2::3]
            sides.append(
                CalibrationBins(
                    rows=tuple(int(n) for n in np.rint(rows).astype(np.int64)),
                    confidence=tuple(
                        None if n == 0 else float(s / n) for n, s in zip(rows, conf, strict=True)
                    ),
                    accuracy=tuple(
                        None if n == 0 else float(s / n) for n, s in zip(rows, ok, strict=True)
                    ),
                )
            )
        return Reliability(reference=sides[0], candidate=sides[1])

    def _ece(self, sums: Array) -> tuple[Array, Array]:
        out = []
        for j in range(2):
            base = 3 + j * 3 * self.N_BINS
            block = sums[..., base : base + 3 * self.N_BINS]
            out.append(ece_from_sums(block[..., 0::3], block[..., 1::3], block[..., 2::3]))
        return out[0], out[1]


class RegressionErrors(BlockSumsAccumulator):
    """MAE, RMSE and R^2 of each model against the targets.

    Multi-output targets are averaged uniformly over outputs, as scikit-learn's
    ``multioutput="uniform_average"`` does. R^2's total sum of squares is
    sum (y - c)^2 - (sum (y - c))^2 / n for a shift c per output: the mean of the first targets
    this accumulator saw. Without the shift (c = 0) the two terms cancel catastrophically
    when the targets' mean is large next to their spread: targets of 1e10 +- 1 gave R^2 above
    1 (the worse model scoring higher). Accumulators with different shifts merge by moving
    the other's sums to this one's shift (exact algebra, no rows needed).
    """

    family = "regression"

    def __init__(self, segments: SegmentTable, **config: Any) -> None:
        super().__init__(segments, **config)
        # Fixed by the first rows that have targets; None before.
        self._shift: Array | None = None

    def state(self) -> dict[str, Any]:
        """The block sums' state plus the targets' shift (None before any target)."""
        out = super().state()
        out["shift"] = None if self._shift is None else self._shift.tolist()
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RegressionErrors:
        """Rebuild from ``state()``; a state without a ``shift`` key holds unshifted sums."""
        acc = super().from_state(state)
        if "shift" not in state:
            acc._shift = np.zeros(int(acc.config.get("width", 1)))
        elif state["shift"] is not None:
            acc._shift = np.asarray(state["shift"], dtype=np.float64)
        return acc

    def merge(self, other: RegressionErrors) -> RegressionErrors:
        """Union of segments by name; ``other``'s sums are moved to this one's shift first."""
        if not isinstance(other, RegressionErrors):
            return super().merge(other)  # refused there, naming both
        shift = self._shift if self._shift is not None else other._shift
        moved = other
        if (
            shift is not None
            and other._shift is not None
            and not np.array_equal(other._shift, shift)
        ):
            moved = RegressionErrors.from_state(other._shifted_state(shift))
        merged = super().merge(moved)
        merged._shift = None if shift is None else shift.copy()
        return merged

    def _shifted_state(self, shift: Array) -> dict[str, Any]:
        """``state()`` with the target sums taken about ``shift`` instead of this shift."""
        out = self.state()
        sums = out["sums"]
        assert self._shift is not None  # internal: only called on an accumulator with rows
        d = self._shift - shift  # y - shift = (y - old) + d
        n = sums[..., 0]
        for j, dj in enumerate(d):
            s1, s2 = sums[..., 1 + 6 * j + 4], sums[..., 1 + 6 * j + 5]
            sums[..., 1 + 6 * j + 5] = s2 + 2 * dj * s1 + n * dj * dj
            sums[..., 1 + 6 * j + 4] = s1 + n * dj
        out["shift"] = shift.tolist()
        return out

    def columns(self) -> Sequence[str]:
        """Row count, then per output: |e|, e^2 per model, y and y^2."""
        width = int(self.config.get("width", 1))
        names = ["rows"]
        for j in range(width):
            names += [f"abs_ref{j}", f"sq_ref{j}", f"abs_cand{j}", f"sq_cand{j}", f"y{j}", f"yy{j}"]
        return tuple(names)

    def _row_values(self, rows: PairedRows) -> tuple[Any, Array | None, Array]:
        if rows.labels is None:
            raise ValueError("RegressionErrors needs targets")
        y = rows.labels.reshape(rows.reference.shape[0], -1).astype(np.float64)
        ref, cand = rows.reference, rows.candidate
        mask = rows.finite & np.isfinite(y).all(axis=1)
        e_ref = np.where(mask[:, None], ref - y, 0.0)
        e_cand = np.where(mask[:, None], cand - y, 0.0)
        if self._shift is None and mask.any():
            self._shift = y[mask].mean(axis=0)
        shift = self._shift if self._shift is not None else np.zeros(y.shape[1])
        y = np.where(mask[:, None], y - shift, 0.0)
        parts = [np.ones((y.shape[0], 1))]
        for j in range(y.shape[1]):
            parts.append(
                np.stack(
                    [
                        np.abs(e_ref[:, j]),
                        e_ref[:, j] ** 2,
                        np.abs(e_cand[:, j]),
                        e_cand[:, j] ** 2,
                        y[:, j],
                        y[:, j] ** 2,
                    ],
                    axis=1,
                )
            )
        return np.concatenate(parts, axis=1), None, mask

    def derived(self) -> Sequence[Derived]:
        """mean_absolute_error, root_mean_squared_error, r2_score per model."""

        def cols(s: Array, offset: int) -> Array:
            return s[..., 1 + offset :: 6]

        def mae(s: Array) -> tuple[Array, Array]:
            n = s[..., 0:1]
            return (cols(s, 0) / n).mean(-1), (cols(s, 2) / n).mean(-1)

        def rmse(s: Array) -> tuple[Array, Array]:
            n = s[..., 0:1]
            return np.sqrt(cols(s, 1) / n).mean(-1), np.sqrt(cols(s, 3) / n).mean(-1)

        def r2(s: Array) -> tuple[Array, Array]:
            n = s[..., 0:1]
            squares = cols(s, 5)
            ss_tot = squares - cols(s, 4) ** 2 / n
            # Targets that are constant (in a segment, say) have no variance to explain: R^2 is
            # undefined (NaN, so a check on it is inconclusive). The subtraction leaves rounding
            # noise of about 1e-16 of the squares there, which gave R^2 of -3e16: anything
            # below 1e-12 of them is taken as no variance.
            with np.errstate(divide="ignore", invalid="ignore"):
                ss_tot = np.where(ss_tot > 1e-12 * squares, ss_tot, np.nan)
                return (1 - cols(s, 1) / ss_tot).mean(-1), (1 - cols(s, 3) / ss_tot).mean(-1)

        return (
            Derived("mean_absolute_error", False, False, mae),
            Derived("root_mean_squared_error", False, False, rmse),
            Derived("r2_score", True, False, r2),
        )
