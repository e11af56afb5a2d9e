"""Turning raw model outputs into what the accumulators consume.

Classification outputs are detected per model on the first batch, unless the spec says
``task.outputs``: integer arrays (or one column) are *labels*; float rows that are
non-negative and sum to 1 (within 1e-3) are *probabilities*; any other float rows are
*logits*, turned into probabilities with a softmax. The detected kind is recorded in the
report, and a later batch that contradicts it is an error (a model does not change kind).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from compval.errors import AdapterError, DataError
from compval.metrics import ClassTable, SegmentTable
from compval.types import Array, Outputs

__all__ = [
    "OutputKind",
    "PreparedOutput",
    "as_rows",
    "detect_kind",
    "prepare_classification",
    "segment_ids",
    "select_output",
    "softmax",
]

OutputKind = Literal["labels", "probabilities", "logits", "values"]


def select_output(outputs: Outputs, wanted: str | None, model: str) -> Array:
    """The compared output: ``wanted`` by name, else the model's first output."""
    if not outputs:
        raise AdapterError(f"Model {model!r} returned no outputs.")
    if wanted is None:
        return np.asarray(next(iter(outputs.values())))
    if wanted not in outputs:
        raise AdapterError(
            f"Model {model!r}: output {wanted!r} not found; the model's outputs are "
            f"{list(outputs)}. Set 'output' in the model's spec entry to one of them."
        )
    return np.asarray(outputs[wanted])


def as_rows(values: Array, n: int, model: str) -> Array:
    """Reshape an output to (rows, values per row), checking the row count."""
    if values.ndim == 0 or values.shape[0] != n:
        raise AdapterError(
            f"Model {model!r} returned {values.shape[0] if values.ndim else 'a scalar'} "
            f"rows for a batch of {n}; expected one output row per input row (batch on axis 0)."
        )
    return values.reshape(n, -1)


def detect_kind(values: Array) -> OutputKind:
    """Labels, probabilities or logits, from one batch of classification outputs."""
    if values.dtype.kind in "iub" or values.dtype.kind in "OUS":
        return "labels"
    rows = values.reshape(values.shape[0], -1)
    if rows.shape[1] == 1:
        return "labels"
    finite = rows[np.isfinite(rows).all(axis=1)]
    if finite.size and (finite >= -1e-6).all() and np.allclose(finite.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities"
    return "logits"


def softmax(logits: Array) -> Array:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True, slots=True)
class PreparedOutput:
    """One model's classification output for one batch."""

    kind: OutputKind
    pred: Array  # int64 class index; -1 where the output was NaN/Inf or an unknown label
    prob: Array | None  # float64 (rows, classes) when the output carries scores
    finite: Array  # bool (rows,)


def prepare_classification(
    raw: Array, kind: OutputKind, classes: ClassTable, *, dynamic: bool, model: str
) -> PreparedOutput:
    """Predicted class indices (and probabilities) from a model's raw output."""
    n = raw.shape[0]
    if kind == "labels":
        flat = raw.reshape(n, -1)
        if flat.shape[1] != 1:
            raise AdapterError(
                f"Model {model!r}: outputs were taken as labels but have {flat.shape[1]} values "
                "per row. Set task.outputs to 'logits' or 'probabilities'."
            )
        values = flat[:, 0]
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            values = np.where(finite, values, 0).astype(np.int64)
        else:
            finite = np.ones(n, dtype=bool)
        pred = classes.codes_for(values) if dynamic else classes.lookup(values)
        return PreparedOutput(kind, np.where(finite, pred, -1), None, finite)
    scores = raw.reshape(n, -1).astype(np.float64, copy=False)
    finite = np.asarray(np.isfinite(scores).all(axis=1))
    safe = np.where(finite[:, None], scores, 0.0)
    prob = softmax(safe) if kind == "logits" else safe
    pred = np.where(finite, prob.argmax(axis=1), -1).astype(np.int64)
    return PreparedOutput(kind, pred, prob, finite)


def label_codes(
    labels: Array, classes: ClassTable, *, dynamic: bool, n_scores: int | None
) -> Array:
    """Class index of each label; unknown labels are a DataError when classes are fixed."""
    if dynamic:
        return classes.codes_for(labels)
    codes = classes.lookup(labels)
    if (codes < 0).any():
        bad = np.unique(labels[codes < 0])[:5]
        known = ", ".join(classes.display(i) for i in range(min(len(classes), 12)))
        raise DataError(
            f"Labels: value(s) {', '.join(repr(_py(b)) for b in bad)} are not among the "
            f"model's {n_scores} output classes ({known}{' ...' if len(classes) > 12 else ''}); "
            "expected label values matching the output columns (0..K-1, or the estimator's "
            "classes_). Check data.labels and the models' class order."
        )
    return codes


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def segment_ids(
    table: SegmentTable,
    *,
    n: int,
    labels: Array | None,
    classes: ClassTable | None,
    segments: Mapping[str, Array],
    columns: Sequence[str],
) -> Array:
    """(groupings, rows) segment ids: overall, then ``label=<class>``, then each column.

    ``labels`` are class indices into ``classes`` (classification only).
    """
    groups = [np.zeros(n, dtype=np.int64)]
    if labels is not None and classes is not None:
        # Unique over the int codes, not over the class values (which may be Python objects).
        uniques, inverse = np.unique(labels, return_inverse=True)
        lut = np.array(
            [table.add(f"label={classes.display(int(u))}") for u in uniques], dtype=np.int64
        )
        groups.append(lut[inverse.reshape(-1)])
    for column in columns:
        groups.append(table.ids_for(column, np.asarray(segments[column])))
    return np.stack(groups)
