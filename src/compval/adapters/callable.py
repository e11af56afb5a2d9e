"""CallableAdapter: any Python function from input arrays to output arrays.

Also holds ``structure_outputs``, the one place that turns a model's return value (one array,
a tuple or list of arrays, or a dict) into named outputs, which TorchAdapter uses too, and
``scores_from_maps``, which turns one score map per row (ONNX ZipMap) into a score array.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from compval.adapters._base import AdapterInfo, ModelAdapter
from compval.errors import InferenceError, InvalidParameterError
from compval.types import Array, Outputs, TensorSpec

__all__ = ["CallableAdapter", "is_score_maps", "scores_from_maps", "structure_outputs"]


class CallableAdapter(ModelAdapter):
    """Run a Python callable as a model.

    With one input name the callable gets the input array as its only positional argument;
    with several it gets them as keyword arguments. It returns one array, a tuple (or a list
    of arrays) of arrays, or a dict of arrays; each is converted with ``np.asarray``, except a
    list of ``{class: score}`` maps (one per row, like an ONNX ZipMap output), which becomes a
    (rows, classes) array whose keys are the adapter's ``classes``. Default output names are
    ``"output"`` for one array, ``"output_0"``, ``"output_1"``... for a tuple, and the keys
    for a dict.

    Args:
        fn: The callable.
        name: Name shown in reports.
        input_names: The inputs the callable takes, in order.
        output_names: Names for the returned arrays (a dict result: the keys to keep, in
            this order); None uses the defaults above.

    Raises:
        InvalidParameterError: ``fn`` is not callable, or a name list is empty or repeats.

    Example:
        >>> import numpy as np
        >>> with CallableAdapter(lambda x: x.sum(axis=1), name="sum") as model:
        ...     model.predict({"input": np.ones((2, 3))})["output"].tolist()
        [3.0, 3.0]
    """

    runtime = "python"

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        input_names: Sequence[str] = ("input",),
        output_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name=name)
        if not callable(fn):
            raise InvalidParameterError(
                f"Model {name!r}: 'fn' must be callable; got an object of type "
                f"{type(fn).__qualname__}. Pass a function that takes the input array."
            )
        self._fn = fn
        self._input_names = check_names(name, "input_names", input_names)
        self._output_names = (
            None if output_names is None else check_names(name, "output_names", output_names)
        )
        self._spec = {n: TensorSpec(name=n, dtype=None, shape=None) for n in self._input_names}
        self._classes: tuple[object, ...] | None = None

    def _open(self) -> None:
        """Nothing to load: the callable already exists."""

    def _input_spec(self) -> Mapping[str, TensorSpec]:
        return self._spec

    def _predict(self, inputs: Mapping[str, Array]) -> Outputs:
        if len(self._input_names) == 1:
            result = self._fn(inputs[self._input_names[0]])
        else:
            result = self._fn(**{n: inputs[n] for n in self._input_names})
        outputs = structure_outputs(
            self.name, result, output_names=self._output_names, to_array=self._to_array
        )
        for key, value in outputs.items():
            if value.ndim == 0:
                raise InferenceError(
                    f"Model {self.name!r}: output {key!r} is a scalar; got shape (), expected "
                    "an array with one row per input row on axis 0. Return per-row results, "
                    "not an aggregate."
                )
        return outputs

    def _to_array(self, value: Any) -> Array:
        # One {class: score} map per row (e.g. a wrapped ONNX ZipMap output) is a score array
        # whose keys are the model's classes; np.asarray would make an array of dicts.
        if is_score_maps(value):
            scores, classes = scores_from_maps(self.name, "output", value)
            if self._classes is None:
                self._classes = classes
            return scores
        return np.asarray(value)

    @property
    def classes(self) -> tuple[object, ...] | None:
        """The keys of the score maps the callable returns, if it returns any."""
        return self._classes

    def _info(self) -> AdapterInfo:
        qualname = getattr(self._fn, "__qualname__", type(self._fn).__qualname__)
        return AdapterInfo(
            runtime="python",
            runtime_version=platform.python_version(),
            device="cpu",
            model_id=f"python:{qualname}",
        )

    def __repr__(self) -> str:
        return f"CallableAdapter({self._fn!r}, name={self.name!r})"


def structure_outputs(
    model: str,
    result: object,
    *,
    output_names: Sequence[str] | None,
    to_array: Callable[[Any], Array],
) -> dict[str, Array]:
    """Name a model's return value's arrays.

    A dict keeps its keys (or, with ``output_names``, those keys in that order); a tuple, or
    a list whose items all have a ``shape``, gives one output per item; anything else is one
    output. ``to_array`` converts each item (``np.asarray``, or tensor -> numpy).

    Raises:
        InferenceError: ``output_names`` does not fit the result.
    """
    if isinstance(result, Mapping):
        if output_names is None:
            return {str(k): to_array(v) for k, v in result.items()}
        keys = {str(k): k for k in result}
        missing = [n for n in output_names if n not in keys]
        if missing:
            raise InferenceError(
                f"Model {model!r}: the returned dict lacks output(s) {missing}; got keys "
                f"{sorted(keys)}, expected {list(output_names)}. Fix 'output_names' or "
                "the returned keys."
            )
        return {n: to_array(result[keys[n]]) for n in output_names}
    if isinstance(result, tuple) or (
        isinstance(result, list) and result and all(hasattr(r, "shape") for r in result)
    ):
        items = list(result)
        if output_names is None:
            return {f"output_{i}": to_array(v) for i, v in enumerate(items)}
        if len(items) != len(output_names):
            raise InferenceError(
                f"Model {model!r}: the model returned {len(items)} outputs; expected "
                f"{len(output_names)} to match output_names {list(output_names)}. Fix "
                "'output_names'."
            )
        return {n: to_array(v) for n, v in zip(output_names, items, strict=True)}
    if output_names is not None and len(output_names) != 1:
        raise InferenceError(
            f"Model {model!r}: the model returned 1 output; expected {len(output_names)} to "
            f"match output_names {list(output_names)}. Fix 'output_names'."
        )
    return {output_names[0] if output_names else "output": to_array(result)}


def is_score_maps(value: object) -> bool:
    """Whether ``value`` is a sequence of mappings, one per row (an ONNX ZipMap output)."""
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(row, Mapping) for row in value)
    )


def scores_from_maps(
    model: str, output: str, rows: Sequence[Mapping[Any, Any]]
) -> tuple[Array, tuple[object, ...]]:
    """A (rows, classes) float32 array and the class labels, from one score map per row.

    The column order is the first map's key order (ONNX Runtime gives every row the same
    keys in the same order); the keys are the class labels, as Python values.

    Raises:
        InferenceError: A row's keys differ from the first row's.

    Example:
        >>> rows = [{"cat": 0.75, "dog": 0.25}, {"cat": 0.5, "dog": 0.5}]
        >>> scores, classes = scores_from_maps("m", "probabilities", rows)
        >>> scores.tolist(), classes
        ([[0.75, 0.25], [0.5, 0.5]], ('cat', 'dog'))
    """
    keys = list(rows[0])
    try:
        table = [[row[k] for k in keys] for row in rows]
    except KeyError as exc:
        raise InferenceError(
            f"Model {model!r}: output {output!r} is one score map per row, but row keys "
            f"differ; got a row without key {exc.args[0]!r}, expected every row to have the "
            f"keys {keys[:12]!r}. Export the model with fixed class labels."
        ) from None
    if any(len(row) != len(keys) for row in rows):
        raise InferenceError(
            f"Model {model!r}: output {output!r} is one score map per row, but rows have "
            f"different numbers of keys; expected {len(keys)} in every row. Export the model "
            "with fixed class labels."
        )
    classes = tuple(k.item() if isinstance(k, np.generic) else k for k in keys)
    return np.asarray(table, dtype=np.float32).reshape(len(rows), len(keys)), classes


def check_names(model: str, field: str, names: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple; raise InvalidParameterError if empty, repeated or non-str."""
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise InvalidParameterError(
            f"Model {model!r}: {field!r} must be a sequence of non-empty strings; got "
            f"{names!r}. Example: ('input',)."
        )
    as_tuple = tuple(names)
    if not as_tuple or len(set(as_tuple)) != len(as_tuple):
        raise InvalidParameterError(
            f"Model {model!r}: {field!r} must be non-empty with no repeats; got {names!r}. "
            "Give each name once."
        )
    return as_tuple
