"""``task: regression``: numeric targets; errors of both models against them, and fidelity."""

from __future__ import annotations

from typing import Any

import numpy as np

from compval.errors import DataError
from compval.metrics import Accumulator, NonFiniteCounts, OutputFidelity, RegressionErrors
from compval.tasks._base import ChunkContext, TaskState
from compval.tasks._outputs import OutputKind
from compval.tasks._values import SQNR_CRITERION, ValueTask
from compval.types import Array

__all__ = ["RegressionTask"]


class RegressionTask(ValueTask):
    """MAE, RMSE and R^2 of both models against the targets, plus output fidelity."""

    name = "regression"
    metrics_of = "regression"

    def prepare_chunk(
        self,
        state: TaskState,
        *,
        reference: Array,
        kind: OutputKind,
        labels: Array | None,
        model: str,
    ) -> ChunkContext:
        """Targets as float64 rows.

        Raises:
            DataError: A target is not a number (text, or a list per row).
        """
        targets = None if labels is None else _targets(labels)
        return ChunkContext(labels=targets, label_classes=None)

    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """Non-finite counts, fidelity, and the errors when targets exist."""
        seg = state.segments
        accs: list[Accumulator] = [NonFiniteCounts(seg), OutputFidelity(seg)]
        if state.has_labels:
            accs.append(RegressionErrors(seg, width=width))
        return accs

    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """MAE overall and per segment; without targets, the SQNR of the outputs."""
        if not has_labels:
            return [dict(SQNR_CRITERION)]
        return [
            {"id": "mae", "metric": "mean_absolute_error", "max_relative_increase": 0.05},
            {
                "id": "mae-per-segment",
                "metric": "mean_absolute_error",
                "max_relative_increase": 0.10,
                "segment": "*",
            },
        ]


def _targets(labels: Array) -> Array:
    """The targets as (rows, 1) float64; a clear error for what is not one number per row."""
    values = np.asarray(labels)
    try:
        if values.dtype.kind in "USO":
            # Text or objects: numbers stored as text ("1.5") read as numbers, as a CSV would.
            converted = np.array([float(v) for v in values.reshape(-1)], dtype=np.float64)
        else:
            converted = values.astype(np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values.reshape(-1) if not _is_number(v))
        if isinstance(bad, list | tuple | np.ndarray):
            raise DataError(
                f"data.labels: regression targets must be one number per row; got a list of "
                f"{len(bad)} values per row ({np.asarray(bad).tolist()!r}). Targets of several "
                "values per row are not read from data yet: point data.labels at a column of "
                "one number per row, for a model with one output value per row."
            ) from None
        raise DataError(
            f"data.labels: regression targets must be one number per row; got {bad!r} "
            f"({type(bad).__name__}). Point data.labels at a numeric column, or use task: "
            "classification for class labels."
        ) from None
    return converted.reshape(len(values), -1)


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
