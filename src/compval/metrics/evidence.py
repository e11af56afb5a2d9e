"""Run-level evidence as accumulators: confidence-distribution shift and weak-slice search.

* ``ConfidenceShift``: KS and Wasserstein distances between the two models' top-class
  confidence, from mergeable fixed-bin histograms (200 bins on [0, 1]: the binned statistics
  are within a bin width of the exact ones). Overall only; no interval.
* ``WeakSlices``: the weak-slice search (``compval.stats.SliceSearch``) on tabular features
  and segment columns: the slices where the candidate loses most, with Holm correction for
  the search. Its findings are ``discovered()``, reported under ``statistics.discovered`` and
  as ``slice:<description>`` segments that ``segment: discovered`` criteria gate.

Both distances are lower-is-better (``*_distance``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from typing_extensions import Self

from compval.errors import IncompatibleMergeError
from compval.metrics._base import Accumulator, MetricEstimate, PairedRows, Resampling
from compval.metrics._segments import SegmentTable
from compval.results import SliceResult
from compval.stats import (
    FixedHistogram,
    SliceSearch,
    ks_distance_from_histograms,
    row_hash,
    wasserstein_from_histograms,
)
from compval.types import Array

__all__ = ["SLICE_SAMPLE_ROWS", "ConfidenceShift", "WeakSlices", "slice_sample"]

_CONF_BINS = 200

#: Rows the weak-slice search looks at, at most: a larger dataset is subsampled by a hash of
#: (seed, row id), so the sample does not depend on batch size or order. 200,000 rows find
#: any slice of a few hundred rows; the search's memory and time stay bounded.
SLICE_SAMPLE_ROWS = 200_000
_SALT_SLICE_SAMPLE = 0x51CE_5A4D_1E00_0003


def slice_sample(row_ids: Array, *, seed: int, total_rows: int) -> Array | None:
    """Mask of the rows the slice search keeps, or None to keep all (small data)."""
    if total_rows <= SLICE_SAMPLE_ROWS:
        return None
    limit = np.uint64(int(SLICE_SAMPLE_ROWS / total_rows * 2**64))
    mask: Array = row_hash(row_ids, seed=seed, salt=_SALT_SLICE_SAMPLE) < limit
    return mask


class ConfidenceShift(Accumulator):
    """Histograms of both models' top-class probability; KS and Wasserstein distances."""

    family = "confidence_shift"

    def __init__(self, segments: SegmentTable) -> None:
        super().__init__(segments)
        self.ref = FixedHistogram.linspace(0.0, 1.0, _CONF_BINS)
        self.cand = FixedHistogram.linspace(0.0, 1.0, _CONF_BINS)

    def update(self, rows: PairedRows) -> None:
        """Add the top-class probability of each finite row, for both models."""
        if rows.ref_prob is None or rows.cand_prob is None:
            return
        for hist, prob, pred in (
            (self.ref, rows.ref_prob, rows.ref_pred),
            (self.cand, rows.cand_prob, rows.cand_pred),
        ):
            # The top-class probability is the probability of the predicted class.
            top = (
                prob[np.arange(prob.shape[0]), np.maximum(pred, 0)]
                if pred is not None
                else prob.max(axis=1)
            )
            hist.update(top[rows.finite])

    def merge(self, other: Self) -> Self:
        """Both histograms merged; neither input changes."""
        if not isinstance(other, ConfidenceShift):
            raise IncompatibleMergeError(
                f"ConfidenceShift.merge: got {type(other).__qualname__}, expected ConfidenceShift."
            )
        out = self.empty()
        out.ref, out.cand = self.ref.merge(other.ref), self.cand.merge(other.cand)
        return out

    def state(self) -> dict[str, Any]:
        """The two histograms' states."""
        return {"reference": self.ref.state(), "candidate": self.cand.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()``."""
        acc = cls(SegmentTable())
        acc.ref = FixedHistogram.from_state(state["reference"])
        acc.cand = FixedHistogram.from_state(state["candidate"])
        return acc

    def empty(self) -> Self:
        """No rows."""
        return type(self)(SegmentTable())

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """KS and Wasserstein distances of the top-class confidence (overall)."""
        if self.ref.total == 0:
            return []
        n = int(self.ref.total)
        return [
            MetricEstimate(
                metric=metric,
                segment=None,
                higher_is_better=False,
                paired=True,
                n=n,
                reference=None,
                candidate=float(value),
                delta=None,
            )
            for metric, value in (
                ("confidence_ks_distance", ks_distance_from_histograms(self.ref, self.cand)),
                (
                    "confidence_wasserstein_distance",
                    wasserstein_from_histograms(self.ref, self.cand).estimate,
                ),
            )
        ]


class WeakSlices(Accumulator):
    """The weak-slice search over ``PairedRows.slice_columns``.

    Mergeable like every accumulator; its state is the search's binned rows and category
    codes (``SliceSearch.state``).
    """

    family = "weak_slices"

    def __init__(
        self,
        segments: SegmentTable,
        *,
        features: Sequence[str],
        categorical: Sequence[bool],
        seed: int,
    ) -> None:
        super().__init__(segments)
        self._config = (tuple(features), tuple(categorical), seed)
        self.search = SliceSearch(list(features), categorical=list(categorical), seed=seed)

    def update(self, rows: PairedRows) -> None:
        """Add the kept rows: their slice columns and whether each model was right."""
        if rows.slice_columns is None or rows.labels is None:
            return
        assert rows.ref_pred is not None and rows.cand_pred is not None
        keep = slice(None) if rows.slice_keep is None else rows.slice_keep
        labels = rows.labels[keep]
        self.search.update(
            list(rows.slice_columns),
            rows.row_ids[keep],
            rows.ref_pred[keep] == labels,
            rows.cand_pred[keep] == labels,
        )

    def merge(self, other: Self) -> Self:
        """Both searches merged; neither input changes."""
        if not isinstance(other, WeakSlices) or other._config != self._config:
            raise IncompatibleMergeError(
                "WeakSlices.merge: configurations differ; expected the same features, "
                "categorical flags and seed."
            )
        out = self.empty()
        out.search = self.search.merge(other.search)
        return out

    def state(self) -> dict[str, Any]:
        """The search's state (``SliceSearch.state``)."""
        return {"search": self.search.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild from ``state()``."""
        search = SliceSearch.from_state(state["search"])
        config = state["search"]["config"]
        acc = cls(
            SegmentTable(),
            features=config["feature_names"],
            categorical=config["categorical"],
            seed=config["seed"],
        )
        acc.search = search
        return acc

    def empty(self) -> Self:
        """The same search configuration, no rows."""
        features, categorical, seed = self._config
        return type(self)(SegmentTable(), features=features, categorical=categorical, seed=seed)

    def estimates(self, resampling: Resampling | None = None) -> list[MetricEstimate]:
        """None: the findings are ``discovered()``."""
        return []

    def discovered(
        self, *, min_rows: int, confidence: float, top_k: int, margin: float = 0.0
    ) -> tuple[SliceResult, ...]:
        """The weakest slices, searched on one half of the rows and confirmed on the other.

        ``margin`` is the gate's allowed accuracy drop: slices are ranked by the evidence that
        their drop exceeds it (see ``SliceSearch.result``). Empty when no row was seen.
        """
        if self.search.rows_seen == 0:
            return ()
        return tuple(
            self.search.result(min_rows=min_rows, confidence=confidence, top_k=top_k, margin=margin)
        )
