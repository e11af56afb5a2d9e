"""The ModelAdapter contract: one small class per runtime.

Lifecycle: ``open()`` (idempotent) -> ``predict()`` any number of times -> ``close()``.
Adapters are context managers. Public methods validate; subclasses implement the underscored
hooks ``_open``, ``_predict``, ``_input_spec``, ``_info`` and optionally ``_close``. Foreign
exceptions are translated into compval errors once, here at the adapter boundary.

Optional hooks (defaults suit any adapter) tell the rest of compval what only the runtime
knows, so nothing outside ``compval.adapters`` inspects a runtime's objects:

* ``classes``: the label of each score column (scikit-learn's ``classes_``);
* ``model_format`` and ``model_file``: what the profiler may read from disk (the ONNX graph,
  a file to load in a child process for peak memory);
* ``parameter_stats()``: parameter count and weight sparsity of an in-memory model;
* ``load_time_s``, ``time_reload(threads)``: how long loading takes;
* ``execution_providers()``: the runtime's active execution providers;
* ``timed_call(inputs)``: the cheapest call that runs one batch, for latency timing;
* ``with_threads(threads)``: the same model opened with another intra-op thread count;
* ``run_notes()``: what the run should say about the model in ``run.notes`` (a provider
  fallback, quantized inputs, retried requests), asked after the paired run;
* ``inactive_devices()``: requested devices or providers that are not active, so that
  performance budgets are never checked on another device than the one asked for;
* ``max_concurrent_batches``: how many batches the paired run may have in flight on this model
  at once (a served model answers several requests at a time; local runtimes: one).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from typing_extensions import Self

from compval.errors import AdapterError, InferenceError, InputMismatchError
from compval.types import Array, Outputs, TensorSpec

T = TypeVar("T")

__all__ = ["AdapterInfo", "ModelAdapter", "RuntimeOperators", "bind_inputs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeOperators:
    """What a runtime says of a loaded model's operators (``ModelAdapter.runtime_operators``).

    Attributes:
        runtime: The runtime and its version, e.g. ``ai-edge-litert 2.3.0``.
        nodes: ``(node label, operator name)`` per operator of the model, in graph order.
        unsupported: The labels of the nodes the stock runtime of the deployment target
            cannot run (e.g. TF Select or custom operators), each with why.
        basis: What the decision rests on, in words.
    """

    runtime: str
    nodes: tuple[tuple[str, str], ...]
    unsupported: tuple[tuple[str, str], ...]
    basis: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterInfo:
    """What the report records about a loaded model."""

    runtime: str
    runtime_version: str
    device: str = "cpu"
    model_id: str
    path: str | None = None
    size_bytes: int | None = None


class ModelAdapter(abc.ABC):
    """Runs one model on batches of named numpy arrays.

    Subclasses implement ``_open`` (load the model), ``_input_spec`` (declared inputs),
    ``_predict`` (run one batch; inputs already checked), ``_info`` and optionally ``_close``.
    ``predict`` returns a mapping of output name to an array whose axis 0 is the batch.
    """

    runtime: str = "python"
    #: Where the model came from when its path was a URI (``models:/clf/3``): the URI, the
    #: registry's name, version and run, the storage location. ``report.json`` records it
    #: under the model; None for a plain file or object.
    source: Mapping[str, str] | None = None

    def __init__(self, *, name: str) -> None:
        self.name = name
        self._is_open = False

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` has been called and ``close()`` has not."""
        return self._is_open

    def open(self) -> None:
        """Load the model. Calling it again on an open adapter does nothing."""
        if self._is_open:
            return
        self._open()
        self._is_open = True

    def close(self) -> None:
        """Release the model. Safe to call more than once."""
        if self._is_open:
            self._close()
            self._is_open = False

    # -- queries -------------------------------------------------------------------------
    def input_spec(self) -> Mapping[str, TensorSpec]:
        """The model's declared inputs, by name (opens the adapter if needed)."""
        self.open()
        return self._input_spec()

    def info(self) -> AdapterInfo:
        """Runtime, version, device and model identity (opens the adapter if needed)."""
        self.open()
        return self._info()

    # -- inference -----------------------------------------------------------------------
    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str] | None = None) -> Outputs:
        """Run one batch: check ``inputs`` against ``input_spec()``, then call ``_predict``.

        Args:
            inputs: The batch, by input name.
            outputs: The output names the caller uses (None: all). The result holds at least
                these; a runtime that can compute fewer outputs does (``_predict_outputs``).

        Raises:
            AdapterError: The adapter is not open.
            InputMismatchError: An input's name, dtype or shape does not match the model.
            InferenceError: The runtime failed on this batch.
        """
        if outputs is None:
            return self._checked(inputs, self._predict)
        names = tuple(outputs)
        return self._checked(inputs, lambda feed: self._predict_outputs(feed, names))

    def predict_on_device(self, inputs: Mapping[str, Array]) -> Mapping[str, Any]:
        """Like ``predict``, but the outputs may stay where the model computed them.

        For a task that reduces outputs on the device (``Task.device_outputs``: the causal LM
        task turns (rows, seq, vocab) logits into per-token values there). The torch adapter
        on a GPU returns its output tensors on the device; every other adapter (and torch on
        the CPU) returns what ``predict`` returns.

        Raises:
            The same errors as ``predict``.
        """
        return self._checked(inputs, self._predict_on_device)

    def _checked(self, inputs: Mapping[str, Array], run: Callable[[Mapping[str, Array]], T]) -> T:
        if not self._is_open:
            raise AdapterError(f"Model {self.name!r}: predict() called before open().")
        check_inputs(self.name, inputs, self._input_spec())
        try:
            return run(inputs)
        except AdapterError:
            raise
        except Exception as exc:  # foreign runtime errors become compval errors here, once
            raise InferenceError(
                f"Model {self.name!r}: the runtime failed on a batch: {type(exc).__name__}: {exc}"
            ) from exc

    def _predict_outputs(self, inputs: Mapping[str, Array], names: Sequence[str]) -> Outputs:
        """Run one batch for the outputs ``names`` (optional hook).

        The default computes every output (``_predict``); a runtime that can skip the graph
        nodes only other outputs need (ONNX Runtime) overrides it.
        """
        return self._predict(inputs)

    def _predict_on_device(self, inputs: Mapping[str, Array]) -> Mapping[str, Any]:
        """Run one batch, leaving outputs on the device when the runtime has one (optional)."""
        return self._predict(inputs)

    # -- hooks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None:
        """Load the model."""

    @abc.abstractmethod
    def _input_spec(self) -> Mapping[str, TensorSpec]:
        """Return the declared inputs; called only while open."""

    @abc.abstractmethod
    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        """Run one batch of checked inputs."""

    @abc.abstractmethod
    def _info(self) -> AdapterInfo:
        """Describe the loaded model."""

    def _close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources; default does nothing."""

    # -- optional hooks ------------------------------------------------------------------
    @property
    def classes(self) -> Sequence[object] | None:
        """The class label of each score column, when the model says (default: unknown)."""
        return None

    @property
    def model_format(self) -> str:
        """``onnx``, ``torchscript``, ``torch_export``, ``torch`` or ``other`` (default)."""
        return "other"

    @property
    def model_file(self) -> Path | None:
        """The model file on disk, or None for an in-memory model (default)."""
        return None

    def runtime_operators(self) -> RuntimeOperators | None:
        """The operators the loaded runtime resolved for a non-ONNX model (optional hook).

        For a deployment target's operator check on formats whose graph compval does not
        read itself (LiteRT). None (default): unknown, the check is not made.
        """
        return None

    @property
    def load_time_s(self) -> float | None:
        """Seconds ``open()`` took, for adapters that time it themselves (default: None)."""
        return None

    def parameter_stats(self) -> tuple[int, float | None] | None:
        """``(parameter count, share of exact zeros in weight matrices)`` of an in-memory model.

        Default None: unknown (file formats such as ONNX are read by the profiler instead).
        """
        return None

    def time_reload(self, *, threads: int | None) -> float | None:
        """Load the model once more from its file and return the milliseconds it took.

        Default None: the adapter cannot reload itself.
        """
        return None

    def execution_providers(self) -> tuple[str, ...] | None:
        """The runtime's active execution providers (ONNX Runtime); default None."""
        return None

    def timed_call(self, inputs: Mapping[str, Array]) -> Callable[[], object]:
        """A zero-argument callable that runs one batch, for latency timing.

        Runs ``predict(inputs)`` once first, so bad inputs and a failing model surface here
        with compval's messages. The default then times ``predict``; runtimes override it to
        skip compval's per-call checks, which would inflate the latency of small models.
        """
        self.predict(inputs)
        return functools.partial(self.predict, inputs)

    def with_threads(self, threads: int | None) -> ModelAdapter:
        """An unopened adapter for the same model with ``threads`` intra-op threads.

        Returns ``self`` when the count is already ``threads``. Default: ``self`` (the model
        cannot be re-created; it is timed as it is).
        """
        return self

    def run_notes(self) -> list[str]:
        """Sentences for the report's ``run.notes``: what the adapter did on the user's behalf.

        The engine asks after the paired run, so counts kept while predicting (an endpoint's
        retried requests) are final; an adapter must still answer after ``close()``. Examples:
        ONNX Runtime's fallback from a requested execution provider, LiteRT's quantized
        inputs and outputs, an endpoint's retries and split batches. Default: no notes.
        """
        return []

    def inactive_devices(self) -> tuple[str, ...]:
        """Requested devices or execution providers that the runtime did not activate.

        A runtime that silently falls back (ONNX Runtime runs on the CPU when a requested CUDA
        provider cannot start) would have its latency measured on another device than the one
        asked for: the engine refuses performance budgets when any model names one here, and
        ``run_notes()`` should warn about it. Default: ``()``, everything requested is active.
        """
        return ()

    @property
    def max_concurrent_batches(self) -> int:
        """How many batches the paired run may send to this model at once (default 1).

        Above 1, the engine calls ``predict`` for the next batches from worker threads while
        it scores earlier ones (at most this many batches in flight), and uses the answers
        strictly in batch order, so results equal a sequential run. An adapter that returns
        more than 1 must be safe to call ``predict`` on from several threads at once (a
        served model: each call is an independent request). Local runtimes keep 1: they use
        the cores already, and the engine then calls them one batch at a time, in order.
        """
        return 1


def check_inputs(model: str, inputs: Mapping[str, Array], spec: Mapping[str, TensorSpec]) -> None:
    """Raise InputMismatchError unless ``inputs`` match ``spec`` in names, dtypes and shapes."""
    missing = [n for n in spec if n not in inputs]
    extra = [n for n in inputs if n not in spec]
    if missing or extra:
        texts = [n for n in extra if n != "features" and _is_text_column(inputs[n])]
        if "features" in inputs and texts:
            raise InputMismatchError(
                f"Model {model!r}: the data's text feature column(s) "
                f"{', '.join(map(repr, texts))} reach a model only as inputs of their own "
                f"name, and this model takes {', '.join(map(repr, sorted(spec)))}. List text "
                "columns in data.segments if they group rows, or leave them out by listing "
                "the feature columns in data.features."
            )
        if list(inputs) == ["features"] and len(spec) > 1:
            # Tabular files reach a model as one stacked array of their feature columns:
            # "name the arrays" cannot be followed for them.
            raise InputMismatchError(
                f"Model {model!r}: input names do not match; it takes {len(spec)} inputs "
                f"({', '.join(sorted(spec))}) but the data gives one array, 'features' (a "
                "parquet or CSV file's feature columns, or an .npz file's default array). "
                "Columns are fed by name only to a model whose every input is one column "
                "([?, 1], skl2onnx's default for a DataFrame) named after a feature column. "
                "Export the model with a single input of all features (e.g. skl2onnx's "
                "to_onnx(model, X[:1]) on a numeric array), or give the data as an .npz file "
                "with one array per input name, listed in data.features."
            )
        raise InputMismatchError(
            f"Model {model!r}: input names do not match; got {sorted(inputs)}, expected "
            f"{sorted(spec)}. Name the data's arrays after the model's inputs."
        )
    for name, tensor in spec.items():
        array = inputs[name]
        if tensor.dtype is not None and array.dtype != tensor.dtype:
            raise InputMismatchError(
                f"Model {model!r}: input {name!r} has dtype {array.dtype}; expected "
                f"{tensor.describe()}. Convert the data to {tensor.dtype}."
            )
        if tensor.shape is not None:
            ok = len(tensor.shape) == array.ndim and all(
                d is None or d == a for d, a in zip(tensor.shape, array.shape, strict=False)
            )
            if not ok and _batch_axis_only(tensor.shape, array.shape):
                raise InputMismatchError(_fixed_batch_message(model, name, tensor, array))
            if not ok:
                raise InputMismatchError(
                    f"Model {model!r}: input {name!r} has shape {tuple(array.shape)}; "
                    f"expected {tensor.describe()} (? = any size). Check that the data's "
                    f"feature columns are the ones the model was trained on."
                )


def _batch_axis_only(declared: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``shape`` differs from ``declared`` only in a fixed batch axis (axis 0)."""
    return (
        len(declared) == len(shape) >= 1
        and declared[0] is not None
        and declared[0] != shape[0]
        and all(d is None or d == a for d, a in zip(declared[1:], shape[1:], strict=True))
    )


def _fixed_batch_message(model: str, name: str, tensor: TensorSpec, array: Array) -> str:
    """A model exported with a fixed batch dimension, fed another batch size.

    Exporters fix the batch dimension unless told otherwise (``torch.onnx.export`` without
    ``dynamic_axes``/``dynamic_shapes`` fixes it to the example's size, usually 1): the feature
    columns are right and only the batch size is not.
    """
    assert tensor.shape is not None
    fixed = tensor.shape[0]
    rows = array.shape[0]
    tail = (
        f" A batch of fewer rows is the data's last one: with a fixed size of {fixed}, the row "
        f"count must be a multiple of {fixed}."
        if rows < fixed
        else ""
    )
    return (
        f"Model {model!r}: input {name!r} has a fixed batch dimension of {fixed} "
        f"({tensor.describe()}); got a batch of {rows:,} rows. Set batch_size: {fixed} in the "
        f"spec (--batch-size {fixed} with compval compare; for compval profile, --batch-sizes "
        f"{fixed} --concurrency-batch-size {fixed}), or export the model with a dynamic batch "
        f"axis (torch.onnx.export(..., dynamic_axes={{{name!r}: {{0: 'batch'}}}}))." + tail
    )


def bind_inputs(
    model: str,
    features: Mapping[str, Array],
    spec: Mapping[str, TensorSpec],
    *,
    columns: Sequence[str] = (),
    round_integers: bool = False,
) -> dict[str, Array]:
    """Map a batch's feature arrays onto the model's input names.

    A dataset with one feature array feeds a model with one input whatever the names. A table
    (parquet, CSV, DataFrame) gives its numeric columns as one ``features`` array and each text
    column as a ``(rows, 1)`` array of str named after it. A model with one input per column
    (skl2onnx's default for a pandas DataFrame: ``[?, 1]`` inputs named after the columns) is
    fed each column by name when ``columns`` (the ``features`` array's column names,
    ``compval.data.feature_names``) and the text columns are exactly its inputs, in any order.
    Numeric features (float, int or bool) are cast to the model's float dtype: CSV and
    parquet data are usually float64 or int64 while models take float32. A float column that
    a per-column input declares as integer is cast when every value is a whole number. With
    ``round_integers`` (perturbed inputs: noise on an integer feature is not whole), float
    values bound to any integer input are rounded to the nearest whole number first. Fixed-width
    text (an .npz file's) becomes the str objects a string input takes. Any other dtype
    difference is left for ``check_inputs`` to report.

    Raises:
        InputMismatchError: The model takes one input per column, but the column names are not
            its input names; or an integer input's column holds a value that is not whole.
    """
    split = False  # fed column by column
    if len(features) == 1 and len(spec) == 1:
        ((_, array),) = features.items()
        ((name, _),) = spec.items()
        bound = {name: array}
    elif len(spec) > 1 and _per_column(spec) and _is_table(features):
        bound = _bind_columns(model, features, spec, list(columns))
        split = bound.keys() == spec.keys()
    else:
        bound = dict(features)
        _drop_undeclared_text_inputs(model, bound, spec)
    for name, array in list(bound.items()):
        declared = spec.get(name)
        if declared is None or declared.dtype is None or array.dtype == declared.dtype:
            continue
        if array.dtype.kind in "fiub" and np.issubdtype(declared.dtype, np.floating):
            bound[name] = array.astype(declared.dtype, copy=False)
        elif array.dtype.kind == "U" and declared.dtype == object:
            # A string tensor takes Python str objects; an .npz file stores fixed-width text.
            bound[name] = array.astype(object)
        elif (
            (split or round_integers)
            and array.dtype.kind == "f"
            and np.issubdtype(declared.dtype, np.integer)
        ):
            values = np.rint(array) if round_integers else array
            bound[name] = _as_declared_integer(model, name, values, declared)
    return bound


def _per_column(spec: Mapping[str, TensorSpec]) -> bool:
    """Whether every input is one column: shape ``[?]`` or ``[?, 1]``."""
    return all(
        t.shape is not None
        and (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] in (1, None)))
        for t in spec.values()
    )


def _is_table(features: Mapping[str, Array]) -> bool:
    """A table's inputs: its numeric ``features`` array and a ``(rows, 1)`` one per text column."""
    return "features" in features and all(
        name == "features" or _is_text_column(array) for name, array in features.items()
    )


def _is_text_column(array: Array) -> bool:
    """A table's text column: a (rows, 1) object array (compval.data)."""
    return array.dtype == object and array.ndim == 2 and array.shape[1] == 1


def _bind_columns(
    model: str, features: Mapping[str, Array], spec: Mapping[str, TensorSpec], columns: list[str]
) -> dict[str, Array]:
    """Each per-column input gets its column of the table, by name (see ``bind_inputs``)."""
    array = features["features"]
    if array.ndim != 2 or len(columns) != array.shape[1]:
        # Column names unknown (plain arrays): nothing to match by; check_inputs explains.
        return dict(features)
    available = [*columns, *(n for n in features if n != "features")]
    names = sorted(spec)
    lacking = [n for n in names if n not in available]
    unused = [c for c in available if c not in spec]
    if lacking or unused:
        raise InputMismatchError(
            f"Model {model!r}: takes one input per column ({', '.join(names)}), fed by name "
            "from the data's feature columns; "
            + (f"the data has no column {', '.join(map(repr, lacking))}" if lacking else "")
            + ("; " if lacking and unused else "")
            + (
                f"column(s) {', '.join(map(repr, unused))} are no input of the model"
                if unused
                else ""
            )
            + ". List the model's inputs in data.features (or rename the columns), so that "
            "the feature columns are exactly its inputs."
        )
    position = {c: j for j, c in enumerate(columns)}
    bound: dict[str, Array] = {}
    for name in spec:
        shape = spec[name].shape
        rank2 = shape is not None and len(shape) == 2
        if name in features:  # a text column, (rows, 1)
            bound[name] = features[name] if rank2 else features[name][:, 0]
            continue
        j = position[name]
        column = array[:, j : j + 1] if rank2 else array[:, j]
        bound[name] = np.ascontiguousarray(column)
    return bound


def _as_declared_integer(model: str, name: str, column: Array, tensor: TensorSpec) -> Array:
    """A float column bound to an integer input, cast when its values are whole numbers.

    A table's feature array has one dtype for all columns (float64 when int64 and float
    columns mix), so an int64 column of a DataFrame comes back as floats; the cast is exact
    for whole numbers up to 2**53. Anything else is refused: truncating 2.5 would change the
    data the model sees.
    """
    declared = tensor.dtype
    assert declared is not None
    info = np.iinfo(declared)
    low, high = max(float(info.min), -(2.0**53)), min(float(info.max), 2.0**53)
    # NaN fails every comparison, and Inf the range.
    ok = (np.trunc(column) == column) & (column >= low) & (column <= high)
    if not ok.all():
        bad = column.reshape(-1)[np.flatnonzero(~ok.reshape(-1))[0]]
        raise InputMismatchError(
            f"Model {model!r}: input {name!r} is {tensor.describe()}, but its column holds "
            f"a value that is not a whole number in range ({float(bad)!r}). Give the column "
            "whole numbers, or export the model with a float input for it."
        )
    return column.astype(declared)


#: Inputs a tokenizer makes that a text model may not take (compval.data.TEXT_INPUTS).
_OPTIONAL_TEXT_INPUTS = ("token_type_ids", "position_ids")


def _drop_undeclared_text_inputs(
    model: str, bound: dict[str, Array], spec: Mapping[str, TensorSpec]
) -> None:
    """Feed a text model only the tokenizer outputs it declares.

    ``token_type_ids`` (all zeros for one text) and ``position_ids`` (0..L-1 under right
    padding) carry nothing a model needs to be told; ``attention_mask`` does once the batch is
    padded, so it is dropped only while it is all ones.
    """
    if "input_ids" not in bound or "input_ids" not in spec:
        return
    for name in _OPTIONAL_TEXT_INPUTS:
        if name in bound and name not in spec:
            del bound[name]
    mask = bound.get("attention_mask")
    if mask is not None and "attention_mask" not in spec:
        if not np.all(mask):
            raise InputMismatchError(
                f"Model {model!r}: declares no 'attention_mask' input but this batch of texts "
                "is padded (rows of different lengths); the model would read the pad tokens. "
                "Export the model with an attention_mask input, or set batch_size: 1."
            )
        del bound["attention_mask"]
