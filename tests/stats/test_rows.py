"""The row-wise reductions equal numpy's, bit for bit, on every width."""

from __future__ import annotations

import numpy as np
import pytest

from compval.stats import all_finite, row_all_finite, row_max, row_sum, unique_inverse

WIDTHS = [0, 1, 2, 5, 7, 8, 9, 40]


def _values(k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Magnitudes over many decades, so that the order of the additions shows in the sums.
    return rng.normal(size=(2000, k)) * 10.0 ** rng.uniform(-8, 8, (2000, k))


@pytest.mark.parametrize("k", WIDTHS)
def test_row_sum_equals_numpy_sum(k: int) -> None:
    values = _values(k, k)
    assert np.array_equal(row_sum(values), values.sum(axis=1))


@pytest.mark.parametrize("k", WIDTHS)
def test_row_all_finite_equals_numpy(k: int) -> None:
    values = _values(k, k + 1)
    if k:
        values[3, k - 1], values[4, 0], values[5, k // 2] = np.nan, np.inf, -np.inf
    assert np.array_equal(row_all_finite(values), np.isfinite(values).all(axis=1))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.complex64])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_all_finite_equals_numpy(dtype: type, bad: float | None) -> None:
    values = np.random.default_rng(9).normal(size=(2000, 5)).astype(dtype)
    if bad is not None:
        values[1999, 4] = bad
    assert all_finite(values) == bool(np.isfinite(values).all()) == (bad is None)
    assert all_finite(values[:0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_all_finite_of_finite_values_whose_sum_overflows(dtype: type) -> None:
    # The sum is +Inf, every value finite: the exact check decides.
    values = np.full((4, 3), np.finfo(dtype).max, dtype=dtype)
    assert all_finite(values)
    values[2, 1] = np.nan
    assert not all_finite(values)


@pytest.mark.parametrize("k", WIDTHS)
def test_row_max_equals_numpy_row_maximum(k: int) -> None:
    values = np.abs(_values(k, k + 2))
    if k:
        values[3, k - 1] = np.nan
    values[4] = 0.0
    expected = values.max(axis=1, initial=0.0)
    assert np.array_equal(row_max(values), expected, equal_nan=True)


@pytest.mark.parametrize(
    "values",
    [
        np.array([3, 1, 3, 0, 7, 1]),  # small non-negative ints: counted
        np.array([5, -2, 5, 10**9]),  # others: sorted
        np.array(["b", "a", "b", "é"], dtype=object),  # text: grouped by a dict
        np.array([], dtype=np.int64),
        np.array([[2, 0], [2, 1]]),  # any shape: a flat inverse
    ],
)
def test_unique_inverse_equals_numpy_unique(values: np.ndarray) -> None:
    uniques, inverse = unique_inverse(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert list(uniques) == list(expected)
    assert np.array_equal(inverse, expected_inverse.reshape(-1))


def test_unique_inverse_of_values_that_do_not_compare_groups_them_by_type() -> None:
    """A numeric segment column with missing values holds numbers and the text "<NA>"."""
    values = np.array([2.0, "<NA>", 1.0, 2.0, "<NA>"], dtype=object)
    uniques, inverse = unique_inverse(values)
    assert list(uniques) == [1.0, 2.0, "<NA>"]  # 'float' sorts before 'str'
    assert inverse.tolist() == [1, 2, 0, 1, 2]


def test_unique_inverse_of_equal_values_of_different_types_keeps_the_first_row() -> None:
    """1, 1.0 and True are one value to Python: the first row's object stands for them."""
    values = np.array([2, 1.0, True, 1, 2.0], dtype=object)
    uniques, inverse = unique_inverse(values)
    assert [type(u) for u in uniques] == [float, int]
    assert uniques.tolist() == [1.0, 2]
    assert inverse.tolist() == [1, 0, 0, 0, 1]


def test_unique_inverse_with_nan_objects_keeps_the_rows_order() -> None:
    """NaN equals nothing, so sorting leaves it (and what lies around it) in the given order.

    That order is the rows' (first appearance), as before: a set's order would depend on
    NaN's hash, which is its address, and so change from one process to the next.
    """
    nan = float("nan")
    values = np.array([2.0, nan, 1.0, 2.0, nan], dtype=object)
    uniques, inverse = unique_inverse(values)
    assert [str(u) for u in uniques] == ["2.0", "nan", "1.0"]
    assert inverse.tolist() == [0, 1, 2, 0, 1]
