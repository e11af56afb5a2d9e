"""Statistics: the math that lets a verdict carry evidence.

Small, pure, vectorized functions on sufficient statistics (counts, sums, histograms), so that
accumulators stay mergeable and the run's orchestration stays free of math:

* resampling: :func:`poisson_table_counts` (classification tables), :func:`row_blocks`,
  :func:`block_weights` and :func:`block_replicate_means` (block bootstrap of per-row means),
  :func:`gamma_table_weights` (Bayesian bootstrap of tables), :func:`percentile_interval`,
  :func:`bca_intervals` (t-expanded BCa), :func:`bootstrap_quantiles`, :func:`stable_hash`;
* paired tests: :func:`mcnemar_exact`, :func:`paired_proportion_delta_ci` (Tango),
  :func:`paired_delta_sd`;
* decisions: :func:`adjust_pvalues` (Holm, Benjamini-Hochberg),
  :func:`noninferiority_verdict`, :func:`rows_needed_noninferiority`;
* distribution shift: :func:`chi_square_counts`, :func:`g_test_counts`, :func:`psi`,
  :func:`jensen_shannon`, :class:`FixedHistogram`, :func:`ks_from_histograms`,
  :func:`wasserstein_from_histograms`;
* calibration: :func:`calibration_bin_sums`, :func:`expected_calibration_error`;
* weak slices: :class:`SliceSearch`, :class:`SliceResult`;
* exact fast paths for the paired run: :func:`row_sum`, :func:`row_max`,
  :func:`row_all_finite`, :func:`unique_inverse` (numpy's results, cheaper).

Each private module's docstring states its method and assumptions. Randomness is a function
of ``(seed, stream or row id, replicate)`` only.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.stats._arrays import all_finite, row_all_finite, row_max, row_sum, unique_inverse
from compval.stats._calibration import (
    calibration_bin_sums,
    calibration_bins,
    ece_from_sums,
    expected_calibration_error,
)
from compval.stats._decisions import (
    Verdict,
    adjust_pvalues,
    noninferiority_verdict,
    rows_needed_noninferiority,
)
from compval.stats._distribution import chi_square_counts, g_test_counts, jensen_shannon, psi
from compval.stats._histogram import (
    FixedHistogram,
    ks_distance_from_histograms,
    ks_from_histograms,
    wasserstein_from_histograms,
)
from compval.stats._intervals import bca_intervals, bootstrap_quantiles
from compval.stats._paired import (
    P_VALUE_FLOOR,
    clopper_pearson_intervals,
    mcnemar_exact,
    paired_delta_sd,
    paired_proportion_delta_ci,
    stuart_maxwell,
    tango_intervals,
)
from compval.stats._resampling import (
    block_replicate_means,
    block_weights,
    gamma_table_weights,
    percentile_interval,
    percentile_intervals,
    poisson_table_counts,
    row_blocks,
    row_hash,
    stable_hash,
)
from compval.stats._result import StatKind, StatResult
from compval.stats._slices import SliceResult, SliceSearch

__all__ = [
    "all_finite",
    "row_all_finite",
    "row_max",
    "row_sum",
    "unique_inverse",
    "clopper_pearson_intervals",
    "tango_intervals",
    "P_VALUE_FLOOR",
    "stuart_maxwell",
    "FixedHistogram",
    "SliceResult",
    "SliceSearch",
    "StatKind",
    "StatResult",
    "Verdict",
    "adjust_pvalues",
    "bca_intervals",
    "block_replicate_means",
    "block_weights",
    "bootstrap_quantiles",
    "calibration_bin_sums",
    "calibration_bins",
    "chi_square_counts",
    "ece_from_sums",
    "expected_calibration_error",
    "g_test_counts",
    "gamma_table_weights",
    "jensen_shannon",
    "ks_distance_from_histograms",
    "ks_from_histograms",
    "mcnemar_exact",
    "noninferiority_verdict",
    "paired_delta_sd",
    "paired_proportion_delta_ci",
    "percentile_interval",
    "percentile_intervals",
    "poisson_table_counts",
    "row_hash",
    "psi",
    "row_blocks",
    "rows_needed_noninferiority",
    "stable_hash",
    "wasserstein_from_histograms",
]

name_public_functions(__name__, globals(), __all__)
