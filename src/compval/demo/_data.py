"""The demo's data: scikit-learn's bundled digits, split, segmented by ink and written to Parquet.

The 8x8 digit images (pixel values 0..16) are split stratified by label; 45% is held out as the
validation split that ``compval validate`` runs on, so every class keeps 70+ rows there. The
``ink`` segment buckets each image by its total pixel intensity into ``light`` / ``medium`` /
``heavy`` using the tertile edges of the *training* split, so the segment definition does not
depend on the data being validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compval._lazy import lazy_import
from compval.types import Array

__all__ = [
    "INK_LEVELS",
    "N_FEATURES",
    "VALIDATION_FRACTION",
    "DigitsSplit",
    "feature_columns",
    "ink_levels",
    "split_digits",
    "write_validation_parquet",
]

#: Share of the digits held out for validation; about 80 rows per class.
VALIDATION_FRACTION = 0.45
N_FEATURES = 64
INK_LEVELS = ("light", "medium", "heavy")


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsSplit:
    """The digits, split into training and validation rows.

    Attributes:
        x_train: Raw pixel values (0..16), float32, shape ``(n_train, 64)``.
        y_train: Labels 0..9, int64.
        x_val: Raw pixel values of the validation rows, float32.
        y_val: Validation labels, int64.
        ink_edges: The two tertile edges of total intensity, from the training rows.
        ink_val: The ``ink`` segment of each validation row.
    """

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    ink_edges: tuple[float, float]
    ink_val: Array


def feature_columns() -> list[str]:
    """Names of the 64 pixel columns, ``px_0`` .. ``px_63`` (row-major)."""
    return [f"px_{i}" for i in range(N_FEATURES)]


def ink_levels(x: Array, edges: tuple[float, float]) -> Array:
    """Bucket images by total pixel intensity: below the first edge is light, then medium, heavy.

    Args:
        x: Raw pixel values, shape ``(n, 64)``.
        edges: The lower and upper tertile edges of total intensity.

    Returns:
        An object array of ``"light"`` / ``"medium"`` / ``"heavy"``, one per row.
    """
    totals = x.sum(axis=1, dtype=np.float64)
    index = np.digitize(totals, np.asarray(edges, dtype=np.float64), right=False)
    levels: Array = np.asarray(INK_LEVELS, dtype=object)[index]
    return levels


def split_digits(*, seed: int) -> DigitsSplit:
    """Load the bundled digits and split them stratified by label.

    Args:
        seed: Seed of the split (any integer in ``[0, 2**32)``).

    Returns:
        The split, with the ink segment of the validation rows.
    """
    datasets = lazy_import("sklearn.datasets", extra="sklearn")
    model_selection = lazy_import("sklearn.model_selection", extra="sklearn")
    x, y = datasets.load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = model_selection.train_test_split(
        np.asarray(x, dtype=np.float32),
        np.asarray(y, dtype=np.int64),
        test_size=VALIDATION_FRACTION,
        stratify=y,
        random_state=seed,
    )
    totals = np.asarray(x_train, dtype=np.float64).sum(axis=1)
    low, high = np.quantile(totals, [1.0 / 3.0, 2.0 / 3.0])
    edges = (float(low), float(high))
    return DigitsSplit(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        ink_edges=edges,
        ink_val=ink_levels(x_val, edges),
    )


def write_validation_parquet(split: DigitsSplit, path: Path) -> dict[str, Any]:
    """Write the validation rows: ``px_0``..``px_63`` (float32), ``label`` (int64), ``ink``.

    Args:
        split: The split to write the validation part of.
        path: Destination ``.parquet`` file; its parent must exist.

    Returns:
        What was written: row count and rows per label and per ink level.
    """
    pa = lazy_import("pyarrow", extra="data")
    pq = lazy_import("pyarrow.parquet", extra="data")
    columns: dict[str, Any] = {
        name: pa.array(split.x_val[:, i], type=pa.float32())
        for i, name in enumerate(feature_columns())
    }
    columns["label"] = pa.array(split.y_val, type=pa.int64())
    columns["ink"] = pa.array(split.ink_val.tolist(), type=pa.string())
    pq.write_table(pa.table(columns), str(path))
    labels, label_counts = np.unique(split.y_val, return_counts=True)
    return {
        "rows": len(split.y_val),
        "rows_per_label": {int(k): int(v) for k, v in zip(labels, label_counts, strict=True)},
        "rows_per_ink": {level: int(np.sum(split.ink_val == level)) for level in INK_LEVELS},
    }
