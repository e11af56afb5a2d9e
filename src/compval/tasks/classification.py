"""``task: classification``: labels, probabilities or logits; everything is a contingency table.

Output kinds are detected per model on its first chunk unless the spec sets ``task.outputs``
(see ``compval.tasks._outputs``). The class index space comes from the first model that
outputs class scores (its adapter's ``classes`` when it has them, else 0..K-1); with
label-only models it grows with the labels seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compval.errors import DataError
from compval.metrics import (
    Accumulator,
    Calibration,
    ClassTable,
    ConfidenceShift,
    ContingencyTable,
    KLQuantiles,
    NonFiniteCounts,
    OutputFidelity,
    PairedRows,
    ProbabilityDivergence,
    WeakSlices,
    kl_divergence_rows,
)
from compval.tasks._base import ChunkContext, RowsBase, Task, TaskState
from compval.tasks._outputs import OutputKind, PreparedOutput, detect_kind, label_codes
from compval.tasks._outputs import prepare_classification as _prepare
from compval.types import Array

__all__ = ["ClassificationTask"]


class ClassificationTask(Task):
    """Predicted classes against labels, and the two models' class scores against each other."""

    name = "classification"
    metrics_of = "classification"
    searches_slices = True

    def output_kind(self, state: TaskState, raw: Array) -> OutputKind:
        """The spec's ``task.outputs``, or the kind detected from ``raw``."""
        forced = state.spec.task.outputs
        return detect_kind(raw) if forced == "auto" else forced

    def observe(
        self, state: TaskState, classes: Sequence[object] | None, raw: Array, kind: OutputKind
    ) -> None:
        """Fix the class index space from the first model that outputs class scores."""
        if kind not in ("probabilities", "logits") or not state.dynamic_classes:
            return
        k = raw.reshape(raw.shape[0], -1).shape[1]
        values = list(classes) if classes is not None and len(classes) == k else list(range(k))
        state.classes = ClassTable([v.item() if isinstance(v, np.generic) else v for v in values])
        state.dynamic_classes = False
        state.n_scores = k

    def prepare_chunk(
        self,
        state: TaskState,
        *,
        reference: Array,
        kind: OutputKind,
        labels: Array | None,
        model: str,
    ) -> ChunkContext:
        """Class indices of the labels, and the reference's predictions and scores."""
        codes = None
        if labels is not None:
            codes = label_codes(
                labels, state.classes, dynamic=state.dynamic_classes, n_scores=state.n_scores
            )
        prepared = _prepare(
            reference, kind, state.classes, dynamic=state.dynamic_classes, model=model
        )
        return ChunkContext(labels=codes, label_classes=codes, reference=prepared)

    def pair(
        self,
        state: TaskState,
        chunk: ChunkContext,
        base: RowsBase,
        *,
        raw: Array,
        kind: OutputKind,
        model: str,
    ) -> tuple[PairedRows, PairedRows]:
        """Predictions, probabilities and per-row KL of both models."""
        ref: PreparedOutput = chunk.reference
        cand = _prepare(raw, kind, state.classes, dynamic=state.dynamic_classes, model=model)
        if ref.prob is not None and cand.prob is not None:
            if ref.prob.shape[1] != cand.prob.shape[1]:
                raise DataError(
                    f"Candidate {model!r} outputs {cand.prob.shape[1]} classes but the "
                    f"reference outputs {ref.prob.shape[1]}; both models must score the same "
                    "classes in the same order."
                )
            fid_ref, fid_cand = ref.prob, cand.prob
        else:
            fid_ref, fid_cand = base.reference, base.candidate
        finite = ref.finite & cand.finite
        kl = None
        if ref.prob is not None and cand.prob is not None:
            kl = np.zeros(finite.shape[0])
            kl[finite] = kl_divergence_rows(ref.prob[finite], cand.prob[finite])
        rows = PairedRows(
            reference=fid_ref,
            candidate=fid_cand,
            row_ids=base.row_ids,
            blocks=base.blocks,
            segment_ids=base.segment_ids,
            finite=finite,
            labels=chunk.labels,
            ref_pred=ref.pred,
            cand_pred=cand.pred,
            ref_prob=ref.prob,
            cand_prob=cand.prob,
            kl=kl,
            slice_columns=base.slice_columns,
            slice_keep=base.slice_keep,
        )
        nonfinite = PairedRows(
            reference=base.reference,
            candidate=base.candidate,
            row_ids=base.row_ids,
            blocks=base.blocks,
            segment_ids=base.segment_ids,
            finite=finite,
        )
        return rows, nonfinite

    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """The table; score metrics when both models output scores; evidence last."""
        seg = state.segments
        scores = reference_kind != "labels" and candidate_kind != "labels"
        accs: list[Accumulator] = [NonFiniteCounts(seg), ContingencyTable(seg)]
        if scores:
            accs += [OutputFidelity(seg), ProbabilityDivergence(seg), KLQuantiles(seg)]
            if state.has_labels:
                accs.append(Calibration(seg))
            accs.append(ConfidenceShift(seg))
        if state.slice_features is not None:
            features, categorical = state.slice_features
            accs.append(
                WeakSlices(
                    seg, features=features, categorical=categorical, seed=state.spec.statistics_seed
                )
            )
        return accs

    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """Accuracy overall and per segment, and agreement; agreement alone without labels."""
        if not has_labels:
            return [{"id": "agreement", "metric": "top1_agreement", "min": 0.98}]
        return [
            {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.01},
            {
                "id": "accuracy-per-segment",
                "metric": "accuracy_score",
                "max_drop": 0.05,
                "segment": "*",
            },
            {"id": "agreement", "metric": "top1_agreement", "min": 0.95},
        ]
