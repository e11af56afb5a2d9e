"""The robustness gap: how much more the candidate loses under a perturbation than the reference.

Classification (accuracy, :class:`BlockCorrectness`):
``gap = (candidate clean - candidate perturbed) - (reference clean - reference perturbed)``.
Regression (mean absolute error, :class:`BlockAbsErrors`):
``gap = (candidate perturbed - candidate clean) - (reference perturbed - reference clean)``.
Both are a loss of quality, so positive means the candidate is less robust; lower is better.

The clean and the perturbed pass score the same rows, and a row's bootstrap block is a hash of
(seed, row id), so both passes put each row in the same block: the accumulators keep per
(segment, block) sums of each model's correct rows (or absolute errors), and one set of
Poisson(1) block weights resamples both passes at once. The interval is therefore paired
across passes (the noise common to both passes cancels), and the state is O(segments x
blocks), flat in rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from typing_extensions import Self

from compval.metrics import Accumulator, MetricEstimate, PairedRows, Resampling, SegmentTable
from compval.stats import block_weights, percentile_interval
from compval.types import Array

__all__ = ["GAP_CI_METHOD", "BlockAbsErrors", "BlockCorrectness", "gap_estimates"]

GAP_CI_METHOD = "paired_block_bootstrap_percentile"


class _BlockSums(Accumulator):
    """Per (segment, block) sums of a few per-row columns; no estimates of its own."""

    family: ClassVar[str]
    #: Number of columns kept per (segment, block).
    width: ClassVar[int]
    dtype: ClassVar[type[np.generic]]
    #: The column counting the rows a segment's value is computed on.
    _counted: ClassVar[int] = 0

    def __init__(self, segments: SegmentTable, *, n_blocks: int) -> None:
        super().__init__(segments)
        self.n_blocks = n_blocks
        self.sums = np.zeros((0, n_blocks, self.width), dtype=self.dtype)

    def _grow(self) -> None:
        n = len(self.segments)
        if self.sums.shape[0] < n:
            grown = np.zeros((n, self.n_blocks, self.width), dtype=self.dtype)
            grown[: self.sums.shape[0]] = self.sums
            self.sums = grown

    def _add(self, rows: PairedRows, values: Array) -> None:
        """Add per-row ``values`` (rows, width) to every segment of each row."""
        self._grow()
        size = self.sums.shape[0] * self.n_blocks
        flat = self.sums.reshape(size, self.width)
        for ids in np.asarray(rows.segment_ids):
            cells = ids * self.n_blocks + rows.blocks
            for j in range(self.width):
                flat[:, j] += np.bincount(cells, weights=values[:, j], minlength=size).astype(
                    self.dtype
                )

    def merge(self, other: Self) -> Self:
        out = self.empty()
        out.segments = self.segments
        out._grow()
        out.sums[: self.sums.shape[0]] += self.sums
        # Segment ids are the shared table's: merge only accumulators of one run.
        out.sums[: other.sums.shape[0]] += other.sums
        return out

    def state(self) -> dict[str, Any]:
        return {
            "segments": list(self.segments.names),
            "n_blocks": self.n_blocks,
            "sums": self.sums.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        out = cls(SegmentTable(state["segments"]), n_blocks=int(state["n_blocks"]))
        out.sums = np.asarray(state["sums"], dtype=cls.dtype).copy()
        return out

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        return []

    def empty(self) -> Self:
        return type(self)(self.segments, n_blocks=self.n_blocks)

    def by_segment(self) -> dict[str | None, Array]:
        """Segment name -> (blocks, width) sums, for segments that counted rows."""
        return {
            name: self.sums[i]
            for i, name in enumerate(self.segments.names[: self.sums.shape[0]])
            if self.sums[i, :, self._counted].sum() > 0
        }


class BlockCorrectness(_BlockSums):
    """Per (segment, block): labelled rows, reference correct, candidate correct.

    Produces no estimates itself; :func:`gap_estimates` pairs a clean and a perturbed one.
    """

    family = "block_correctness"
    width = 3
    dtype = np.int64

    def update(self, rows: PairedRows) -> None:
        if rows.labels is None or rows.ref_pred is None or rows.cand_pred is None:
            return
        labels = np.asarray(rows.labels)
        if labels.ndim != 1:
            return
        known = labels >= 0
        values = np.stack(
            [known, known & (rows.ref_pred == labels), known & (rows.cand_pred == labels)], axis=1
        ).astype(np.int64)
        self._add(rows, values)


class BlockAbsErrors(_BlockSums):
    """Per (segment, block): rows with targets, rows counted, sum |error| of each model.

    A row's absolute error is averaged over the outputs (scikit-learn's
    ``multioutput="uniform_average"``, as ``mean_absolute_error`` does), so a pass's MAE is
    sum |error| / rows counted. A row counts when both models' outputs and its targets are
    finite (the rule of ``mean_absolute_error``); the others are left out of that pass and
    :meth:`left_out` says how many. Produces no estimates itself; :func:`gap_estimates` pairs
    a clean and a perturbed one.
    """

    family = "block_abs_errors"
    width = 4
    dtype = np.float64
    _counted = 1

    def update(self, rows: PairedRows) -> None:
        if rows.labels is None:
            return
        ref, cand = rows.reference, rows.candidate
        y = np.asarray(rows.labels, dtype=np.float64).reshape(ref.shape[0], -1)
        mask = np.asarray(rows.finite, dtype=bool) & np.isfinite(y).all(axis=1)
        e_ref = np.where(mask[:, None], np.abs(ref - y), 0.0).mean(axis=1)
        e_cand = np.where(mask[:, None], np.abs(cand - y), 0.0).mean(axis=1)
        values = np.stack([np.ones(len(mask)), mask.astype(np.float64), e_ref, e_cand], axis=1)
        self._add(rows, values)

    def left_out(self) -> int:
        """Rows with targets whose outputs or targets were not finite (overall)."""
        if not self.sums.shape[0]:
            return 0
        overall = self.sums[0]  # segment id 0 is overall
        return round(float(overall[:, 0].sum() - overall[:, 1].sum()))


def _scope(perturbation: str, segment: str | None) -> str:
    base = f"perturbation={perturbation}"
    return base if segment is None else f"{base},{segment}"


def _accuracy_gap(clean: Array, perturbed: Array, weights: Array) -> tuple[Array, Array]:
    """Per weight row: the accuracy gap, and whether it is defined (rows > 0)."""
    # Per block: candidate-minus-reference correct rows, clean minus perturbed.
    diff = ((clean[:, 2] - clean[:, 1]) - (perturbed[:, 2] - perturbed[:, 1])).astype(np.float64)
    denominators = weights @ clean[:, 0].astype(np.float64)
    ok = denominators > 0
    return np.where(ok, weights @ diff / np.where(ok, denominators, 1.0), np.nan), ok


def _mae_gap(clean: Array, perturbed: Array, weights: Array) -> tuple[Array, Array]:
    """Per weight row: the MAE gap, and whether it is defined (rows counted in both passes)."""
    n_c, n_p = weights @ clean[:, 1], weights @ perturbed[:, 1]
    ok = (n_c > 0) & (n_p > 0)
    safe_c, safe_p = np.where(ok, n_c, 1.0), np.where(ok, n_p, 1.0)
    # Candidate minus reference summed |error|, per pass: the paired MAE difference.
    delta_c = weights @ (clean[:, 3] - clean[:, 2]) / safe_c
    delta_p = weights @ (perturbed[:, 3] - perturbed[:, 2]) / safe_p
    return np.where(ok, delta_p - delta_c, np.nan), ok


def gap_estimates(
    clean: BlockCorrectness | BlockAbsErrors,
    perturbed: BlockCorrectness | BlockAbsErrors,
    *,
    perturbation: str,
    resampling: Resampling | None,
) -> list[MetricEstimate]:
    """``robustness_gap`` for every segment seen in both passes, with a paired interval.

    Accuracy-based for :class:`BlockCorrectness`, MAE-based for :class:`BlockAbsErrors`; both
    passes must hold the same kind.

    Raises:
        TypeError: The two passes hold different kinds of sums.
    """
    if type(clean) is not type(perturbed):
        raise TypeError(
            f"gap_estimates: the clean pass holds {type(clean).__name__} and the perturbed "
            f"pass {type(perturbed).__name__}; both must be the same kind."
        )
    regression = isinstance(clean, BlockAbsErrors)
    statistic = _mae_gap if regression else _accuracy_gap
    clean_by = clean.by_segment()
    weights = (
        None
        if resampling is None
        else block_weights(
            n_blocks=clean.n_blocks, replicates=resampling.replicates, seed=resampling.seed
        )
    )
    out: list[MetricEstimate] = []
    for segment, sums_p in perturbed.by_segment().items():
        sums_c = clean_by.get(segment)
        if sums_c is None:
            continue
        # One implementation: the estimate is the statistic at unit weights.
        point, _ = statistic(sums_c, sums_p, np.ones((1, clean.n_blocks)))
        gap = float(point[0])
        n = (
            round(float(min(sums_c[:, 1].sum(), sums_p[:, 1].sum())))
            if regression
            else int(sums_c[:, 0].sum())
        )
        ci: tuple[float, float] | None = None
        se: float | None = None
        if weights is not None and resampling is not None:
            values, ok = statistic(sums_c, sums_p, weights)
            replicates = values[ok]
            low, high = percentile_interval(replicates, confidence=resampling.confidence)
            ci = (float(low), float(high))
            se = float(np.std(replicates, ddof=1)) if replicates.size > 1 else None
        out.append(
            MetricEstimate(
                metric="robustness_gap",
                segment=_scope(perturbation, segment),
                higher_is_better=False,
                paired=True,
                n=n,
                reference=None,
                candidate=gap,
                delta=None,
                ci=ci,
                se=se,
                confidence=None if resampling is None else resampling.confidence,
                ci_method=None if ci is None else GAP_CI_METHOD,
            )
        )
    return out
