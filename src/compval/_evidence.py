"""Run-level statistical evidence beyond per-metric intervals.

* Paired and distribution tests per segment, from each segment's contingency table (no pass
  over rows): exact McNemar on the discordant pairs, chi-square and G tests, Jensen-Shannon
  distance and PSI between the two models' predicted-class distributions.
* KS and Wasserstein distances between the two models' top-class confidence, from mergeable
  fixed-bin histograms (200 bins on [0, 1]: the binned statistics are within a bin width of the
  exact ones).
* Weak-slice discovery (``compval.stats.SliceSearch``) on tabular features and segment
  columns: the slices where the candidate loses most, with Holm correction for the search.

The tests are reported as metrics (``mcnemar_pvalue``, ``prediction_js_distance`` ...), so a
criterion can gate on them like on any other metric. Defaults gate on effect sizes, not
p-values: with a million rows every p-value is tiny.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compval._types import Array
from compval.metrics import MetricEstimate, PairedRows
from compval.metrics.classification import INVALID, NO_LABEL, ContingencyTable

__all__ = ["SLICE_SAMPLE_ROWS", "RunEvidence", "slice_sample", "table_tests"]

_CONF_BINS = 200


def _paired(metric: str, segment: str | None, n: int, value: float, hib: bool) -> MetricEstimate:
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


def table_tests(table: ContingencyTable) -> list[MetricEstimate]:
    """McNemar, chi-square, G, JS and PSI per segment, from the contingency table."""
    from compval.errors import InvalidParameterError
    from compval.stats import chi_square_counts, g_test_counts, jensen_shannon, mcnemar_exact, psi

    out: list[MetricEstimate] = []
    for name, (label, ref, cand, count) in table.segment_cells().items():
        n = int(count.sum())
        if np.all(label != NO_LABEL):
            b = int(count[(label == ref) & (label != cand)].sum())
            c = int(count[(label != ref) & (label == cand)].sum())
            out.append(
                _paired("mcnemar_pvalue", name, n, mcnemar_exact(b, c, n=n).p_value or 1.0, True)
            )
        k = int(max(ref[ref != INVALID].max(initial=0), cand[cand != INVALID].max(initial=0))) + 2
        ref_counts = np.bincount(np.where(ref == INVALID, k - 1, ref), weights=count, minlength=k)
        cand_counts = np.bincount(
            np.where(cand == INVALID, k - 1, cand), weights=count, minlength=k
        )
        ref_counts, cand_counts = ref_counts.astype(np.int64), cand_counts.astype(np.int64)
        try:
            chi = chi_square_counts(ref_counts, cand_counts)
            g = g_test_counts(ref_counts, cand_counts)
        except InvalidParameterError:
            continue
        out.append(
            _paired(
                "prediction_chi2_pvalue",
                name,
                n,
                chi.p_value if chi.p_value is not None else 1.0,
                True,
            )
        )
        out.append(
            _paired(
                "prediction_g_pvalue", name, n, g.p_value if g.p_value is not None else 1.0, True
            )
        )
        out.append(
            _paired(
                "prediction_js_distance",
                name,
                n,
                jensen_shannon(ref_counts, cand_counts).estimate,
                False,
            )
        )
        out.append(
            _paired(
                "prediction_psi_distance", name, n, psi(ref_counts, cand_counts).estimate, False
            )
        )
    return out


#: Rows the weak-slice search looks at, at most: a larger dataset is subsampled by a hash of
#: (seed, row id), so the sample does not depend on batch size or order. 200,000 rows find
#: any slice of a few hundred rows; the search's memory and time stay bounded.
SLICE_SAMPLE_ROWS = 200_000
_SALT_SLICE_SAMPLE = 0x51CE_5A4D_1E00_0003


def slice_sample(row_ids: Array, *, seed: int, total_rows: int) -> Array | None:
    """Mask of the rows the slice search keeps, or None to keep all (small data)."""
    from compval.stats._resampling import row_hash

    if total_rows <= SLICE_SAMPLE_ROWS:
        return None
    limit = np.uint64(int(SLICE_SAMPLE_ROWS / total_rows * 2**64))
    mask: Array = row_hash(row_ids, seed=seed, salt=_SALT_SLICE_SAMPLE) < limit
    return mask


class RunEvidence:
    """Per-candidate streaming evidence: confidence histograms and the weak-slice search."""

    def __init__(
        self,
        *,
        confidences: bool,
        slice_features: Sequence[str] | None,
        categorical: Sequence[bool] = (),
        seed: int = 0,
    ) -> None:
        from compval.stats import FixedHistogram, SliceSearch

        self.hist_ref = FixedHistogram.linspace(0.0, 1.0, _CONF_BINS) if confidences else None
        self.hist_cand = FixedHistogram.linspace(0.0, 1.0, _CONF_BINS) if confidences else None
        self.slices = (
            SliceSearch(slice_features, categorical=list(categorical), seed=seed)
            if slice_features
            else None
        )

    def update(
        self, rows: PairedRows, slice_columns: Sequence[Array], slice_keep: Array | None = None
    ) -> None:
        """Add a chunk of rows.

        Args:
            rows: The chunk.
            slice_columns: Feature then segment columns, in order, for the kept rows only.
            slice_keep: Which of the chunk's rows the slice search sees (see ``slice_sample``);
                None for all.
        """
        if self.hist_ref is not None and self.hist_cand is not None:
            assert rows.ref_prob is not None and rows.cand_prob is not None
            mask = rows.finite
            for hist, prob, pred in (
                (self.hist_ref, rows.ref_prob, rows.ref_pred),
                (self.hist_cand, rows.cand_prob, rows.cand_pred),
            ):
                # The top-class probability is the probability of the predicted class.
                top = (
                    prob[np.arange(prob.shape[0]), np.maximum(pred, 0)]
                    if pred is not None
                    else prob.max(axis=1)
                )
                hist.update(top[mask])
        if self.slices is not None and rows.labels is not None:
            assert rows.ref_pred is not None and rows.cand_pred is not None
            keep = slice(None) if slice_keep is None else slice_keep
            labels = rows.labels[keep]
            self.slices.update(
                list(slice_columns),
                rows.row_ids[keep],
                rows.ref_pred[keep] == labels,
                rows.cand_pred[keep] == labels,
            )

    def estimates(self) -> list[MetricEstimate]:
        """KS and Wasserstein distances of the top-class confidence (overall)."""
        from compval.stats import ks_from_histograms, wasserstein_from_histograms

        if self.hist_ref is None or self.hist_cand is None or self.hist_ref.total == 0:
            return []
        n = int(self.hist_ref.total)
        return [
            _paired(
                "confidence_ks_distance",
                None,
                n,
                ks_from_histograms(self.hist_ref, self.hist_cand).estimate,
                False,
            ),
            _paired(
                "confidence_wasserstein_distance",
                None,
                n,
                wasserstein_from_histograms(self.hist_ref, self.hist_cand).estimate,
                False,
            ),
        ]

    def discovered(self, *, min_rows: int, confidence: float, top_k: int) -> list[dict[str, Any]]:
        """The weakest slices, as JSON-ready dicts (empty when discovery is off)."""
        if self.slices is None or self.slices.rows_seen == 0:
            return []
        return [
            s.to_dict()
            for s in self.slices.result(min_rows=min_rows, confidence=confidence, top_k=top_k)
        ]
