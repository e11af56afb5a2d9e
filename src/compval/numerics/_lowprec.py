"""Overflow and flush-to-zero in a candidate's float16 / bfloat16 tensors.

A half-precision copy fails differently from an integer one: its grid is fine, but its range is
short (float16 tops out at 65504 and rounds magnitudes below about 6e-8 to zero; bfloat16 has
float32's range but 8 bits of mantissa). Each low-precision tensor of the candidate is compared
with the reference's float tensor of the same name:

* **overflow**: the candidate's value is not finite where the reference's is (an Inf, or the
  NaN an Inf turns into downstream);
* **flush to zero**: the candidate's value is exactly 0 where the reference's is non-zero and
  smaller in magnitude than the low-precision type's smallest normal number, so the zero comes
  from the type's range and not from, say, a ReLU on a value that changed sign.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compval.results import LowPrecisionTensor
from compval.types import Array

__all__ = ["LOW_PRECISION_TINY", "low_precision_rates", "range_losses"]

#: Smallest positive normal number of each low-precision float type (``finfo(t).tiny``).
LOW_PRECISION_TINY = {"float16": 6.103515625e-05, "bfloat16": 1.1754943508222875e-38}


def range_losses(reference: Array, candidate: Array, dtype: str) -> tuple[int, int]:
    """``(overflowed, flushed)`` element counts of a ``dtype`` candidate tensor.

    Args:
        reference: The reference's tensor (any float type), flattened or not.
        candidate: The candidate's tensor, the same number of elements.
        dtype: The candidate tensor's type, a key of ``LOW_PRECISION_TINY``.
    """
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    finite = np.isfinite(r)
    overflowed = int(np.count_nonzero(finite & ~np.isfinite(c)))
    small = (r != 0.0) & (np.abs(r) < LOW_PRECISION_TINY[dtype])
    flushed = int(np.count_nonzero(small & (c == 0.0)))
    return overflowed, flushed


def low_precision_rates(
    tensors: Sequence[LowPrecisionTensor],
) -> tuple[float | None, float | None]:
    """``(overflow_rate, flush_to_zero_rate)`` over every element of ``tensors``.

    None for both when the candidate has no low-precision tensor.
    """
    elements = sum(t.elements for t in tensors)
    if elements == 0:
        return None, None
    return (
        sum(t.overflowed for t in tensors) / elements,
        sum(t.flushed_to_zero for t in tensors) / elements,
    )
