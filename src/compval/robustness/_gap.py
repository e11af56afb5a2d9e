"""The robustness gap: how much more the candidate loses under a perturbation than the reference.

``gap = (candidate clean - candidate perturbed) - (reference clean - reference perturbed)``
for accuracy, in every segment. The clean and the perturbed pass score the same rows, and a
row's bootstrap block is a hash of (seed, row id), so both passes put each row in the same
block: :class:`BlockCorrectness` keeps, per (segment, block), the rows and the correct
predictions of each model, and one set of Poisson(1) block weights resamples both passes at
once. The interval is therefore paired across passes (the noise common to both passes
cancels), and the state is O(segments x blocks), flat in rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from typing_extensions import Self

from compval.metrics import Accumulator, MetricEstimate, PairedRows, Resampling, SegmentTable
from compval.stats import block_weights, percentile_interval
from compval.types import Array

__all__ = ["GAP_CI_METHOD", "BlockCorrectness", "gap_estimates"]

GAP_CI_METHOD = "paired_block_bootstrap_percentile"


class BlockCorrectness(Accumulator):
    """Per (segment, block): labelled rows, reference correct, candidate correct.

    Produces no estimates itself; :func:`gap_estimates` pairs a clean and a perturbed one.
    """

    family = "block_correctness"

    def __init__(self, segments: SegmentTable, *, n_blocks: int) -> None:
        super().__init__(segments)
        self.n_blocks = n_blocks
        #: (segments, blocks, 3): rows, reference correct, candidate correct.
        self.sums = np.zeros((0, n_blocks, 3), dtype=np.int64)

    def _grow(self) -> None:
        n = len(self.segments)
        if self.sums.shape[0] < n:
            grown = np.zeros((n, self.n_blocks, 3), dtype=np.int64)
            grown[: self.sums.shape[0]] = self.sums
            self.sums = grown

    def update(self, rows: PairedRows) -> None:
        if rows.labels is None or rows.ref_pred is None or rows.cand_pred is None:
            return
        labels = np.asarray(rows.labels)
        if labels.ndim != 1:
            return
        self._grow()
        known = labels >= 0
        values = np.stack(
            [known, known & (rows.ref_pred == labels), known & (rows.cand_pred == labels)], axis=1
        ).astype(np.int64)
        size = self.sums.shape[0] * self.n_blocks
        flat = self.sums.reshape(size, 3)
        for ids in np.asarray(rows.segment_ids):
            cells = ids * self.n_blocks + rows.blocks
            for j in range(3):
                flat[:, j] += np.bincount(cells, weights=values[:, j], minlength=size).astype(
                    np.int64
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
        out.sums = np.asarray(state["sums"], dtype=np.int64).copy()
        return out

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        return []

    def empty(self) -> Self:
        return type(self)(self.segments, n_blocks=self.n_blocks)

    def by_segment(self) -> dict[str | None, Array]:
        """Segment name -> (blocks, 3) sums, for segments that saw labelled rows."""
        return {
            name: self.sums[i]
            for i, name in enumerate(self.segments.names[: self.sums.shape[0]])
            if self.sums[i, :, 0].sum() > 0
        }


def _scope(perturbation: str, segment: str | None) -> str:
    base = f"perturbation={perturbation}"
    return base if segment is None else f"{base},{segment}"


def gap_estimates(
    clean: BlockCorrectness,
    perturbed: BlockCorrectness,
    *,
    perturbation: str,
    resampling: Resampling | None,
) -> list[MetricEstimate]:
    """``robustness_gap`` for every segment seen in both passes, with a paired interval."""
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
        # Per block: candidate-minus-reference correct rows, clean minus perturbed.
        diff = (sums_c[:, 2] - sums_c[:, 1]) - (sums_p[:, 2] - sums_p[:, 1])
        counts = sums_c[:, 0].astype(np.float64)
        n = int(counts.sum())
        gap = float(diff.sum() / n)
        ci: tuple[float, float] | None = None
        se: float | None = None
        if weights is not None and resampling is not None:
            denominators = weights @ counts
            ok = denominators > 0
            replicates = (weights[ok] @ diff.astype(np.float64)) / denominators[ok]
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
