"""Stable ids for segments and classes, assigned in order of first appearance.

Accumulators index their state by these ids. Ids depend on the order rows arrive in, so
merging accumulators that used different tables re-maps by *name* (``SegmentTable.align``):
results never depend on ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from compval.stats import unique_inverse
from compval.types import Array

__all__ = ["ClassTable", "SegmentTable", "format_value"]


def format_value(value: Any) -> str:
    """The text of a segment or class value: ``3`` not ``3.0`` or ``np.int64(3)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _Table:
    """Names to dense ids; ``ids_for`` maps a batch of raw values in one vectorized step."""

    def __init__(self, names: Sequence[Hashable] = ()) -> None:
        self.names: list[Any] = []
        self._index: dict[Any, int] = {}
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: Any) -> int:
        """Return the id of ``name``, assigning the next id if it is new."""
        found = self._index.get(name)
        if found is None:
            found = len(self.names)
            self._index[name] = found
            self.names.append(name)
        return found

    def get(self, name: Any) -> int | None:
        """The id of ``name`` or None."""
        return self._index.get(name)

    def align(self, other_names: Sequence[Any]) -> Array:
        """Ids in this table of ``other_names`` (added when missing): a lookup for re-mapping."""
        return np.fromiter(
            (self.add(n) for n in other_names), dtype=np.int64, count=len(other_names)
        )


class SegmentTable(_Table):
    """Segment names (``None`` is overall, id 0) -> ids."""

    def __init__(self, names: Sequence[str | None] = (None,)) -> None:
        super().__init__(names)
        if not self.names or self.names[0] is not None:
            raise ValueError("the overall segment (None) must have id 0")
        self._per_column: dict[str, int] = {}
        #: The most distinct values a segment column may have (``data.max_segment_values``,
        #: set by the run; ``compval.tasks.segment_ids`` enforces it). None: no limit.
        self.max_values: int | None = None

    def values_of(self, column: str) -> int:
        """How many distinct values of segment column ``column`` ``ids_for`` has seen."""
        return self._per_column.get(column, 0)

    def ids_for(self, column: str, values: Array) -> Array:
        """Segment ids of ``<column>=<value>`` for each value (int64, one per row)."""
        uniques, inverse = unique_inverse(values)
        before = len(self.names)
        lut = np.fromiter(
            (self.add(f"{column}={format_value(v)}") for v in uniques),
            dtype=np.int64,
            count=len(uniques),
        )
        self._per_column[column] = self.values_of(column) + len(self.names) - before
        return lut[inverse.reshape(-1)]


class ClassTable(_Table):
    """Class values -> class indices (the index space of the contingency table)."""

    def codes_for(self, values: Array) -> Array:
        """Class index of each value, adding new classes (int64)."""
        uniques, inverse = unique_inverse(values)
        lut = np.fromiter(
            (self.add(v.item() if isinstance(v, np.generic) else v) for v in uniques),
            dtype=np.int64,
            count=len(uniques),
        )
        return lut[inverse.reshape(-1)]

    def lookup(self, values: Array) -> Array:
        """Class index of each value, -1 for values not in the table (never adds)."""
        uniques, inverse = unique_inverse(values)
        lut = np.array(
            [self._index.get(v.item() if isinstance(v, np.generic) else v, -1) for v in uniques],
            dtype=np.int64,
        )
        return lut[inverse.reshape(-1)]

    def display(self, index: int) -> str:
        """Text of class ``index`` for metric names like ``recall_score[3]``."""
        return format_value(self.names[index])
