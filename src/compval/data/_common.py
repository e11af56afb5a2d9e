"""Helpers shared by every dataset: argument checks, missing values, column errors, hashing.

Private: the public functions of ``compval.data`` validate their arguments with these and
everything behind them trusts the result.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compval.errors import DataError, InvalidParameterError
from compval.types import Array

__all__ = [
    "MISSING",
    "SegmentValueCounter",
    "as_name_list",
    "check_batch_size",
    "check_selection",
    "clean_segment",
    "count_missing",
    "file_subject",
    "hash_array",
    "hash_file",
    "is_ambiguous_text",
    "missing_column_error",
    "missing_labels_error",
    "no_rows_error",
    "read_error",
    "row_ids",
    "segment_values_error",
    "text_named_features_error",
    "value_counts",
]

#: What a missing segment value (None, NaN, NaT, pandas NA) becomes. A text value that reads
#: the same (the literal text ``<NA>``), or that starts with a double quote, is written
#: JSON-quoted instead (``"<NA>"``), so that every segment name has one reading: ``<NA>`` is
#: missing, a value starting with ``"`` is a JSON string, anything else is the value as is.
MISSING = "<NA>"

# Bytes hashed per update: keeps fingerprinting memory flat for memory-mapped arrays and
# large files alike.
_HASH_CHUNK_BYTES = 1 << 20
_MAX_LISTED = 20


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` if it is a positive int, else raise InvalidParameterError."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise InvalidParameterError(
            f"batches(): 'batch_size' must be an int; got {batch_size!r} of type "
            f"{type(batch_size).__name__}, expected a positive int. Pass e.g. batch_size=256."
        )
    if batch_size < 1:
        raise InvalidParameterError(
            f"batches(): 'batch_size' must be positive; got {batch_size}, expected >= 1. "
            "Pass e.g. batch_size=256."
        )
    return int(batch_size)


def file_subject(path: Path) -> str:
    """How error messages name a data file."""
    return f"data file {str(path)!r}"


def read_error(path: Path, kind: str, exc: BaseException) -> DataError:
    """The DataError for a file its reader refused, carrying the reader's own message."""
    return DataError(
        f"{file_subject(path)}: cannot be read as {kind}; got {type(exc).__name__}: {exc}, "
        f"expected a valid {kind} file. Check the file (and 'format' in the spec)."
    )


def no_rows_error(path: Path) -> DataError:
    """The DataError for a data file without rows."""
    return DataError(
        f"{file_subject(path)}: the data has no rows; got 0 rows, expected at least 1. Check "
        "that the file was written completely."
    )


def row_ids(start: int, stop: int) -> Array:
    """Global row positions ``start .. stop-1`` as int64."""
    return np.arange(start, stop, dtype=np.int64)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    try:
        # NaT != NaT is True; pandas.NA != x is NA, whose truth value raises TypeError.
        return bool(value != value)
    except (TypeError, ValueError):
        return type(value).__name__ == "NAType"


def _missing_mask(values: Array) -> Array | None:
    """Boolean mask of missing entries, or None when the dtype cannot hold missing values."""
    kind = values.dtype.kind
    if kind in "fc":
        return np.isnan(values)
    if kind in "mM":
        return np.isnat(values)
    if kind == "O":
        return np.fromiter((_is_missing(v) for v in values.ravel()), bool, values.size).reshape(
            values.shape
        )
    return None


def count_missing(values: Array) -> int:
    """Number of missing entries (None, NaN, NaT, pandas NA) in ``values``."""
    mask = _missing_mask(values)
    return 0 if mask is None else int(np.count_nonzero(mask))


def is_ambiguous_text(value: object) -> bool:
    """Whether a text segment value would read as the missing marker or as a quoted value."""
    return isinstance(value, str) and (value == MISSING or value.startswith('"'))


def quote_text(value: str) -> str:
    """``value`` JSON-quoted (non-ASCII kept as is): ``<NA>`` -> ``"<NA>"``."""
    return json.dumps(value, ensure_ascii=False)


def _quote_ambiguous(values: Array) -> Array:
    """``values`` with ambiguous text JSON-quoted (a copy only when there is any)."""
    kind = values.dtype.kind
    if kind == "U":
        hit = (values == MISSING) | np.char.startswith(values, '"')
    elif kind == "O":
        flat = values.reshape(-1)
        hit = np.fromiter((is_ambiguous_text(v) for v in flat), bool, flat.size)
        hit = hit.reshape(values.shape)
    else:
        return values
    if not hit.any():
        return values
    quoted = values.astype(object)
    quoted[hit] = [quote_text(str(v)) for v in values[hit]]
    return quoted


def clean_segment(values: Array) -> Array:
    """Replace missing segment values by ``"<NA>"``; other values keep their type.

    A text value that reads like the marker (the text ``<NA>`` itself, or text starting with
    a double quote) is JSON-quoted, so the missing values and the text ``<NA>`` stay two
    segments (``col=<NA>`` and ``col="<NA>"``). An array with nothing to change is returned as
    is (no copy). One with missing values becomes an object array, so that ``[1, NaN]``
    becomes ``[1.0, "<NA>"]``, not strings.
    """
    values = _quote_ambiguous(values)
    mask = _missing_mask(values)
    if mask is None or not mask.any():
        return values
    cleaned = values.astype(object)
    cleaned[mask] = MISSING
    return cleaned


def value_counts(values: Array) -> dict[Any, int]:
    """Rows per distinct value of a cleaned segment array (values as Python objects)."""
    if values.dtype.kind in "biuUSfMm":
        uniques, counts = np.unique(values, return_counts=True)
        return {_plain(u): int(c) for u, c in zip(uniques, counts, strict=True)}
    return dict(Counter(values.tolist()))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def segment_values_error(subject: str, column: str, seen: int, limit: int, where: str) -> DataError:
    """The DataError for a segment column with more distinct values than the limit.

    Args:
        subject: Who is speaking, e.g. ``"data file 'val.csv'"``.
        column: The segment column.
        seen: Distinct values counted when the limit was crossed.
        limit: ``data.max_segment_values``.
        where: Which rows were counted, e.g. ``"in its first 65,536 rows"``.
    """
    return DataError(
        f"{subject}: segment column {column!r} has more than {limit:,} distinct values; got "
        f"{seen:,} {where} (counting stopped there), expected at most {limit:,} "
        "(data.max_segment_values). Each value becomes a segment with its own metrics and "
        "checks, so an id-like column would bloat the report and exhaust memory. Group the "
        "values into a coarser column, drop the column from the segments, or raise "
        "data.max_segment_values (--max-segment-values with compval compare)."
    )


class SegmentValueCounter:
    """Rows per distinct value of each segment column, stopping at ``limit`` values.

    Fed a block of rows at a time while a file is scanned; the DataError comes as soon as a
    column has more than ``limit`` distinct values, so an id-like column costs one block.
    Missing values (None, NaN) count as one value, the missing segment.

    Args:
        subject: Who is speaking in the error, e.g. ``"data file 'val.csv'"``.
        columns: The segment columns.
        limit: ``data.max_segment_values``.
    """

    def __init__(self, subject: str, columns: Sequence[str], limit: int) -> None:
        self._subject = subject
        self._limit = limit
        self.rows = 0
        self.counts: dict[str, dict[Any, int]] = {c: {} for c in columns}

    def start_block(self, rows: int) -> None:
        """Count a new block of ``rows`` rows (the error says how many rows were read)."""
        self.rows += rows

    def add(self, column: str, values: Iterable[Any], counts: Iterable[int]) -> None:
        """Add the current block's distinct values of ``column`` and their row counts."""
        table = self.counts[column]
        for value, count in zip(values, counts, strict=True):
            key = _MISSING_KEY if _is_missing(value) else value
            table[key] = table.get(key, 0) + int(count)
        if len(table) > self._limit:
            raise segment_values_error(
                self._subject,
                column,
                len(table),
                self._limit,
                f"in its first {self.rows:,} rows",
            )


#: The one key under which ``SegmentValueCounter`` counts missing values: not the text
#: ``<NA>``, which is a value of its own.
_MISSING_KEY = object()


def _listing(names: Sequence[str]) -> str:
    shown = [str(n) for n in names[:_MAX_LISTED]]
    more = len(names) - len(shown)
    return repr(shown) + (f" (and {more} more)" if more > 0 else "")


def missing_column_error(
    subject: str, role: str, name: str, available: Sequence[str], *, what: str = "column"
) -> DataError:
    """Build the DataError for a column (or key) that is not in the data.

    Args:
        subject: Who is speaking, e.g. ``"data file 'val.csv'"``.
        role: The column's role: ``"label"``, ``"segment"`` or ``"feature"``.
        name: The requested name.
        available: The names the data has.
        what: ``"column"`` or ``"key"``.
    """
    close = difflib.get_close_matches(str(name), [str(a) for a in available], n=1, cutoff=0.6)
    hint = f"Did you mean {close[0]!r}?" if close else f"Use one of the available {what}s."
    return DataError(
        f"{subject}: {role} {what} {name!r} not found; got {what}s {_listing(available)}, "
        f"expected {name!r} among them. {hint}"
    )


def check_selection(
    subject: str,
    *,
    features: Sequence[str],
    labels: str | None,
    segments: Sequence[str],
    what: str = "column",
) -> None:
    """Refuse duplicate feature/segment names and a label that is also a feature or segment.

    A column may be both a feature and a segment (e.g. a numeric bucket); a label used as a
    feature would leak the answer into the model's inputs.
    """
    for role, names in (("feature", features), ("segment", segments)):
        duplicates = sorted(str(n) for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise DataError(
                f"{subject}: {role} {what}s are listed more than once; got {duplicates}, "
                f"expected each {what} once. Remove the duplicates."
            )
    if labels is not None:
        for role, names in (("feature", features), ("segment", segments)):
            if labels in names:
                raise DataError(
                    f"{subject}: the label {what} {labels!r} is also listed as a {role} "
                    f"{what}; got {role}s {_listing(list(names))}, expected the label apart. "
                    f"Remove {labels!r} from the {role}s."
                )


def text_named_features_error(subject: str) -> str:
    """A text feature column named "features" would take the place of the numeric array."""
    return (
        f"{subject}: a text feature column is named 'features', the name the numeric feature "
        "columns travel under together; got both, expected distinct names. Rename the column."
    )


def missing_labels_error(subject: str, column: str, n_missing: int, n_rows: int) -> DataError:
    """The DataError for a label column with missing values."""
    return DataError(
        f"{subject}: label column {column!r} has missing values; got {n_missing} of {n_rows} "
        "rows without a label, expected none. Drop those rows or fill them before validating."
    )


def hash_array(digest: Any, name: str, values: Array) -> None:
    """Feed one named array (dtype, shape and values) into a hashlib ``digest``.

    Numeric arrays are hashed as raw bytes, a block of rows at a time, so memory stays flat
    even for a memory-mapped array. Object arrays (strings, mixed) are hashed through
    ``repr`` of their values, since their bytes are pointers.
    """
    digest.update(f"\0{name}\0{values.dtype.str}\0{values.shape}\0".encode())
    row_bytes = max(1, values.itemsize * math.prod(values.shape[1:]))
    step = max(1, _HASH_CHUNK_BYTES // row_bytes)
    for start in range(0, values.shape[0], step):
        block = values[start : start + step]
        if values.dtype.hasobject:
            digest.update(repr(block.tolist()).encode())
        else:
            digest.update(block.tobytes())


def hash_file(path: Path, *, kind: str, selection: dict[str, Any]) -> str:
    """Hex sha256 of a data file's bytes (streamed) plus the column selection.

    The path is left out on purpose: the same bytes read the same way are the same data
    wherever they live, which is what a prediction cache keyed by this hash needs.
    """
    digest = hashlib.sha256()
    digest.update(f"compval-data-v1\0{kind}\0".encode())
    digest.update(json.dumps(selection, sort_keys=True, default=str).encode())
    digest.update(b"\0")
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(
            f"data file {str(path)!r}: cannot be read for fingerprinting; got {exc}, expected "
            "a readable file. Check that it was not moved or deleted during the run."
        ) from exc
    return digest.hexdigest()


def as_name_list(subject: str, field: str, names: Iterable[str] | None) -> list[str] | None:
    """Validate a sequence of column names given to a public function."""
    if names is None:
        return None
    if isinstance(names, str | bytes):
        raise InvalidParameterError(
            f"{subject}: {field!r} must be a sequence of column names; got the string "
            f"{names!r}, expected a list. Write [{names!r}]."
        )
    return list(names)
