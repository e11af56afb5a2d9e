"""Turning raw model outputs into what the accumulators consume.

Classification outputs are detected per model on the first chunk, unless the spec says
``task.outputs``:

* integer, boolean or text arrays are *labels* (class values, matched to the data's labels
  by value);
* float rows of two or more columns that are non-negative and sum to 1 (within 1e-3) are
  *probabilities*, and so are quantized ones (values on one grid, summing to 1 within a few
  grid steps: ``probability_gap``); any other float rows are *logits*, turned into
  probabilities with a softmax;
* one float column is a binary classifier's score for the positive class: a *probability* when
  every value is in [0, 1], else a *logit*; either becomes two columns ``[1 - p, p]`` so that
  every score metric (KL, calibration) works as for any other classifier. One float column of
  whole numbers only (0., 1., 2.) could as well be labels: detection refuses to guess.

The detected kind is recorded in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from compval.errors import AdapterError, DataError
from compval.metrics import ClassTable, SegmentTable
from compval.stats import row_all_finite, unique_inverse
from compval.types import Array, Outputs

__all__ = [
    "OutputKind",
    "PreparedOutput",
    "as_rows",
    "check_label_kinds",
    "check_rank",
    "detect_kind",
    "detect_scores",
    "is_label_output",
    "label_codes",
    "label_values",
    "prepare_classification",
    "segment_ids",
    "select_output",
    "softmax",
    "value_kind",
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


def check_rank(values: Array, *, model: str) -> None:
    """Refuse a classification output with more than one value axis per row.

    An output of shape (rows, seq, vocab) holds one distribution per position: flattening it
    and taking a softmax over seq x vocab would compare nonsense. Extra axes of size 1 (e.g.
    (rows, 1, classes)) are harmless and pass.

    Raises:
        AdapterError: Two or more axes after the batch axis have more than one value.
    """
    if values.ndim > 2 and sum(d > 1 for d in values.shape[1:]) > 1:
        raise AdapterError(
            f"Model {model!r}: its compared output has shape {tuple(values.shape)}, i.e. "
            f"{values.ndim - 1} value axes per row; expected one row of class scores (rows, "
            "classes) or one label per row for task 'classification'. A sequence output "
            "(rows, positions, vocabulary) is not supported yet: set 'output' to a per-row "
            "output, reduce it in the model (e.g. the last position), or compare it with "
            "task: generic."
        )


def detect_kind(values: Array, *, model: str = "model") -> OutputKind:
    """Labels, probabilities or logits, from one chunk of classification outputs.

    Raises:
        AdapterError: One float column of whole numbers only: labels or binary scores alike.
    """
    return detect_scores(values, model=model)[0]


def detect_scores(
    values: Array, *, model: str = "model"
) -> tuple[OutputKind, tuple[float, float | None] | None]:
    """``detect_kind``, with the ``probability_gap`` of rows taken as probabilities.

    The gap is None for every other kind and for one column of binary scores.

    Raises:
        AdapterError: One float column of whole numbers only: labels or binary scores alike.
    """
    if values.dtype.kind in "iubOUS":
        return "labels", None
    rows = values.reshape(values.shape[0], -1)
    finite = rows[np.isfinite(rows).all(axis=1)]
    if rows.shape[1] == 1:
        return _one_column_kind(finite[:, 0], model), None
    gap = probability_gap(finite)
    return ("probabilities" if gap is not None else "logits"), gap


#: Rows of scores are probabilities when they are non-negative and sum to 1 within this.
_SIMPLEX_ATOL = 1e-3
#: The widest gap accepted for a quantized softmax (see ``probability_gap``).
_QUANTIZED_SIMPLEX_MAX_GAP = 0.05


def probability_gap(rows: Array) -> tuple[float, float | None] | None:
    """Whether finite score rows (2+ columns) read as probabilities, and how far from exact.

    Returns None for rows that are not probabilities, else ``(gap, step)``: the largest
    |row sum - 1| and, when the rows are only probabilities within a quantization grid, that
    grid's step (None when they sum to 1 within 1e-3). A quantized softmax (onnxruntime's
    ``quantize_static``, 8-bit QDQ output) outputs whole multiples of a step such as 1/255,
    each rounded or clipped: its rows missed 1 by up to two steps (0.0078 with 3 classes),
    which would have made them "logits" and put a softmax on top of probabilities. So rows
    whose values all lie on one grid of step s, in [0, 1], may miss 1 by up to k * s for k
    columns (capped at 0.05).
    """
    if not rows.size or (rows < -1e-6).any():
        return None
    gap = float(np.max(np.abs(rows.sum(axis=1) - 1.0)))
    if gap <= _SIMPLEX_ATOL:
        return gap, None
    if (rows > 1 + 1e-6).any():
        return None
    step = _grid_step(rows)
    if step is None or gap > min(rows.shape[1] * step, _QUANTIZED_SIMPLEX_MAX_GAP):
        return None
    return gap, step


def _grid_step(values: Array) -> float | None:
    """The step s when every value is a whole multiple of s (dequantized 8/16-bit), else None."""
    unique = np.unique(values)
    if unique.size < 2 or unique.size > 1 << 16:
        return None
    step = float(np.min(np.diff(unique)))
    if step <= 0:
        return None
    multiples = unique / step
    return step if np.allclose(multiples, np.round(multiples), rtol=0, atol=1e-3) else None


def _one_column_kind(finite: Array, model: str) -> OutputKind:
    if finite.size and np.array_equal(finite, np.round(finite)):
        examples = ", ".join(repr(float(v)) for v in np.unique(finite)[:3])
        raise AdapterError(
            f"Model {model!r}: its output is one float column of whole numbers only (e.g. "
            f"{examples}); expected either class labels or one score per row of a binary "
            "classifier, and these values could be both. Set task.outputs in the spec: "
            "'labels' for class values, 'probabilities' for the positive-class probability, "
            "'logits' for a binary logit."
        )
    if finite.size and (finite >= -1e-6).all() and (finite <= 1 + 1e-6).all():
        return "probabilities"
    # Values outside [0, 1] (or none finite, where nothing better can be said): a logit.
    return "logits"


def is_label_output(values: Array) -> bool:
    """Whether an output looks like one predicted label per row (integers, booleans, text)."""
    return values.dtype.kind in "iubOUS" and (
        values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
    )


def softmax(logits: Array) -> Array:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


def _sigmoid(x: Array) -> Array:
    # tanh form: no overflow for large |x|, and sigmoid(-x) stays exact where 1 - sigmoid(x)
    # would round to 0.
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


@dataclass(frozen=True, slots=True)
class PreparedOutput:
    """One model's classification output for one batch."""

    kind: OutputKind
    pred: Array  # int64 class index; -1 where the output was NaN/Inf or an unknown label
    prob: Array | None  # float64 (rows, classes) when the output carries scores
    finite: Array  # bool (rows,)


def prepare_classification(
    raw: Array,
    kind: OutputKind,
    classes: ClassTable,
    *,
    dynamic: bool,
    model: str,
    order: Array | None = None,
) -> PreparedOutput:
    """Predicted class indices (and probabilities) from a model's raw output.

    ``order`` permutes the score columns into the order of ``classes``.

    Raises:
        AdapterError: The output does not fit its kind (several values per row taken as
            labels, fractional labels, a one-column probability outside [0, 1]).
        DataError: A predicted label is not among the classes of a model that outputs scores.
    """
    n = raw.shape[0]
    if kind == "labels":
        return _prepare_labels(raw, classes, dynamic=dynamic, model=model)
    scores = raw.reshape(n, -1).astype(np.float64, copy=False)
    finite = row_all_finite(scores)
    safe = scores if finite.all() else np.where(finite[:, None], scores, 0.0)
    if safe.shape[1] == 1:
        prob = _binary(safe[:, 0], kind, model)
    else:
        prob = softmax(safe) if kind == "logits" else safe
    if order is not None:
        prob = prob[:, order]
    pred = np.where(finite, prob.argmax(axis=1), -1).astype(np.int64)
    return PreparedOutput(kind, pred, prob, finite)


def _binary(column: Array, kind: OutputKind, model: str) -> Array:
    """Two columns ``[P(class 0), P(class 1)]`` from one column of binary scores."""
    if kind == "logits":
        return np.column_stack([_sigmoid(-column), _sigmoid(column)])
    outside = (column < -1e-3) | (column > 1 + 1e-3)
    if outside.any():
        raise AdapterError(
            f"Model {model!r}: its one output column is taken as probabilities but holds "
            f"value(s) outside [0, 1], e.g. {float(column[outside][0])!r}; expected the "
            "positive-class probability of a binary classifier. Set task.outputs: logits if "
            "the column is a logit."
        )
    p = np.clip(column, 0.0, 1.0)
    return np.column_stack([1.0 - p, p])


def _prepare_labels(
    raw: Array, classes: ClassTable, *, dynamic: bool, model: str
) -> PreparedOutput:
    n = raw.shape[0]
    flat = raw.reshape(n, -1)
    if flat.shape[1] != 1:
        raise AdapterError(
            f"Model {model!r}: outputs were taken as labels but have {flat.shape[1]} values "
            "per row. Set task.outputs to 'logits' or 'probabilities'."
        )
    values = label_values(flat[:, 0])
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        whole = values[finite]
        if not np.array_equal(whole, np.round(whole)):
            example = float(whole[whole != np.round(whole)][0])
            raise AdapterError(
                f"Model {model!r}: its outputs are taken as labels (task.outputs) but hold "
                f"fractional values, e.g. {example!r}; expected class values. Set "
                "task.outputs to 'probabilities' or 'logits' if they are scores."
            )
        values = np.where(finite, values, 0).astype(np.int64)
    else:
        finite = np.ones(n, dtype=bool)
    pred = classes.codes_for(values) if dynamic else classes.lookup(values)
    unknown = finite & (pred < 0)
    if unknown.any():
        # Fixed classes come from a model that outputs scores; a label model predicting
        # anything else would be counted wrong on every such row, silently.
        bad = ", ".join(repr(_py(v)) for v in np.unique(values[unknown])[:5])
        raise DataError(
            f"Model {model!r}: predicted label(s) {bad} are not among the classes of the "
            f"models that output scores ({_class_list(classes)}); expected the same class "
            "values. Export both models with the same classes, or compare scores with "
            "scores (set 'output' or task.outputs)."
        )
    return PreparedOutput("labels", np.where(finite, pred, -1), None, finite)


def label_values(values: Array) -> Array:
    """Labels as compared by value: bytes become text (b"cat" and "cat" are one class)."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8", "replace").astype(object)
    return values


def value_kind(values: Array) -> tuple[str, list[object]] | None:
    """``("text" | "whole numbers" | "fractional numbers", examples)``; None when unknown.

    Booleans are whole numbers (True == 1 as a class value). Missing values (None, NaN) are
    ignored; None is returned when nothing else is left or the kinds are mixed.
    """
    flat = values.reshape(-1)
    if flat.dtype.kind in "US":
        return "text", [_py(v) for v in np.unique(label_values(flat))[:3]]
    if flat.dtype.kind == "O":
        present = [v for v in flat[:100_000].tolist() if v is not None and v == v]
        if present and all(isinstance(v, str | bytes) for v in present):
            text = {v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in present}
            return "text", list(sorted(text)[:3])
        try:
            flat = np.asarray(present, dtype=np.float64)
        except (TypeError, ValueError):
            return None
    if flat.dtype.kind in "iub":
        return "whole numbers", [_py(v) for v in np.unique(flat)[:3]]
    finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if finite.size == 0:
        return None
    fractional = finite[finite != np.round(finite)]
    if fractional.size:
        return "fractional numbers", [float(v) for v in np.unique(fractional)[:3]]
    return "whole numbers", [_display_number(v) for v in np.unique(finite)[:3]]


def _display_number(value: Any) -> object:
    number = float(value)
    return int(number) if number.is_integer() else number


def check_label_kinds(
    kinds: dict[str | None, tuple[str, list[object]]],
    key: str | None,
    values: Array,
    *,
    against: str | None,
    column: str | None,
) -> None:
    """Record the kind of ``values`` under ``key`` once, and refuse it if it cannot match.

    Keys are model names, and None for the data's labels. ``against`` is the key of what these
    values are matched with by value: the labels, or the reference model's predicted labels
    when the data has none. A model that predicts integers can never be right on text labels,
    nor on fractional ones: every row would count as wrong for both models, and a candidate
    would pass with accuracy 0.

    Raises:
        DataError: The two sides hold different kinds of values.
    """
    if key in kinds:
        return
    found = value_kind(values)
    if found is None:
        return
    kinds[key] = found
    other = kinds.get(against)
    if other is None or other[0] == found[0]:
        return
    where = f"column {column!r} (data.labels)" if column else "the data"
    if against is None:
        side = f"The labels in {where}"
        fix = (
            "Map the labels to the model's classes (e.g. the class indices 0..K-1 in the "
            "model's class order), train or export the model on the same class values, or "
            "point data.labels at the label column."
        )
    else:
        side = f"The labels model {against!r} predicts"
        fix = "Export both models with the same class values."
    raise DataError(
        f"{side} can never match the labels model {key!r} predicts: they are "
        f"{other[0]} (e.g. {_examples(other[1])}) but the model predicts {found[0]} (e.g. "
        f"{_examples(found[1])}). {fix}"
    )


def _examples(values: list[object]) -> str:
    return ", ".join(repr(v) for v in values)


def _class_list(classes: ClassTable) -> str:
    shown = ", ".join(repr(_py(v)) for v in classes.names[:12])
    return shown + (" ..." if len(classes) > 12 else "")


def label_codes(
    labels: Array,
    classes: ClassTable,
    *,
    dynamic: bool,
    n_scores: int | None,
    column: str | None = None,
) -> Array:
    """Class index of each label; unknown labels are a DataError when classes are fixed."""
    labels = label_values(labels)
    if dynamic:
        return classes.codes_for(labels)
    codes = classes.lookup(labels)
    if (codes < 0).any():
        bad = np.unique(labels[codes < 0])[:5]
        where = f"Labels in column {column!r} (data.labels)" if column else "Labels"
        # Fractional labels are regression targets far more often than class values.
        fractional = labels.dtype.kind == "f" and bool(
            np.any(np.isfinite(labels) & (labels != np.round(labels)))
        )
        hint = (
            " The labels hold fractional numbers: if the models are regressors, set task: "
            "regression (--task regression)."
            if fractional
            else ""
        )
        raise DataError(
            f"{where}: value(s) {', '.join(repr(_py(b)) for b in bad)} are not among the "
            f"model's {n_scores} output classes ({_class_list(classes)}); expected label "
            "values matching the output columns (0..K-1, or the classes the model reports, "
            "such as an estimator's classes_, an ONNX ZipMap's keys or the class labels in an "
            "ONNX classifier's graph). Map the labels to the model's classes, or check "
            f"data.labels and the models' class order.{hint}"
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

    Raises:
        DataError: A segment column has more distinct values than ``table.max_values``
            (``data.max_segment_values``): files are checked when opened, in-memory data here.
    """
    groups = [np.zeros(n, dtype=np.int64)]
    if labels is not None and classes is not None:
        # Unique over the int codes, not over the class values (which may be Python objects).
        uniques, inverse = unique_inverse(labels)
        lut = np.array(
            [table.add(f"label={classes.display(int(u))}") for u in uniques], dtype=np.int64
        )
        groups.append(lut[inverse.reshape(-1)])
    for column in columns:
        groups.append(table.ids_for(column, np.asarray(segments[column])))
        if table.max_values is not None and table.values_of(column) > table.max_values:
            limit = table.max_values
            # The same words as the check files get when they are opened (compval.data).
            raise DataError(
                f"Data: segment column {column!r} has more than {limit:,} distinct values; got "
                f"{table.values_of(column):,} in the rows read so far (counting stopped "
                f"there), expected at most {limit:,} (data.max_segment_values). Each value "
                "becomes a segment with its own metrics and checks, so an id-like column "
                "would bloat the report and exhaust memory. Group the values into a coarser "
                "column, drop the column from the segments, or raise data.max_segment_values."
            )
    return np.stack(groups)
