"""Calibration from mergeable per-bin sums: expected calibration error (ECE).

Method. Standard equal-width binned ECE (Naeini et al. 2015; Guo et al. 2017): split the
top-class confidence into ``n_bins`` equal bins ``[k/B, (k+1)/B)`` (the last one closed), and
take the row-weighted mean gap between accuracy and mean confidence::

    ECE = sum_k (n_k / N) * |acc_k - conf_k| = sum_k |correct_sum_k - confidence_sum_k| / N

The second form needs only three sums per bin, which add across batches and shards: an
accumulator keeps ``(bin_count, bin_confidence_sum, bin_correct_sum)`` per segment (built with
:func:`calibration_bin_sums`) and calls :func:`expected_calibration_error` at the end. Lower is
better. ECE depends on the number of bins and is biased upward on small samples (empty or
sparse bins have noisy accuracies); report ``n_bins`` with it.

The Brier score is not computed here: it is a plain per-row mean,
``mean_i sum_c (p_ic - y_ic)^2``, so the caller keeps its sum (per segment and bootstrap
block, see :func:`~compval.stats.row_blocks`) and its interval comes from the block bootstrap
(:func:`~compval.stats.block_replicate_means`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from compval.errors import InvalidParameterError
from compval.stats._checks import check_positive_int

__all__ = [
    "calibration_bin_sums",
    "calibration_bins",
    "ece_from_sums",
    "expected_calibration_error",
]


def calibration_bins(confidence: npt.NDArray[np.float64], n_bins: int) -> npt.NDArray[np.int64]:
    """Equal-width bin index of each confidence: ``[k/B, (k+1)/B)``, the last bin closed.

    The one definition of the bins, shared by :func:`calibration_bin_sums` and the streaming
    accumulators (inputs trusted: confidences in [0, 1]).
    """
    index: npt.NDArray[np.int64] = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    return index


def ece_from_sums(
    bin_count: npt.NDArray[np.float64],
    bin_confidence_sum: npt.NDArray[np.float64],
    bin_correct_sum: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """ECE over the last axis, vectorized over any leading axes (segments, replicates).

    NaN where a slice has no rows. Inputs are trusted; :func:`expected_calibration_error` is
    the validating one-shot form.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ece: npt.NDArray[np.float64] = np.abs(bin_correct_sum - bin_confidence_sum).sum(
            axis=-1
        ) / bin_count.sum(axis=-1)
    return ece


def calibration_bin_sums(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, *, n_bins: int = 15
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-bin row counts, confidence sums and correct counts for one batch.

    Args:
        confidence: Top-class confidence per row, in [0, 1].
        correct: Whether the top class was right, per row (bool or 0/1).
        n_bins: Number of equal-width bins on [0, 1] (default 15).

    Returns:
        ``(bin_count, bin_confidence_sum, bin_correct_sum)``, each of length ``n_bins``; add
        them across batches.

    Raises:
        InvalidParameterError: Lengths differ, confidences outside [0, 1] or NaN, or
            ``n_bins`` < 1.

    Example:
        >>> count, conf, corr = calibration_bin_sums([0.1, 0.95, 1.0], [0, 1, 1], n_bins=2)
        >>> count.tolist(), corr.tolist()
        ([1, 2], [0.0, 2.0])
    """
    bins = check_positive_int(n_bins, subject="calibration_bin_sums: n_bins")
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct).ravel()
    if conf.shape != hit.shape:
        raise InvalidParameterError(
            f"calibration_bin_sums: lengths differ; got {conf.size} confidences and "
            f"{hit.size} correctness flags, expected one of each per row."
        )
    outside = conf[~((conf >= 0.0) & (conf <= 1.0))]
    if outside.size:
        raise InvalidParameterError(
            f"calibration_bin_sums: confidence outside [0, 1]; got {outside.size} such values, "
            f"e.g. {float(outside[0])!r}, expected probabilities. Pass the softmax probability "
            "of the predicted class."
        )
    index = calibration_bins(conf, bins)
    count: npt.NDArray[np.int64] = np.bincount(index, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(index, weights=conf, minlength=bins).astype(np.float64)
    correct_sum = np.bincount(index, weights=hit.astype(np.float64), minlength=bins).astype(
        np.float64
    )
    return count, conf_sum, correct_sum


def expected_calibration_error(
    bin_count: npt.ArrayLike, bin_confidence_sum: npt.ArrayLike, bin_correct_sum: npt.ArrayLike
) -> float:
    """Expected calibration error from per-bin sums.

    Args:
        bin_count: Rows per bin.
        bin_confidence_sum: Sum of top-class confidences per bin.
        bin_correct_sum: Number of correct rows per bin.

    Returns:
        ``sum_k |bin_correct_sum_k - bin_confidence_sum_k| / sum_k bin_count_k``, in [0, 1].

    Raises:
        InvalidParameterError: Arrays of different shapes, negative counts, or no rows.

    Example:
        >>> expected_calibration_error([2, 2], [0.4, 1.8], [0, 2])
        0.15
    """
    count = np.asarray(bin_count, dtype=np.float64)
    conf_sum = np.asarray(bin_confidence_sum, dtype=np.float64)
    correct_sum = np.asarray(bin_correct_sum, dtype=np.float64)
    if not count.ndim == 1 or not count.shape == conf_sum.shape == correct_sum.shape:
        raise InvalidParameterError(
            f"expected_calibration_error: shapes differ; got {count.shape}, {conf_sum.shape}, "
            f"{correct_sum.shape}, expected three 1-D arrays with one entry per bin."
        )
    total = float(count.sum())
    if count.size and count.min() < 0:
        raise InvalidParameterError(
            f"expected_calibration_error: negative bin count; got min {float(count.min())!r}, "
            "expected counts >= 0."
        )
    if total <= 0.0:
        raise InvalidParameterError(
            "expected_calibration_error: no rows; got bin counts summing to 0, expected at "
            "least one row. ECE is undefined on an empty segment."
        )
    return float(ece_from_sums(count, conf_sum, correct_sum))
