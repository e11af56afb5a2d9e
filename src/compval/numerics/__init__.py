"""Numerical stability: where in the graph, and with which batch, a candidate's error arises.

A domain package beside ``compval.profiling``: like the profiler it runs models outside the
paired stream (intermediate tensors of ONNX graphs, batch-size reruns) and returns typed
results; the engine orchestrates it and turns its numbers into gateable estimates.
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.numerics._consistency import measure_batch_consistency
from compval.numerics._lowprec import low_precision_rates
from compval.numerics._onnx import LayerNumerics, analyze_onnx_pair
from compval.numerics._ranges import error_by_feature_range, error_by_row_norm, row_errors
from compval.numerics._torch import analyze_torch_pair

__all__ = [
    "LayerNumerics",
    "analyze_onnx_pair",
    "analyze_torch_pair",
    "error_by_feature_range",
    "error_by_row_norm",
    "low_precision_rates",
    "measure_batch_consistency",
    "row_errors",
]

name_public_functions(__name__, globals(), __all__)
