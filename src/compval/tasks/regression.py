"""``task: regression``: numeric targets; errors of both models against them, and fidelity."""

from __future__ import annotations

from typing import Any

import numpy as np

from compval.metrics import Accumulator, NonFiniteCounts, OutputFidelity, RegressionErrors
from compval.tasks._base import ChunkContext, TaskState
from compval.tasks._outputs import OutputKind
from compval.tasks._values import ValueTask
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
        """Targets as float64 rows."""
        targets = None if labels is None else labels.astype(np.float64).reshape(len(labels), -1)
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
        """MAE overall and per segment; cosine fidelity without targets."""
        if not has_labels:
            return [{"id": "cosine", "metric": "cosine_similarity", "min": 0.99}]
        return [
            {"id": "mae", "metric": "mean_absolute_error", "max_relative_increase": 0.05},
            {
                "id": "mae-per-segment",
                "metric": "mean_absolute_error",
                "max_relative_increase": 0.10,
                "segment": "*",
            },
        ]
