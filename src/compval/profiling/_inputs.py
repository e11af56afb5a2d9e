"""Inputs for profiling: synthetic batches from a model's declared inputs, and batch cutting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from compval.adapters import ModelAdapter
from compval.errors import DataError, InvalidParameterError, ProfilingError
from compval.types import Array, TensorSpec

__all__ = ["BatchCutter", "check_batch_axes", "synthetic_inputs"]

# Small non-negative integers are valid for most integer inputs (token ids, category indices,
# lengths), so synthetic integer inputs stay below this bound.
_INT_HIGH = 10


def synthetic_inputs(adapter: ModelAdapter, *, rows: int, seed: int) -> dict[str, Array]:
    """Random inputs shaped after the adapter's ``input_spec()``, batch on axis 0.

    Floats are standard normal, integers uniform in [0, 10), booleans fair coin flips; an
    input without a declared dtype gets float32. Timing does not depend on the values for the
    dense models compval profiles, but data-dependent models (NonZero, early exits) will be
    timed on unrepresentative inputs: give real data when you can.

    Args:
        adapter: An open adapter.
        rows: Rows to generate (axis 0 of every input).
        seed: Seed of the random generator.

    Returns:
        Input name -> array of shape ``(rows, *fixed dims)``.

    Raises:
        InvalidParameterError: ``rows`` < 1.
        ProfilingError: An input has an unknown shape, a dynamic non-batch dimension, no batch
            axis, or a dtype that cannot be generated; the message asks for real data.

    Example:
        >>> # inputs = synthetic_inputs(adapter, rows=128, seed=0)
    """
    if rows < 1:
        raise InvalidParameterError(
            f"synthetic_inputs: 'rows' must be >= 1; got {rows!r}, expected a positive int."
        )
    rng = np.random.default_rng(seed)
    out: dict[str, Array] = {}
    for name, spec in adapter.input_spec().items():
        shape = _fixed_shape(adapter.name, spec, rows)
        dtype = np.dtype(np.float32) if spec.dtype is None else np.dtype(spec.dtype)
        if dtype.kind == "f":
            out[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            out[name] = rng.integers(0, _INT_HIGH, size=shape).astype(dtype)
        elif dtype.kind == "b":
            out[name] = rng.random(shape) < 0.5
        else:
            raise ProfilingError(
                f"Model {adapter.name!r}: input {name!r} has dtype {dtype}; synthetic inputs "
                "are made for float, integer and bool inputs only, expected one of those. "
                "Pass real inputs with --data."
            )
    return out


def _fixed_shape(model: str, spec: TensorSpec, rows: int) -> tuple[int, ...]:
    if spec.shape is None or len(spec.shape) == 0:
        problem = "an unknown shape" if spec.shape is None else "no batch axis"
        raise ProfilingError(
            f"Model {model!r}: input {spec.name!r} has {problem} ({spec.describe()}); "
            "synthetic inputs need a batch axis and fixed other "
            "dimensions. Pass real inputs with --data."
        )
    dynamic = [axis for axis, dim in enumerate(spec.shape) if axis > 0 and dim is None]
    if dynamic:
        raise ProfilingError(
            f"Model {model!r}: input {spec.name!r} has dynamic dimensions at axes {dynamic} "
            f"({spec.describe()}); got no size for them, expected fixed sizes for synthetic "
            "inputs. Pass real inputs with --data."
        )
    return (rows, *(int(d) for d in spec.shape[1:] if d is not None))


def check_batch_axes(model: str, spec: Mapping[str, TensorSpec], sizes: Iterable[int]) -> None:
    """Raise ProfilingError if an input fixes its batch axis to a size other than ``sizes``.

    Raises:
        ProfilingError: A fixed batch dimension differs from a requested batch size.
    """
    wanted = sorted(set(sizes))
    for tensor in spec.values():
        if tensor.shape and tensor.shape[0] is not None:
            fixed = tensor.shape[0]
            if any(size != fixed for size in wanted):
                raise ProfilingError(
                    f"Model {model!r}: input {tensor.name!r} has a fixed batch size of {fixed} "
                    f"({tensor.describe()}); got batch sizes {wanted}, expected only {fixed}. "
                    f"Profile with --batch-sizes {fixed} (and --concurrency-batch-size "
                    f"{fixed}), or export the model with a dynamic batch axis."
                )


class BatchCutter:
    """Cuts batches of any size from a pool of rows, the same rows for every model.

    Rows are taken in a seeded random order; a pool smaller than the batch is tiled.
    """

    def __init__(self, pool: Mapping[str, Array], *, seed: int) -> None:
        """Check the pool and fix the row order.

        Args:
            pool: Input name -> array, rows on axis 0.
            seed: Seed of the row order.

        Raises:
            DataError: The pool is empty, or its arrays disagree on the number of rows.
        """
        rows = {name: (np.shape(a)[0] if np.ndim(a) else 0) for name, a in pool.items()}
        counts = set(rows.values())
        if not pool or len(counts) != 1 or 0 in counts:
            raise DataError(
                f"Profiling inputs: need one or more arrays with the same positive number of "
                f"rows on axis 0; got {rows or 'no arrays'}. Pass a non-empty sample."
            )
        self.rows = counts.pop()
        self._order = np.random.default_rng(seed).permutation(self.rows)

    def cut(self, bound: Mapping[str, Array], size: int) -> dict[str, Array]:
        """The first ``size`` rows in the fixed order (tiled), of arrays shaped like the pool."""
        index = self._order[np.arange(size) % self.rows]
        return {name: np.ascontiguousarray(np.asarray(a)[index]) for name, a in bound.items()}
