"""Error by input range: does the candidate's error concentrate on large or small inputs?

Rows are binned by the L2 norm of their inputs at the sample's quantiles (right-closed bins,
as ``pandas.qcut``), and each bin reports the output error and the agreement of the two
models' predictions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from compval.results import InputRangeBin
from compval.types import Array

__all__ = ["error_by_row_norm"]


def error_by_row_norm(
    inputs: Mapping[str, Array], reference: Array, candidate: Array, *, bins: int = 5
) -> list[InputRangeBin]:
    """Output error per quantile bin of the rows' input norm.

    Args:
        inputs: The sample rows (axis 0 is the row), every input of the model.
        reference: The reference's compared output on those rows.
        candidate: The candidate's compared output on those rows.
        bins: Quantile bins; equal quantiles (many equal norms) merge bins.

    Returns:
        The non-empty bins in increasing norm: rows, norm range, mean and max absolute output
        difference, and the share of rows whose argmax agrees (None for outputs that are not
        score matrices).
    """
    rows = int(reference.shape[0])
    flat = np.concatenate(
        [np.asarray(a, dtype=np.float64).reshape(rows, -1) for a in inputs.values()], axis=1
    )
    norms = np.linalg.norm(flat, axis=1)
    edges = np.unique(np.quantile(norms, np.linspace(0.0, 1.0, bins + 1)))
    index = np.searchsorted(edges[1:-1], norms, side="left")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64)).reshape(rows, -1)
    per_row = diff.mean(axis=1)
    row_max = diff.max(axis=1, initial=0.0)
    scores = reference.ndim == 2 and reference.shape[1] > 1 and reference.dtype.kind == "f"
    agree = reference.argmax(axis=1) == candidate.argmax(axis=1) if scores else None
    out: list[InputRangeBin] = []
    for b in range(len(edges) - 1 if len(edges) > 1 else 1):
        mask = index == b
        if not mask.any():
            continue
        out.append(
            InputRangeBin(
                norm_low=float(norms[mask].min()),
                norm_high=float(norms[mask].max()),
                rows=int(mask.sum()),
                mean_abs_diff=float(per_row[mask].mean()),
                max_abs_diff=float(row_max[mask].max()),
                agreement=None if agree is None else float(agree[mask].mean()),
            )
        )
    return out
