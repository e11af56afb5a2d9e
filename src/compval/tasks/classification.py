"""``task: classification``: labels, probabilities or logits; everything is a contingency table.

Output kinds are detected per model on its first chunk unless the spec sets ``task.outputs``
(see ``compval.tasks._outputs``). The class index space comes from the first model that
outputs class scores (its adapter's ``classes`` when it has them, else 0..K-1; two classes for
one column of binary scores); with label-only models it grows with the labels seen. Labels and
predicted labels are matched by value (text, integers, booleans); values that can never match
(text against integers) are refused rather than counted wrong on every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

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
from compval.spec import echo
from compval.tasks._base import ChunkContext, RowsBase, Task, TaskState
from compval.tasks._outputs import (
    OutputKind,
    PreparedOutput,
    check_label_kinds,
    check_rank,
    detect_kind,
    is_label_output,
    label_codes,
    probability_gap,
    value_kind,
)
from compval.tasks._outputs import prepare_classification as _prepare
from compval.types import Array, Outputs

__all__ = ["ClassificationTask"]


class ClassificationTask(Task):
    """Predicted classes against labels, and the two models' class scores against each other."""

    name = "classification"
    metrics_of = "classification"
    searches_slices = True
    label_segments = True

    def default_output(self, state: TaskState, outputs: Outputs, *, model: str) -> str | None:
        """The class scores when the first output is predicted labels and a score output exists.

        Converters such as skl2onnx put the predicted label first and the probabilities second;
        comparing the labels would silently skip every score metric (KL, calibration).
        """
        names = list(outputs)
        if len(names) < 2 or not is_label_output(np.asarray(outputs[names[0]])):
            return None
        for name in names[1:]:
            value = np.asarray(outputs[name])
            if value.dtype.kind == "f" and value.ndim == 2 and value.shape[1] >= 2:
                state.notes.append(
                    f"Model {model!r}: compared its output {name!r} (class scores) rather than "
                    f"its first output {names[0]!r} (predicted labels), so that score metrics "
                    "(KL divergence, calibration) are computed. To compare the labels instead, "
                    f"set output: {names[0]} in the model's spec entry."
                )
                return name
        return None

    def output_kind(self, state: TaskState, raw: Array, *, model: str) -> OutputKind:
        """The spec's ``task.outputs``, or the kind detected from ``raw``."""
        check_rank(raw, model=model)
        forced = state.spec.task.outputs
        if forced != "auto":
            return cast(OutputKind, forced)
        kind = detect_kind(raw, model=model)
        if kind == "probabilities" and _width(raw) > 1:
            rows = raw.reshape(raw.shape[0], -1)
            gap = probability_gap(rows[np.isfinite(rows).all(axis=1)])
            if gap is not None and gap[1] is not None:
                state.notes.append(
                    f"Model {model!r}: its score rows sum to 1 only within {gap[0]:.4f} (not "
                    f"1e-3), with every value a whole multiple of {gap[1]:.6g}: taken as "
                    "quantized probabilities (e.g. an 8-bit softmax output), used as they are. "
                    "Set task.outputs in the spec if they are something else."
                )
        if kind != "labels" and _width(raw) == 1:
            state.put_note(f"binary:{model}", _binary_note(model, kind, None))
        return kind

    def observe(
        self,
        state: TaskState,
        classes: Sequence[object] | None,
        raw: Array,
        kind: OutputKind,
        *,
        model: str,
    ) -> None:
        """Fix the class index space from the first model that outputs class scores.

        A later scoring model that names the same classes in another order has its columns
        permuted into the first one's order; one that names other classes is refused.
        """
        if kind not in ("probabilities", "logits"):
            return
        self._fix_classes(state, classes, raw, model=model)
        if _width(raw) == 1 and f"binary:{model}" in state.keyed_notes and len(state.classes) == 2:
            # Now that the classes are known, say which one the column scores.
            positive = echo(_py(state.classes.names[1]))
            state.put_note(f"binary:{model}", _binary_note(model, kind, positive))

    def _fix_classes(
        self, state: TaskState, classes: Sequence[object] | None, raw: Array, *, model: str
    ) -> None:
        k = max(_width(raw), 2)  # one column of binary scores becomes two
        named = _named(classes, k)
        if state.dynamic_classes:
            state.classes = ClassTable(named if named is not None else list(range(k)))
            state.dynamic_classes = False
            state.n_scores = k
            state.classes_from = model if named is not None else None
            return
        if (
            named is None
            and state.classes_from is not None
            and k == len(state.classes)
            and _width(raw) > 1  # one column of binary scores has its own note
        ):
            # The columns can only be taken by position: say so, since a model whose columns
            # come in another order would have every score metric silently wrong.
            shown = ", ".join(echo(_py(c)) for c in state.classes.names[:6])
            more = ", ..." if len(state.classes) > 6 else ""
            state.notes.append(
                f"Model {model!r} does not name the classes of its {k} score columns: they are "
                f"taken in the order of model {state.classes_from!r}'s classes ({shown}{more}). "
                "If its columns come in another order, export it with its class labels or "
                "reorder its outputs."
            )
            return
        if named is None or state.classes_from is None or len(named) != len(state.classes):
            return
        if named == state.classes.names:
            return
        # Matched by value, as labels are: 1, 1.0 and True name one class.
        position = {c: j for j, c in enumerate(named)}
        order = [position.get(c) for c in state.classes.names]
        if len(position) != len(named) or any(j is None for j in order):
            raise DataError(
                f"Model {model!r} scores the classes {named[:12]!r} but model "
                f"{state.classes_from!r} scores {state.classes.names[:12]!r}; expected the "
                "same classes. Compare models trained on the same class values."
            )
        state.column_orders[model] = np.array(order, dtype=np.int64)

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
        column = state.spec.primary_data.labels
        if labels is not None and None not in state.label_kinds:
            found = value_kind(labels)
            if found is not None:
                state.label_kinds[None] = found
        if kind == "labels":
            check_label_kinds(state.label_kinds, model, reference, against=None, column=column)
        codes = None
        if labels is not None:
            codes = label_codes(
                labels,
                state.classes,
                dynamic=state.dynamic_classes,
                n_scores=state.n_scores,
                column=column,
            )
        prepared = _prepare(
            reference,
            kind,
            state.classes,
            dynamic=state.dynamic_classes,
            model=model,
            order=state.column_orders.get(model),
        )
        if state.dynamic_classes:
            if codes is not None:
                _learn(state, None, codes)
            if kind == "labels":
                _check_vocabulary(state, model, prepared.pred, against=None)
        return ChunkContext(
            labels=codes,
            label_classes=codes,
            reference=prepared,
            raw_labels=labels,
            reference_model=model,
        )

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
        if kind == "labels":
            against = None if chunk.raw_labels is not None else chunk.reference_model
            check_label_kinds(
                state.label_kinds,
                model,
                raw,
                against=against,
                column=state.spec.primary_data.labels,
            )
        cand = _prepare(
            raw,
            kind,
            state.classes,
            dynamic=state.dynamic_classes,
            model=model,
            order=state.column_orders.get(model),
        )
        if state.dynamic_classes and kind == "labels":
            against = None if chunk.raw_labels is not None else chunk.reference_model
            _check_vocabulary(state, model, cand.pred, against=against)
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
            if finite.all():
                kl = kl_divergence_rows(ref.prob, cand.prob)
            else:
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


def _binary_note(model: str, kind: OutputKind, positive: str | None) -> str:
    what = "probability" if kind == "probabilities" else "logit"
    where = "in [0, 1]" if kind == "probabilities" else "not all in [0, 1]"
    of = "the positive class" if positive is None else f"the positive class, {positive},"
    return (
        f"Model {model!r}: its output is one column of scores {where}, taken as the {what} of "
        f"{of} of a binary classifier (scores [1 - p, p] for two classes). Set task.outputs in "
        "the spec if it is something else."
    )


def _learn(state: TaskState, key: str | None, codes: Array) -> set[int]:
    """Add the class indices in ``codes`` (-1: none) to what ``key`` was seen to hold."""
    seen = state.vocabulary.setdefault(key, set())
    seen.update(int(c) for c in np.unique(codes) if c >= 0)
    return seen


def _check_vocabulary(
    state: TaskState, model: str, predicted: Array, *, against: str | None
) -> None:
    """Refuse predicted labels that share no value with the labels; note a partial overlap.

    Labels of the same kind (text and text) can still never match: a model trained on
    ``{"cat", "dog"}`` scored on labels ``{"no", "yes"}`` is wrong on every row, and so is its
    reference, so the gate would pass at accuracy 0. Values are compared as they accumulate,
    chunk by chunk: no value in common while the other side holds two or more values is an
    error (one label value alone could be a model that is simply always wrong); a partial
    overlap is a note, kept up to date, naming the values on each side that match nothing.
    ``against`` is None for the data's labels, else the reference model (no labels).

    Raises:
        DataError: Names the label column (or the reference), examples from both sides and
            the fix.
    """
    mine = _learn(state, model, predicted)
    other = state.vocabulary.get(against)
    if not mine or not other:
        return
    column = state.spec.primary_data.labels
    where = f"column {column!r} (data.labels)" if column else "the data"
    if not mine & other:
        if len(other) < 2:
            return
        if against is None:
            side = f"The labels in {where}"
            fix = (
                "Map the labels to the model's class values (or the reverse), train or export "
                "the model on the same class values, or point data.labels at the label column."
            )
        else:
            side = f"The labels model {against!r} predicts"
            fix = "Export both models with the same class values."
        raise DataError(
            f"{side} share no value with the labels model {model!r} predicts: they are "
            f"{_values(state, other)} but the model predicts {_values(state, mine)}, so every "
            f"row would count as wrong. {fix}"
        )
    if against is not None:
        return
    old = state.vocabulary_notes.pop(model, None)
    extra, missed = mine - other, other - mine
    note = None
    if extra:
        note = (
            f"Model {model!r} predicts label value(s) that no label in {where} has: "
            f"{_values(state, extra)}; rows where it predicts them count as wrong"
            + (f", and it never predicts {_values(state, missed)}" if missed else "")
            + ". Check that the model and the data use the same class values."
        )
    elif missed:
        note = (
            f"Model {model!r} never predicts the label value(s) {_values(state, missed)} that "
            f"{where} holds (it predicts {_values(state, mine)}): if it was trained without "
            "them, every row of those labels counts as wrong."
        )
    if old is not None and old in state.notes:
        if note is None:
            state.notes.remove(old)
        else:
            state.notes[state.notes.index(old)] = note
    elif note is not None:
        state.notes.append(note)
    if note is not None:
        state.vocabulary_notes[model] = note


def _values(state: TaskState, codes: set[int], shown: int = 5) -> str:
    """Up to ``shown`` class values of ``codes``, in class order, then how many more."""
    ordered = sorted(codes)
    text = ", ".join(echo(_py(state.classes.names[c])) for c in ordered[:shown])
    more = len(ordered) - shown
    return text + (f" (and {more} more)" if more > 0 else "")


def _py(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _width(raw: Array) -> int:
    return int(np.prod(raw.shape[1:], dtype=np.int64)) if raw.ndim > 1 else 1


def _named(classes: Sequence[object] | None, k: int) -> list[object] | None:
    """The adapter's class labels as Python values, when there is one per score column."""
    if classes is None or len(classes) != k:
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in classes]
