"""Batches and the Dataset protocol."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from compval.types import Array

__all__ = ["Batch", "Dataset", "feature_names"]


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of rows.

    Attributes:
        inputs: Feature arrays by name, batch on axis 0. A tabular dataset has one array,
            ``"features"``, of shape (rows, columns).
        labels: Per-row labels, or None for unlabelled data.
        row_ids: Stable int64 row ids (position in the dataset), used for deterministic
            resampling whatever the batch size.
        segments: Segment column -> per-row values (1-D object/str/int arrays).
        inputs_finite: True when the dataset has already found every float value of
            ``inputs`` finite (no NaN, no Inf), e.g. once for a whole read that the batch is
            a view of; the run then skips its own per-batch check. False (the default):
            the run checks.
    """

    inputs: Mapping[str, Array]
    labels: Array | None
    row_ids: Array
    segments: Mapping[str, Array]
    inputs_finite: bool = False

    def __len__(self) -> int:
        return int(self.row_ids.shape[0])


@runtime_checkable
class Dataset(Protocol):
    """A source of batches. Implementations stream: peak memory must not grow with rows."""

    def __len__(self) -> int:
        """Number of rows."""
        ...

    @property
    def segment_columns(self) -> Sequence[str]:
        """Names of the segment columns, in order."""
        ...

    @property
    def has_labels(self) -> bool:
        """Whether batches carry labels."""
        ...

    def fingerprint(self) -> str:
        """A content hash (hex) identifying the data, recorded in the report."""
        ...

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` rows, in row order."""
        ...


def feature_names(dataset: Dataset) -> tuple[str, ...]:
    """The column names of a tabular dataset's single ``"features"`` array; () when unknown.

    Optional in the protocol: a dataset may expose them as a ``feature_columns`` attribute
    (the built-in table readers and DataFrames do). They name the columns in weak slices,
    non-finite feature counts and numerics findings; without them columns are numbered.
    """
    return tuple(str(c) for c in (getattr(dataset, "feature_columns", ()) or ()))
