"""Transitional alias; removed once every module imports compval.types."""

from compval.types import Array, Outputs, TensorSpec

__all__ = ["Array", "Outputs", "TensorSpec"]
