"""In-memory datasets: ``ArrayDataset`` over numpy arrays, and ``from_dataframe`` for pandas."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from compval._lazy import lazy_import
from compval.data._batch import Batch
from compval.data._common import (
    as_name_list,
    check_batch_size,
    check_selection,
    clean_segment,
    count_missing,
    hash_array,
    missing_column_error,
    missing_labels_error,
    row_ids,
    segment_values_error,
    text_named_features_error,
    value_counts,
)
from compval.errors import DataError, InvalidParameterError
from compval.stats import all_finite
from compval.types import Array

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ArrayDataset", "from_dataframe"]

_SUBJECT = "ArrayDataset"
#: Values per float input checked for NaN/Inf at once (a whole number of batches).
_FINITE_SPAN_VALUES = 1 << 22


def _to_array(role: str, value: npt.ArrayLike) -> Array:
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{_SUBJECT}: {role} cannot be converted to a numpy array; got "
            f"{type(value).__name__} ({exc}), expected an array-like with a row per sample. "
            "Pass a numpy array."
        ) from exc


def _as_inputs(features: npt.ArrayLike | Mapping[str, npt.ArrayLike]) -> dict[str, Array]:
    if isinstance(features, Mapping):
        if not features:
            raise InvalidParameterError(
                f"{_SUBJECT}: 'features' is an empty mapping; got {{}}, expected at least one "
                "named input. Pass an array, or a mapping of input name to array."
            )
        raw: dict[str, Any] = dict(features)
    else:
        raw = {"features": features}
    inputs: dict[str, Array] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(
                f"{_SUBJECT}: input names must be non-empty strings; got {name!r}, expected "
                "a model input name such as 'input_ids'. Rename the mapping's key."
            )
        array = _to_array(f"input {name!r}", value)
        if array.ndim == 0:
            raise InvalidParameterError(
                f"{_SUBJECT}: input {name!r} is a scalar; got shape (), expected at least one "
                "dimension with one entry per row. Pass an array of shape (rows, ...)."
            )
        inputs[name] = array
    return inputs


def _as_column(role: str, value: npt.ArrayLike) -> Array:
    array = _to_array(role, value)
    if array.ndim != 1:
        raise InvalidParameterError(
            f"{_SUBJECT}: {role} must be 1-D; got shape {array.shape}, expected (rows,). "
            "Pass one value per row (for one-hot labels, pass the class index: argmax)."
        )
    return array


class ArrayDataset:
    """A dataset over numpy arrays held in memory; each batch is a view, nothing is copied.

    Args:
        features: One array (the model's single input, named ``"features"``), or a mapping
            of input name to array for models with several inputs. Axis 0 is the row.
        labels: One label per row (ints, strings or floats), or None for unlabelled data.
        segments: Segment column name -> one value per row. Missing values (None, NaN) become
            the string ``"<NA>"``; the text ``<NA>`` itself (and text starting with ``"``)
            becomes JSON-quoted (``"<NA>"``), so the two stay distinct segments.

    Raises:
        InvalidParameterError: An argument is not array-like, has the wrong number of
            dimensions, or an input name is not a non-empty string.
        DataError: The arrays differ in length, there are no rows, or a label is missing.

    Example:
        >>> import numpy as np
        >>> ds = ArrayDataset(np.zeros((5, 3)), labels=np.arange(5))
        >>> [len(b) for b in ds.batches(2)]
        [2, 2, 1]
    """

    def __init__(
        self,
        features: npt.ArrayLike | Mapping[str, npt.ArrayLike],
        labels: npt.ArrayLike | None = None,
        segments: Mapping[str, npt.ArrayLike] | None = None,
    ) -> None:
        self._inputs = _as_inputs(features)
        #: Names of the columns of a single 2-D feature array (set for DataFrames); empty
        #: when unknown.
        self.feature_columns: tuple[str, ...] = ()
        self._labels = None if labels is None else _as_column("labels", labels)
        if segments is not None and not isinstance(segments, Mapping):
            raise InvalidParameterError(
                f"{_SUBJECT}: 'segments' must be a mapping of column name to values; got "
                f"{type(segments).__name__}, expected e.g. {{'lang': [...]}}. Wrap the values "
                "in a dict keyed by the segment's name."
            )
        raw_segments = {} if segments is None else dict(segments)
        for name in raw_segments:
            if not isinstance(name, str) or not name:
                raise InvalidParameterError(
                    f"{_SUBJECT}: segment names must be non-empty strings; got {name!r}, "
                    "expected a column name such as 'lang'. Rename the mapping's key."
                )
        columns = {
            name: _as_column(f"segment {name!r}", value) for name, value in raw_segments.items()
        }

        lengths = {f"input {name!r}": int(a.shape[0]) for name, a in self._inputs.items()}
        if self._labels is not None:
            lengths["labels"] = int(self._labels.shape[0])
        lengths.update({f"segment {name!r}": int(a.shape[0]) for name, a in columns.items()})
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{role}: {n}" for role, n in lengths.items())
            raise DataError(
                f"{_SUBJECT}: the arrays have different numbers of rows; got {listed}, "
                "expected the same number everywhere. Check that features, labels and "
                "segments come from the same rows."
            )
        self._n_rows = next(iter(lengths.values()))
        if self._n_rows == 0:
            raise DataError(
                f"{_SUBJECT}: the data has no rows; got 0 rows, expected at least 1. "
                "Check the filter or file that produced the arrays."
            )
        if self._labels is not None:
            n_missing = count_missing(self._labels)
            if n_missing:
                raise missing_labels_error(_SUBJECT, "labels", n_missing, self._n_rows)
        self._segments = {name: clean_segment(a) for name, a in columns.items()}
        self._segment_counts: dict[str, dict[Any, int]] | None = None
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return self._n_rows

    def __repr__(self) -> str:
        inputs = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in self._inputs.items())
        return (
            f"ArrayDataset(rows={self._n_rows}, inputs={{{inputs}}}, "
            f"labels={self.has_labels}, segments={list(self._segments)})"
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the feature arrays, in order."""
        return tuple(self._inputs)

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """Names of the segment columns, in order."""
        return tuple(self._segments)

    @property
    def has_labels(self) -> bool:
        """Whether batches carry labels."""
        return self._labels is not None

    @property
    def segment_value_counts(self) -> dict[str, dict[Any, int]]:
        """Rows per distinct value of each segment column (counted once, on first use)."""
        if self._segment_counts is None:
            self._segment_counts = {n: value_counts(a) for n, a in self._segments.items()}
        return self._segment_counts

    def check_segment_values(self, limit: int | None, *, subject: str = _SUBJECT) -> None:
        """Raise DataError if a segment column has more than ``limit`` distinct values.

        Raises:
            DataError: Names the column, the count and ``data.max_segment_values``.
        """
        if limit is None:
            return
        for name, counts in self.segment_value_counts.items():
            if len(counts) > limit:
                raise segment_values_error(
                    subject, name, len(counts), limit, f"in its {self._n_rows:,} rows"
                )

    def fingerprint(self) -> str:
        """Hex sha256 of every array's name, dtype, shape and values (computed once)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(b"compval-arrays-v1")
            for name in sorted(self._inputs):
                hash_array(digest, f"input:{name}", self._inputs[name])
            if self._labels is not None:
                hash_array(digest, "labels", self._labels)
            for name in sorted(self._segments):
                hash_array(digest, f"segment:{name}", self._segments[name])
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` rows (the last may be smaller), in row order.

        Args:
            batch_size: Rows per batch.

        Raises:
            InvalidParameterError: ``batch_size`` is not a positive int.
        """
        size = check_batch_size(batch_size)
        return self._iter_batches(size)

    def _iter_batches(self, size: int) -> Iterator[Batch]:
        floats = [a for a in self._inputs.values() if a.dtype.kind in "fc"]
        # NaN/Inf are looked for in spans of whole batches (Batch.inputs_finite), about
        # _FINITE_SPAN_VALUES values per array: once per span instead of once per batch, and
        # never a pass over a memory-mapped file before its first batch.
        per_row = max((a.size // self._n_rows for a in floats), default=1)
        span = size * max(1, _FINITE_SPAN_VALUES // max(per_row * size, 1))
        for lo in range(0, self._n_rows, span):
            hi = min(lo + span, self._n_rows)
            finite = all(all_finite(a[lo:hi]) for a in floats)
            for start in range(lo, hi, size):
                stop = min(start + size, hi)
                yield Batch(
                    inputs={name: a[start:stop] for name, a in self._inputs.items()},
                    labels=None if self._labels is None else self._labels[start:stop],
                    row_ids=row_ids(start, stop),
                    segments={name: a[start:stop] for name, a in self._segments.items()},
                    inputs_finite=finite,
                )


def _column_error(df: pd.DataFrame, role: str, name: str) -> DataError:
    return missing_column_error("DataFrame", role, name, [str(c) for c in df.columns])


def from_dataframe(
    df: pd.DataFrame,
    *,
    labels: str | None,
    segments: Sequence[str] = (),
    features: Sequence[str] | None = None,
) -> ArrayDataset:
    """Build an ArrayDataset from a pandas DataFrame (extra: ``data``).

    The feature columns are stacked into one ``"features"`` array of shape (rows, columns),
    in the order given, with numpy's common dtype of those columns (nullable integer columns
    holding missing values become float64 with NaN). Rows are numbered by position; the
    index is ignored.

    Args:
        df: The data.
        labels: The label column, or None for unlabelled data.
        segments: Segment columns; missing values become ``"<NA>"``.
        features: Feature columns; default: every column that is not the label or a segment.

    Returns:
        An ArrayDataset with one ``"features"`` input.

    Raises:
        InvalidParameterError: ``df`` is not a DataFrame, or a column list is a string.
        DataError: A column is missing, a feature column is not numeric, a label is
            missing, the frame has no rows, or the selection repeats or mixes columns.
    """
    pd_mod = lazy_import("pandas", extra="data")
    if not isinstance(df, pd_mod.DataFrame):
        raise InvalidParameterError(
            f"from_dataframe(): 'df' must be a pandas DataFrame; got {type(df).__name__}, "
            "expected pandas.DataFrame. Use ArrayDataset for numpy arrays."
        )
    segment_names = as_name_list("from_dataframe()", "segments", segments) or []
    feature_names = as_name_list("from_dataframe()", "features", features)
    for role, names in (("label", [] if labels is None else [labels]), ("segment", segment_names)):
        for name in names:
            if name not in df.columns:
                raise _column_error(df, role, name)
    if feature_names is None:
        excluded = {*segment_names, labels}
        feature_names = [c for c in df.columns if c not in excluded]
    else:
        for name in feature_names:
            if name not in df.columns:
                raise _column_error(df, "feature", name)
    check_selection("DataFrame", features=feature_names, labels=labels, segments=segment_names)
    if not feature_names:
        raise DataError(
            "DataFrame: no feature columns; got only the label and segment columns "
            f"{[str(c) for c in df.columns]}, expected at least one feature column. Add "
            "feature columns or list them in 'features'."
        )
    if len(df) == 0:
        raise DataError(
            "DataFrame: the data has no rows; got 0 rows, expected at least 1. Check the "
            "filter or file that produced the frame."
        )
    types = pd_mod.api.types
    texts = [c for c in feature_names if not types.is_numeric_dtype(df[c].dtype)]
    bad = [str(c) for c in texts if not _is_text_column(df[c])]
    if bad:
        raise DataError(
            f"DataFrame: feature columns must be numbers or text; got other columns {bad}, "
            "expected int, float, bool or str columns. List them in 'segments' if they group "
            "rows, or drop them (pass 'features' explicitly)."
        )
    for c in texts:
        n_missing = int(df[c].isna().sum())
        if n_missing:
            raise DataError(
                f"DataFrame: text feature column {str(c)!r} has missing values; got "
                f"{n_missing:,} of {len(df):,} rows, expected none. Fill them (e.g. with the "
                "text the model was trained to read as missing)."
            )
    numeric = [c for c in feature_names if c not in texts]
    if "features" in texts and numeric:
        raise DataError(text_named_features_error("DataFrame"))
    label_values = None
    if labels is not None:
        n_missing = int(df[labels].isna().sum())
        if n_missing:
            raise missing_labels_error("DataFrame", labels, n_missing, len(df))
        label_values = df[labels].to_numpy()
    inputs: dict[str, Array] = {}
    if numeric:
        frame = df[list(numeric)]
        matrix = frame.to_numpy()
        if matrix.dtype == object:
            # Nullable extension columns (Int64, boolean) come out as objects holding pd.NA.
            matrix = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        inputs["features"] = matrix
    # Text columns are inputs of their own, for a model with one input per column.
    inputs.update((str(c), df[c].to_numpy(dtype=object).reshape(-1, 1)) for c in texts)
    dataset = ArrayDataset(
        inputs["features"] if list(inputs) == ["features"] else inputs,
        labels=label_values,
        segments={name: df[name].to_numpy() for name in segment_names},
    )
    # The column names, so that weak slices are described as "age >= 40", not "x3 >= 40".
    dataset.feature_columns = tuple(str(c) for c in numeric)
    return dataset


def _is_text_column(column: Any) -> bool:
    """Whether the column holds text: str values (object, string or category dtype)."""
    values = column.dropna()
    return bool(len(values)) and all(isinstance(v, str) for v in values.unique())
