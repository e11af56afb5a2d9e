"""Per-feature statistics of the data (mean, std, min, max), from one cheap pass without models.

Perturbations scale by a feature's standard deviation and clip to its observed range, and the
search measures its ball in standard deviations. The statistics come from a full pass over the
data's inputs (no model runs; the data is read once more), accumulated in float64 sums per
feature, so they are exact and do not depend on the batch size beyond float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compval.data import Dataset
from compval.types import Array

__all__ = ["FeatureStats", "feature_stats"]


@dataclass(frozen=True, slots=True)
class FeatureStats:
    """Statistics of one input, per feature (flattened per row: an image has H*W*C features).

    ``std`` is the population standard deviation; a constant feature has std 0, so noise
    scaled by it leaves it alone.
    """

    mean: Array
    std: Array
    min: Array
    max: Array
    rows: int


def feature_stats(dataset: Dataset, batch_size: int) -> dict[str, FeatureStats]:
    """Mean, std, min and max of every float input of ``dataset``, per flattened feature."""
    sums: dict[str, Array] = {}
    squares: dict[str, Array] = {}
    lows: dict[str, Array] = {}
    highs: dict[str, Array] = {}
    rows = 0
    for batch in dataset.batches(batch_size):
        for name, array in batch.inputs.items():
            values = np.asarray(array)
            if values.dtype.kind != "f":
                continue
            flat = values.reshape(values.shape[0], -1).astype(np.float64)
            if name not in sums:
                sums[name] = flat.sum(axis=0)
                squares[name] = np.square(flat).sum(axis=0)
                lows[name] = flat.min(axis=0)
                highs[name] = flat.max(axis=0)
            else:
                sums[name] += flat.sum(axis=0)
                squares[name] += np.square(flat).sum(axis=0)
                np.minimum(lows[name], flat.min(axis=0), out=lows[name])
                np.maximum(highs[name], flat.max(axis=0), out=highs[name])
        rows += len(batch)
    out: dict[str, FeatureStats] = {}
    for name, total in sums.items():
        mean = total / max(rows, 1)
        var = np.maximum(squares[name] / max(rows, 1) - mean**2, 0.0)
        out[name] = FeatureStats(mean, np.sqrt(var), lows[name], highs[name], rows)
    return out
