"""Boundary checks shared by the statistics functions.

Public functions in ``compval.stats`` call these once, at their entry; private helpers then
trust their inputs. Every failure raises :class:`~compval.errors.InvalidParameterError` with the
project's message shape ``<subject>: <what is wrong>; got <value>, expected <constraint>. <fix>``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import numpy.typing as npt

from compval.errors import InvalidParameterError

__all__ = [
    "check_confidence",
    "check_count",
    "check_counts_array",
    "check_positive_int",
    "check_seed",
]


def check_confidence(confidence: float, *, subject: str = "confidence") -> float:
    """Return ``confidence`` as a float in the open interval (0, 1), else raise."""
    value = _as_float(confidence, subject=subject, expected="a float in (0, 1)")
    if not 0.0 < value < 1.0:
        raise InvalidParameterError(
            f"{subject}: out of range; got {confidence!r}, expected a float in (0, 1). "
            "Pass e.g. 0.95 for a 95% interval."
        )
    return value


def check_count(value: object, *, subject: str) -> int:
    """Return ``value`` as a non-negative Python int, else raise."""
    number = _as_int(value, subject=subject, expected="a non-negative integer")
    if number < 0:
        raise InvalidParameterError(
            f"{subject}: negative count; got {value!r}, expected a non-negative integer. "
            "Counts of rows are never negative."
        )
    return number


def check_positive_int(value: object, *, subject: str) -> int:
    """Return ``value`` as a Python int >= 1, else raise."""
    number = _as_int(value, subject=subject, expected="an integer >= 1")
    if number < 1:
        raise InvalidParameterError(
            f"{subject}: must be at least 1; got {value!r}, expected an integer >= 1."
        )
    return number


def check_seed(value: object, *, subject: str = "seed") -> int:
    """Return ``value`` reduced to an unsigned 64-bit int (negative seeds wrap), else raise."""
    return _as_int(value, subject=subject, expected="an integer") & 0xFFFF_FFFF_FFFF_FFFF


def check_counts_array(
    values: npt.ArrayLike, *, subject: str, ndim: int = 1
) -> npt.NDArray[np.int64]:
    """Return ``values`` as an int64 array of non-negative integers with ``ndim`` dimensions.

    Floats are accepted when they hold whole numbers (counts often travel as float64 sums).
    """
    array = np.asarray(values)
    if array.ndim != ndim:
        raise InvalidParameterError(
            f"{subject}: wrong number of dimensions; got shape {array.shape}, expected a "
            f"{ndim}-D array of counts."
        )
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise InvalidParameterError(
            f"{subject}: not numeric; got dtype {array.dtype}, expected integer counts."
        )
    if np.issubdtype(array.dtype, np.floating) and (
        not np.all(np.isfinite(array)) or not np.all(array == np.round(array))
    ):
        raise InvalidParameterError(
            f"{subject}: not whole numbers; got {_preview(array)}, expected integer counts."
        )
    if array.size and array.min() < 0:
        raise InvalidParameterError(
            f"{subject}: negative count; got {_preview(array)}, expected counts >= 0."
        )
    return array.astype(np.int64, copy=False)


def _as_int(value: object, *, subject: str, expected: str) -> int:
    if isinstance(value, bool | np.bool_):
        raise InvalidParameterError(f"{subject}: got a bool {value!r}, expected {expected}.")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        pass
    if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        return int(value)
    raise InvalidParameterError(f"{subject}: not an integer; got {value!r}, expected {expected}.")


def _as_float(value: object, *, subject: str, expected: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise InvalidParameterError(f"{subject}: not a number; got {value!r}, expected {expected}.")
    return float(value)


def _preview(array: npt.NDArray[Any]) -> str:
    flat = array.ravel()
    text = np.array2string(flat[:6], separator=", ")
    return text if flat.size <= 6 else text[:-1] + ", ...]"
