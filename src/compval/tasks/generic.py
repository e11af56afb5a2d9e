"""``task: generic``: any numeric outputs, compared by fidelity (no labels used)."""

from __future__ import annotations

from typing import Any

from compval.metrics import Accumulator, NonFiniteCounts, OutputFidelity
from compval.tasks._base import TaskState
from compval.tasks._outputs import OutputKind
from compval.tasks._values import COSINE_CRITERION, SQNR_CRITERION, ValueTask

__all__ = ["GenericTask"]


class GenericTask(ValueTask):
    """Output fidelity (abs/rel diff, SQNR, cosine) and non-finite counts."""

    name = "generic"
    metrics_of = "generic"

    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """Non-finite counts and output fidelity."""
        seg = state.segments
        return [NonFiniteCounts(seg), OutputFidelity(seg)]

    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """Cosine similarity and SQNR of the outputs (direction and magnitude)."""
        return [dict(COSINE_CRITERION), dict(SQNR_CRITERION)]
