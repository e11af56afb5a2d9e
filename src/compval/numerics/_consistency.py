"""Batch-size and run consistency: the same rows, different batch compositions.

Dynamic quantization computes its activation scales per batch, so a row's prediction can
depend on which rows share its batch; threaded kernels may also sum in a different order from
one run to the next. Both are measured on the same rows, without labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from compval.results import BatchConsistency
from compval.types import Array

__all__ = ["measure_batch_consistency"]

Predict = Callable[[Mapping[str, Array]], Array]


def _run(predict: Predict, inputs: Mapping[str, Array], batch_size: int) -> Array:
    rows = int(next(iter(inputs.values())).shape[0])
    parts = [
        np.asarray(predict({k: v[start : start + batch_size] for k, v in inputs.items()}))
        for start in range(0, rows, batch_size)
    ]
    return np.concatenate(parts)


def _predictions(output: Array) -> Array | None:
    """Predicted classes: argmax of a score matrix, or the values of a label vector."""
    if output.ndim == 2 and output.shape[1] > 1 and output.dtype.kind == "f":
        return np.asarray(np.argmax(output, axis=1))
    if output.ndim == 1 and output.dtype.kind in "iub":
        return output
    return None


def _max_diff(a: Array, b: Array) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def measure_batch_consistency(
    predict: Predict, inputs: Mapping[str, Array], *, batch_size: int
) -> BatchConsistency:
    """Run ``predict`` one row at a time and in batches of ``batch_size`` on ``inputs``.

    Args:
        predict: The candidate's compared output for a batch of bound inputs.
        inputs: The sample rows, bound to the model's input names.
        batch_size: The run's batch size.

    Returns:
        The share of rows whose prediction changes between batch 1 and ``batch_size`` (None
        for outputs that are not class scores or labels), the largest output difference, and
        the largest difference between two identical runs at ``batch_size``.
    """
    batched = _run(predict, inputs, batch_size)
    again = _run(predict, inputs, batch_size)
    single = _run(predict, inputs, 1)
    flipped: int | None = None
    rate: float | None = None
    p_batched, p_single = _predictions(batched), _predictions(single)
    if p_batched is not None and p_single is not None:
        flipped = int(np.count_nonzero(p_batched != p_single))
        rate = flipped / len(p_batched) if len(p_batched) else 0.0
    return BatchConsistency(
        batch_size=batch_size,
        rows=int(batched.shape[0]),
        flip_rate=rate,
        flipped_rows=flipped,
        max_abs_diff=_max_diff(batched, single),
        run_max_abs_diff=_max_diff(batched, again),
    )
