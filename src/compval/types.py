"""Shared type aliases and small value types."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "ModelLike", "Outputs", "SupportsPredict", "TensorSpec"]

Array = npt.NDArray[Any]
#: What a model returns for one batch: output name -> array with the batch on axis 0.
Outputs = Mapping[str, Array]


class SupportsPredict(Protocol):
    """Anything with a one-argument ``predict``: scikit-learn style estimators, adapters."""

    def predict(self, x: Any, /) -> Any:
        """Predict one batch."""


#: What ``as_adapter`` and ``run_validation`` accept as a model: a ``ModelAdapter`` or an
#: estimator (``SupportsPredict``), a model file path, or a callable (a torch ``nn.Module``,
#: a function from the input array to the output array).
#: A runtime union, not a string: ``ModelLike | None`` in a signature must evaluate when
#: ``typing.get_type_hints`` reads it.
ModelLike: TypeAlias = SupportsPredict | str | os.PathLike[str] | Callable[..., Any]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a model declares about one input.

    Attributes:
        name: The input's name in the model.
        dtype: Expected numpy dtype, or None when the runtime accepts any.
        shape: Expected shape; ``None`` entries are dynamic dimensions (the batch axis is
            usually one). ``None`` for the whole shape means unknown.
    """

    name: str
    dtype: np.dtype[Any] | None
    shape: tuple[int | None, ...] | None

    def describe(self) -> str:
        """Human-readable form used in error messages, e.g. ``float32[?, 64]``."""
        dtype = "any" if self.dtype is None else str(self.dtype)
        if self.shape is None:
            return f"{dtype}[...]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{dtype}[{dims}]"
