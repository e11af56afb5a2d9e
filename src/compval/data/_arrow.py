"""Streaming readers for columnar files, through pyarrow: parquet and CSV (extra: ``data``).

Both read a bounded number of rows at a time (up to ``_READ_ROWS``, fewer for wide rows and,
in parquet, for small row groups), convert each read to numpy once and cut it into batches of
exactly ``batch_size`` rows (the last may be smaller), so peak memory follows the read size,
the batch size and, for parquet, the file's page size (for CSV, the reader's block size), not
the number of rows.

Column rules, shared by both formats:

* features default to every column that is not the label or a segment (and not a pandas index
  column: parquet's ``__index_level_0__`` or CSV's unnamed first column); they must be numeric
  (int, float or bool) and are stacked into one ``"features"`` array of shape (rows, columns)
  with numpy's common dtype of those columns;
* missing values in a float feature are NaN; in an int or bool feature they are a DataError,
  since the column's dtype cannot hold them;
* a label column with missing values (null or NaN) is refused when the dataset is opened;
* missing segment values become ``"<NA>"``, and a text value that reads like it (``<NA>``
  itself, or text starting with ``"``) is JSON-quoted, so the two stay apart; integer segments
  keep their integer values;
* opening counts the distinct values of every segment column and refuses one with more than
  ``data.max_segment_values`` (stopping at the first block that crosses it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compval._lazy import lazy_import
from compval.data._batch import Batch
from compval.data._common import (
    MISSING,
    SegmentValueCounter,
    check_batch_size,
    check_selection,
    clean_segment,
    count_missing,
    file_subject,
    hash_file,
    is_ambiguous_text,
    missing_column_error,
    missing_labels_error,
    no_rows_error,
    read_error,
    row_ids,
    text_named_features_error,
)
from compval.data._read_ahead import read_ahead
from compval.errors import DataError
from compval.stats import all_finite
from compval.types import Array

if TYPE_CHECKING:
    import pyarrow as pa

    from compval.spec import DataRef

__all__ = ["CsvDataset", "ParquetDataset"]

# Rows per read when a single column is scanned at open (label check).
_SCAN_ROWS = 65_536
# Rows per read when batches are made. pyarrow and the numpy conversion cost about the same
# per call whatever the rows, so reading 256-row batches one by one made reading a parquet
# file several times slower than the models' inference; past ~64k rows a read gains nothing.
_READ_ROWS = 65_536
# Decoded bytes a read may hold (arrow, then numpy): wide files read fewer rows at a time.
# pyarrow's cost per read is large enough that 4 MiB reads (9k rows of 50 float64 features)
# took twice as long as 32 MiB ones; peak memory holds about two reads.
_READ_BYTES = 32 << 20
# Rows per block when a read's columns are stacked into the feature matrix (fits in L2).
_FILL_ROWS = 4_096
# Rows of the first read (see ``_first_read``).
_FIRST_READ_ROWS = 8_192
# What a string segment or label is assumed to take per row, for the byte budget above.
_VARIABLE_WIDTH_BYTES = 32
# Parquet column chunks are read through a buffer of this size. Unbuffered (pyarrow's
# default), each selected column chunk is read whole, so memory grows with the row-group size,
# which pandas and pyarrow set to a million rows by default: the whole file, for most files.
# Larger buffers only cost memory (one per column); 16 KiB reads as fast (measured).
_PARQUET_BUFFER_BYTES = 16 << 10
# pyarrow's streaming CSV reader parses up to ~32 blocks ahead of the consumer, so the block
# size sets its peak memory: 128 KiB keeps it near 5 MB, where the 1 MiB default reaches
# tens of MB. Wide files get larger blocks, since a row must fit in one block.
_CSV_MIN_BLOCK_BYTES = 128 << 10
_CSV_HEADER_TO_BLOCK = 64


@dataclass(frozen=True, slots=True)
class _Columns:
    """The resolved column selection of a columnar file."""

    features: tuple[str, ...]
    labels: str | None
    segments: tuple[str, ...]
    dtype: np.dtype[Any]
    #: Text feature columns: each its own ``(rows, 1)`` input of str, named after the column
    #: (for a model with one input per column). ``features`` holds the numeric ones.
    texts: tuple[str, ...] = ()

    @property
    def read(self) -> list[str]:
        """Every column to read, each once, in selection order."""
        return list(
            dict.fromkeys(
                [*self.features, *self.texts, *self.segments, *filter(None, [self.labels])]
            )
        )

    def selection(self) -> dict[str, Any]:
        """What the fingerprint records about the selection."""
        return {
            "features": [*self.features, *self.texts],
            "labels": self.labels,
            "segments": list(self.segments),
        }


def _is_numeric(pa_mod: Any, dtype: pa.DataType) -> bool:
    types = pa_mod.types
    return bool(types.is_integer(dtype) or types.is_floating(dtype) or types.is_boolean(dtype))


def _resolve_columns(
    path: Path,
    ref: DataRef,
    types: dict[str, pa.DataType],
    *,
    index_columns: Sequence[str],
) -> tuple[list[str], str | None, list[str]]:
    """Check that the named columns exist and pick the default features."""
    subject = file_subject(path)
    names = list(types)
    for role, wanted in (("label", [ref.labels] if ref.labels else []), ("segment", ref.segments)):
        for name in wanted:
            if name not in types:
                raise missing_column_error(subject, role, name, names)
    if ref.features is None:
        excluded = {*ref.segments, ref.labels, *index_columns}
        features = [n for n in names if n not in excluded]
    else:
        features = list(ref.features)
        for name in features:
            if name not in types:
                raise missing_column_error(subject, "feature", name, names)
    check_selection(subject, features=features, labels=ref.labels, segments=ref.segments)
    if not features:
        raise DataError(
            f"{subject}: no feature columns; got only the label and segment columns {names}, "
            "expected at least one feature column. Add feature columns or list them in "
            "'features'."
        )
    return features, ref.labels, list(ref.segments)


def _check_unique_columns(path: Path, names: Sequence[str]) -> None:
    """Refuse a file whose header repeats a column name.

    Columns are selected by name: with a repeated name, pyarrow's CSV reader silently keeps
    one of them (the features shift by a column and the gate runs on corrupted inputs) and
    its parquet reader fails with a KeyError.
    """
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(
            f"{file_subject(path)}: duplicate column name(s) {repeated}; got a header with "
            f"{len(names)} columns of which {len(names) - len(set(names))} repeat a name, "
            "expected unique names. Rename the duplicated columns (e.g. 'x' and 'x_2') and "
            "write the file again."
        )


def _select_columns(
    path: Path,
    pa_mod: Any,
    selected: tuple[list[str], str | None, list[str]],
    types: dict[str, Any],
) -> _Columns:
    """Numeric features (stacked into one array) apart from text ones (an input each).

    Raises:
        DataError: A feature column is neither numeric nor text (a list, a date...).
    """
    features, labels, segments = selected
    bad = [
        f"{n} ({types[n]})"
        for n in features
        if not _is_numeric(pa_mod, types[n]) and not _is_text_type(pa_mod, types[n])
    ]
    if bad:
        raise DataError(
            f"{file_subject(path)}: feature columns must be numbers or text; got "
            f"{bad}, expected int, float, bool or string columns. List them in 'segments' if "
            "they group rows, or drop them by listing the feature columns in 'features'."
        )
    numeric = [n for n in features if _is_numeric(pa_mod, types[n])]
    texts = tuple(n for n in features if n not in numeric)
    if "features" in texts and numeric:
        raise DataError(text_named_features_error(file_subject(path)))
    dtype = _feature_dtype(numeric, types) if numeric else np.dtype(np.float32)
    return _Columns(tuple(numeric), labels, tuple(segments), dtype, texts)


def _is_text_type(pa_mod: Any, dtype: Any) -> bool:
    """Text, plain or dictionary-encoded (pandas writes categoricals as dictionaries)."""
    if pa_mod.types.is_dictionary(dtype):
        return _is_text(pa_mod, dtype.value_type)
    return _is_text(pa_mod, dtype)


def _feature_dtype(features: Sequence[str], types: dict[str, Any]) -> np.dtype[Any]:
    return np.result_type(*[np.dtype(types[n].to_pandas_dtype()) for n in features])


def _decoded(pa_mod: Any, column: Any) -> Any:
    # ChunkedArray.to_numpy() mis-decodes dictionary columns holding nulls; decode first.
    if pa_mod.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _to_numpy(pa_mod: Any, column: Any) -> Array:
    """``column.to_numpy(zero_copy_only=False)`` (Array or ChunkedArray), same dtype and values.

    pyarrow's own conversion imports pandas, a quarter of a second, whatever the column's
    type. Numbers, bools and text, the columns of almost every file, are converted here from
    the arrow buffers instead; other types, and ints and bools holding nulls (which pyarrow
    turns into float and object arrays), still go through pyarrow.
    """
    types = pa_mod.types
    dtype = column.type
    if _is_text(pa_mod, dtype):
        # Python str objects, None for nulls, as pyarrow gives them.
        values = np.empty(len(column), dtype=object)
        values[:] = column.to_pylist()
        return values
    numeric = types.is_integer(dtype) or types.is_floating(dtype) or types.is_boolean(dtype)
    if not numeric or len(column) == 0 or (column.null_count and not types.is_floating(dtype)):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    chunks = column.chunks if isinstance(column, pa_mod.ChunkedArray) else [column]
    parts = [_primitive_to_numpy(pa_mod, chunk) for chunk in chunks if len(chunk)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _bits(buffer: Any, chunk: Any) -> Array:
    """A bitmap buffer of ``chunk`` (its validity, or a bool array's values) as bools."""
    n, offset = len(chunk), chunk.offset
    bits = np.unpackbits(np.frombuffer(buffer, np.uint8), count=offset + n, bitorder="little")
    return bits[offset:].astype(bool)


def _fixed_width_values(chunk: Any) -> Array:
    """The values buffer of an int or float array as a read-only numpy view (nulls unset)."""
    dtype = np.dtype(chunk.type.to_pandas_dtype())
    values = np.frombuffer(
        chunk.buffers()[1], dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize
    )
    values.flags.writeable = False  # a view of arrow's memory, read-only as pyarrow gives it
    return values


def _primitive_to_numpy(pa_mod: Any, chunk: Any) -> Array:
    """One non-empty int, float or bool array (nulls only in floats) as numpy."""
    validity, data = chunk.buffers()[:2]
    if pa_mod.types.is_boolean(chunk.type):
        return _bits(data, chunk)
    values = _fixed_width_values(chunk)
    if chunk.null_count:
        # Float nulls become NaN, whatever the buffer holds under them.
        values = np.where(_bits(validity, chunk), values, np.nan).astype(values.dtype, copy=False)
    return values


def _is_text(pa_mod: Any, dtype: Any) -> bool:
    return bool(pa_mod.types.is_string(dtype) or pa_mod.types.is_large_string(dtype))


def _text_dictionary(pa_mod: Any, column: Any) -> bool:
    """Whether ``column`` is dictionary-encoded text (text segment columns are read so)."""
    dtype = column.type
    return bool(pa_mod.types.is_dictionary(dtype) and _is_text(pa_mod, dtype.value_type))


def _dictionary_codes(pa_mod: Any, chunk: Any) -> tuple[Array, Array | None]:
    """One dictionary chunk's indices as numpy, and where they are valid (None: all are)."""
    indices = chunk.indices
    codes = _fixed_width_values(indices)
    if not indices.null_count:
        return codes, None
    valid = _bits(indices.buffers()[0], indices)
    # The index under a null is unspecified: any valid position will do, it is masked.
    return np.where(valid, codes, 0), valid


def _dictionary_words(pa_mod: Any, dictionary: Any, positions: Array) -> list[str]:
    """The dictionary's text at ``positions`` (sorted, distinct), without pyarrow.compute.

    A dictionary read from parquet grows over a column chunk (it holds the values of the
    rows read so far), so converting all of it for each read would be quadratic for an
    id-like column: past the rows asked for, only the entries used are decoded.
    """
    if len(positions) * 4 >= len(dictionary):
        words: list[str] = dictionary.to_pylist()
        if len(positions) == len(words):  # every entry, in order (distinct and sorted)
            return words
        return [words[i] for i in positions.tolist()]
    large = pa_mod.types.is_large_string(dictionary.type)  # 64-bit offsets
    _, offsets_buffer, data = dictionary.buffers()[:3]
    width = np.int64 if large else np.int32
    offsets = np.frombuffer(offsets_buffer, width, count=len(dictionary) + 1 + dictionary.offset)
    offsets = offsets[dictionary.offset :]
    text = memoryview(data) if data is not None else memoryview(b"")
    starts, stops = offsets[positions].tolist(), offsets[positions + 1].tolist()
    return [str(text[a:b], "utf-8") for a, b in zip(starts, stops, strict=True)]


def _dictionary_text(pa_mod: Any, column: Any) -> Array:
    """Dictionary-encoded text as an object array of str (None for nulls), like ``_to_numpy``.

    Each chunk's distinct values become str objects once and the rows index them: a str per
    row (``to_pylist`` of the decoded text) cost more than the rest of reading the column.
    """
    chunks = column.chunks if isinstance(column, pa_mod.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        codes, valid = _dictionary_codes(pa_mod, chunk)
        if len(chunk.dictionary) <= len(chunk):
            used, index = np.arange(len(chunk.dictionary)), codes
        else:
            used, index = np.unique(codes, return_inverse=True)
        words = np.empty(len(used) + 1, dtype=object)  # the last one: None, for nulls
        words[:-1] = _dictionary_words(pa_mod, chunk.dictionary, used)
        parts.append(words[index if valid is None else np.where(valid, index, -1)])
    if not parts:
        return np.empty(0, dtype=object)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _label_array(pa_mod: Any, column: Any) -> Array:
    return _to_numpy(pa_mod, _decoded(pa_mod, column))


def _segment_array(pa_mod: Any, column: Any) -> Array:
    column = _decoded(pa_mod, column)
    types = pa_mod.types
    if column.null_count and (types.is_integer(column.type) or types.is_boolean(column.type)):
        # to_numpy() would turn an integer column with nulls into floats (1 -> 1.0).
        values = np.empty(len(column), dtype=object)
        values[:] = [MISSING if v is None else v for v in column.to_pylist()]
        return values
    return clean_segment(_to_numpy(pa_mod, column))


def _segment_slicer(pa_mod: Any, column: Any) -> Callable[[int, int], Array]:
    """Per-batch segment values from one read's column, as ``_segment_array`` of the batch.

    The column is converted to numpy once per read and each batch cleans its own slice, so a
    batch's dtype depends only on its own rows (a batch without missing values keeps the
    column's dtype), exactly as when every batch was converted on its own.
    """
    if _text_dictionary(pa_mod, column):
        # Text segment columns are read dictionary-encoded (``ParquetDataset._read``).
        text = _dictionary_text(pa_mod, column)
        if not column.null_count and not _has_ambiguous_text(text):
            return lambda lo, hi: text[lo:hi]
        return lambda lo, hi: clean_segment(text[lo:hi])
    column = _decoded(pa_mod, column)
    types = pa_mod.types
    if column.null_count and (types.is_integer(column.type) or types.is_boolean(column.type)):
        # Rare (nullable integer segments): whether a batch becomes an object array depends on
        # the nulls in that batch, so each batch is converted from its own arrow slice.
        return lambda lo, hi: _segment_array(pa_mod, column.slice(lo, hi - lo))
    values = _to_numpy(pa_mod, column)
    if (
        not column.null_count
        and (types.is_string(column.type) or types.is_large_string(column.type))
        and not _has_ambiguous_text(values)
    ):
        # Text without nulls, none of it reading like the missing marker, has nothing to
        # clean; clean_segment would check every value in Python to find that out.
        return lambda lo, hi: values[lo:hi]
    return lambda lo, hi: clean_segment(values[lo:hi])


# Distinct values and counts are found in Python below, not with pyarrow's unique() or
# value_counts(): those load pyarrow.compute (about 0.3 s of import, more than the counting)
# and its functions convert their arguments through pyarrow's pandas shim (pandas: another
# quarter of a second).
def _has_ambiguous_text(values: Array) -> bool:
    """Whether text values hold ``<NA>`` or a value starting with ``"``.

    Checked over the distinct values (a few, for a segment column).
    """
    return any(is_ambiguous_text(v) for v in set(values.tolist()))


def _count_segments(pa_mod: Any, counter: SegmentValueCounter, record_batch: Any) -> None:
    """Add one block of a scan to ``counter``: each segment column's values and row counts."""
    counter.start_block(record_batch.num_rows)
    for name in counter.counts:
        column = record_batch.column(name)
        if _text_dictionary(pa_mod, column):
            # Text read dictionary-encoded: rows per dictionary entry, no str per row.
            codes, valid = _dictionary_codes(pa_mod, column)
            rows = np.bincount(codes if valid is None else codes[valid])
            # A batch's dictionary may hold values of later rows (one per column chunk).
            (present,) = np.nonzero(rows)
            words: list[str | None] = list(_dictionary_words(pa_mod, column.dictionary, present))
            counts = rows[present].tolist()
            if valid is not None:  # the chunk has nulls: one more value
                words, counts = [*words, None], [*counts, int((~valid).sum())]
            counter.add(name, words, counts)
            continue
        # Missing values (None, and each NaN, a distinct key here) become one key in the
        # counter.
        found = Counter(_decoded(pa_mod, column).to_pylist())
        counter.add(name, found.keys(), found.values())


def _feature_matrix(
    pa_mod: Any, table: Any, columns: _Columns
) -> tuple[Array, dict[str, tuple[str, Array]]]:
    """The read's features as one (rows, features) array, and where non-float ones are null.

    The second value maps each int or bool feature column holding nulls to (its type, its
    null mask); its null entries are zero in the matrix, and never reach a batch, since the
    batch holding the first of them raises instead (``_null_feature_error``).
    """
    n = table.num_rows
    matrix = np.empty((n, len(columns.features)), dtype=columns.dtype)
    nulls: dict[str, tuple[str, Array]] = {}
    values: list[Array] = []
    for name in columns.features:
        column = table.column(name)
        if column.null_count and not pa_mod.types.is_floating(column.type):
            nulls[name] = (str(column.type), _to_numpy(pa_mod, column.is_null()))
            # Filled in arrow, not numpy: to_numpy() of an int column with nulls goes through
            # float64, which would round the large integers of the rows before the null.
            column = column.fill_null(pa_mod.scalar(0).cast(column.type))
        values.append(_to_numpy(pa_mod, column))
    # Written a block of rows at a time: a whole column written into the row-major matrix
    # touches a cache line per row, and was three times slower (measured, 200k x 50).
    for lo in range(0, n, _FILL_ROWS):
        hi = min(lo + _FILL_ROWS, n)
        for j, column_values in enumerate(values):
            matrix[lo:hi, j] = column_values[lo:hi]
    return matrix, nulls


def _null_feature_error(path: Path, name: str, dtype: str, row: int) -> DataError:
    fix = (
        "Fill the missing values (e.g. with the text the model was trained to read as missing)."
        if dtype == "text"
        else "Fill the missing values, or store the column as float so they become NaN."
    )
    return DataError(
        f"{file_subject(path)}: feature column {name!r} ({dtype}) has missing values; got one "
        f"at row {row}, expected none in a non-float column. {fix}"
    )


def _text_features(
    pa_mod: Any, table: Any, columns: _Columns, nulls: dict[str, tuple[str, Array]]
) -> dict[str, Array]:
    """Each text feature column as a ``(rows, 1)`` object array of str (None where null).

    Null positions go to ``nulls`` (as for int columns): the batch holding the first raises.
    """
    out = {}
    for name in columns.texts:
        column = table.column(name)
        if _text_dictionary(pa_mod, column):
            values = _dictionary_text(pa_mod, column)
        else:
            values = _to_numpy(pa_mod, _decoded(pa_mod, column))
        if column.null_count:
            nulls[name] = ("text", _to_numpy(pa_mod, column.is_null()))
        out[name] = values.reshape(-1, 1)
    return out


@dataclass(frozen=True)
class _Read:
    """One read converted to numpy: the arrays its batches are views of."""

    n: int
    matrix: Array | None  # None: no numeric feature column
    nulls: dict[str, tuple[str, Array]]
    labels: Array | None
    segments: dict[str, Callable[[int, int], Array]]
    texts: dict[str, Array]
    finite: bool  # every value of ``matrix`` is finite (its batches say so: Batch.inputs_finite)


def _convert_read(pa_mod: Any, table: Any, columns: _Columns) -> _Read:
    """Convert every column of one read to numpy, once.

    Batches are views of these arrays (a batch kept alive keeps its read's arrays): converting
    each batch's columns on its own cost more than the models' inference at small batch sizes.
    """
    matrix: Array | None = None
    nulls: dict[str, tuple[str, Array]] = {}
    if columns.features:
        matrix, nulls = _feature_matrix(pa_mod, table, columns)
    texts = _text_features(pa_mod, table, columns, nulls)
    labels = None if columns.labels is None else _label_array(pa_mod, table.column(columns.labels))
    segments = {name: _segment_slicer(pa_mod, table.column(name)) for name in columns.segments}
    # Checked once per read (on the reading thread) for all its batches: the run's thread
    # then skips its own check of each batch, which released the GIL for the sum and waited
    # for the scoring thread to hand it back.
    finite = matrix is None or matrix.dtype.kind not in "fc" or all_finite(matrix)
    return _Read(table.num_rows, matrix, nulls, labels, segments, texts, finite)


def _split_read(path: Path, read: _Read, start: int, size: int) -> Iterator[Batch]:
    """Cut one read (rows ``start ..``) into batches of ``size`` rows.

    Batches and errors are the same as when each batch was converted alone.
    """
    for lo in range(0, read.n, size):
        hi = min(lo + size, read.n)
        # The first int/bool column (in feature order) with a null in this batch, as the
        # per-batch conversion found it.
        for name, (dtype, mask) in read.nulls.items():
            hit = np.flatnonzero(mask[lo:hi])
            if hit.size:
                raise _null_feature_error(path, name, dtype, start + lo + int(hit[0]))
        inputs = {} if read.matrix is None else {"features": read.matrix[lo:hi]}
        inputs.update((name, values[lo:hi]) for name, values in read.texts.items())
        yield Batch(
            inputs=inputs,
            labels=None if read.labels is None else read.labels[lo:hi],
            row_ids=row_ids(start + lo, start + hi),
            segments={name: cut(lo, hi) for name, cut in read.segments.items()},
            inputs_finite=read.finite,
        )


def _read_rows(size: int, row_bytes: int, *, limit: int | None = None) -> int:
    """Rows per read: a multiple of the batch size near ``_READ_ROWS``, within the byte budget.

    A multiple, so that batch boundaries fall at multiples of ``size`` whatever the read size.
    ``limit`` (parquet: the largest row group) caps it: a file written in small row groups
    was written to be read in small pieces.
    """
    target = min(_READ_ROWS, _READ_BYTES // max(row_bytes, 1))
    if limit is not None:
        target = min(target, limit)
    return max(size, target - target % size)


def _row_bytes(pa_mod: Any, types: Sequence[Any]) -> int:
    """Decoded bytes per row of the given arrow types (a guess for variable-width ones)."""
    total = 0
    for dtype in types:
        if pa_mod.types.is_dictionary(dtype):  # decoded to its values (usually strings)
            total += _VARIABLE_WIDTH_BYTES
            continue
        try:
            total += max(1, dtype.bit_width // 8)
        except ValueError:  # variable width (strings) or nested
            total += _VARIABLE_WIDTH_BYTES
    return total


def _rechunk(pa_mod: Any, batches: Iterator[Any], size: int, first: int) -> Iterator[Any]:
    """Re-cut a stream of record batches into tables of ``first``, then ``size`` rows each.

    The last table may be shorter. Slicing is zero-copy; only the rows of one output table
    (plus one input batch) are held.
    """
    pending: list[Any] = []
    held = 0
    want = first
    for record_batch in batches:
        pending.append(record_batch)
        held += record_batch.num_rows
        if held < want:
            continue
        table = pa_mod.Table.from_batches(pending)
        offset = 0
        while held - offset >= want:
            yield table.slice(offset, want)
            offset += want
            want = size
        rest = table.slice(offset)
        pending = [b for b in rest.to_batches() if b.num_rows]
        held = rest.num_rows
    if held:
        yield pa_mod.Table.from_batches(pending)


def _first_read(read: int, size: int) -> int:
    """Rows of the first read: a multiple of the batch size near ``_FIRST_READ_ROWS``.

    The models wait for the first read and nothing else; later reads are decoded while the
    models run. A full first read kept them idle for its whole decode (about 0.1 s for
    65,536 rows of 50 columns, longer while the run's other threads start).
    """
    target = min(read, _FIRST_READ_ROWS)
    return max(size, target - target % size)


def _split_stream(
    path: Path, pa_mod: Any, batches: Iterator[Any], columns: _Columns, read: int, size: int
) -> Iterator[Batch]:
    """Batches of ``size`` rows from record batches, converted to numpy ``read`` rows at a time.

    The next read is decoded and converted on a worker thread while the models run on the
    batches of the current one (pyarrow and numpy's copies release the GIL), so reading
    overlaps inference; at most one read waits, so memory holds two reads at most.
    """
    tables = _rechunk(pa_mod, batches, read, _first_read(read, size))
    reads = (_convert_read(pa_mod, table, columns) for table in tables)
    start = 0
    for converted in read_ahead(reads):
        yield from _split_read(path, converted, start, size)
        start += converted.n


class _ArrowFileDataset:
    """What the parquet and CSV datasets share: length, columns and the file fingerprint."""

    _kind: str
    _path: Path
    _n_rows: int
    _columns: _Columns
    _fingerprint: str | None
    _segment_counts: dict[str, dict[Any, int]] | None = None

    def __len__(self) -> int:
        return self._n_rows

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r}, rows={self._n_rows})"

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """Names of the segment columns, in order."""
        return self._columns.segments

    @property
    def has_labels(self) -> bool:
        """Whether batches carry labels."""
        return self._columns.labels is not None

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The feature columns, in the order they are stacked."""
        return self._columns.features

    @property
    def segment_value_counts(self) -> dict[str, dict[Any, int]] | None:
        """Rows per distinct value of each segment column, counted when the file was opened.

        None when nothing was counted (``data.max_segment_values: null``).
        """
        return self._segment_counts

    def _segment_counter(self, ref: DataRef) -> SegmentValueCounter | None:
        """A counter of the segment values for the scan at open, or None when not needed."""
        if not self._columns.segments or ref.max_segment_values is None:
            return None
        return SegmentValueCounter(
            file_subject(self._path), self._columns.segments, ref.max_segment_values
        )

    def fingerprint(self) -> str:
        """Hex sha256 of the file's bytes (streamed) and the column selection."""
        if self._fingerprint is None:
            self._fingerprint = hash_file(
                self._path, kind=self._kind, selection=self._columns.selection()
            )
        return self._fingerprint


class ParquetDataset(_ArrowFileDataset):
    """A parquet file, streamed a batch at a time with ``ParquetFile.iter_batches``.

    The row count comes from the file's metadata. Opening reads the metadata and, when there
    are label or segment columns, scans those columns once to refuse missing labels and
    segment columns of too many values early.
    Column chunks are read through a small buffer, so peak memory is bounded by one read
    (see ``_READ_ROWS``), one batch and a data page per column (pyarrow writes pages of 1 MB),
    not by the row-group size.

    Args:
        path: The parquet file (already resolved).
        ref: The column selection.

    Raises:
        DataError: The file cannot be read, has no rows, lacks a named column, has a
            non-numeric feature column, has missing labels, or has a segment column with more
            than ``data.max_segment_values`` distinct values.
    """

    _kind = "parquet"

    def __init__(self, path: Path, ref: DataRef) -> None:
        self._pa = lazy_import("pyarrow", extra="data")
        self._pq = lazy_import("pyarrow.parquet", extra="data")
        self._path = path
        try:
            with self._pq.ParquetFile(path) as parquet:
                schema = parquet.schema_arrow
                metadata = parquet.metadata
                self._n_rows = int(metadata.num_rows)
                groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        except (self._pa.ArrowException, OSError) as exc:
            raise read_error(path, "parquet", exc) from exc
        _check_unique_columns(path, [field.name for field in schema])
        types = {field.name: field.type for field in schema}
        pandas_meta = schema.pandas_metadata or {}
        index_columns = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
        selected = _resolve_columns(path, ref, types, index_columns=index_columns)
        self._columns = _select_columns(path, self._pa, selected, types)
        labels = self._columns.labels
        self._row_bytes = _row_bytes(self._pa, [types[name] for name in self._columns.read])
        self._row_group_rows = max(groups, default=0)
        # Text segment and feature columns are read dictionary-encoded: a few str objects per
        # read instead of one per row (see ``_dictionary_text``).
        self._text_segments = [
            name
            for name in dict.fromkeys([*self._columns.segments, *self._columns.texts])
            if name != labels and _is_text(self._pa, types[name])
        ]
        if self._n_rows == 0:
            raise no_rows_error(path)
        self._scan(labels, self._segment_counter(ref))
        self._fingerprint: str | None = None

    def _scan(self, labels: str | None, counter: SegmentValueCounter | None) -> None:
        """One pass over the label and segment columns, before any model runs.

        Refuses missing labels, and segment columns with more distinct values than
        ``data.max_segment_values`` (stopping at the first block that crosses it).
        """
        columns = [*([labels] if labels else []), *(counter.counts if counter else [])]
        if not columns:
            return
        n_missing = 0
        for record_batch in self._read(columns, _SCAN_ROWS):
            if labels is not None:
                n_missing += count_missing(_label_array(self._pa, record_batch.column(labels)))
            if counter is not None:
                _count_segments(self._pa, counter, record_batch)
        if labels is not None and n_missing:
            raise missing_labels_error(file_subject(self._path), labels, n_missing, self._n_rows)
        self._segment_counts = None if counter is None else counter.counts

    def _read(self, columns: list[str], size: int) -> Iterator[Any]:
        try:
            # pre_buffer (pyarrow's default) reads every selected column chunk of the file
            # up front, and an unbuffered stream reads each column chunk whole; with neither,
            # a page per column is in memory.
            with self._pq.ParquetFile(
                self._path,
                pre_buffer=False,
                buffer_size=_PARQUET_BUFFER_BYTES,
                read_dictionary=self._text_segments,
            ) as parquet:
                yield from parquet.iter_batches(batch_size=size, columns=columns)
        except (self._pa.ArrowException, OSError) as exc:
            raise read_error(self._path, "parquet", exc) from exc

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` rows (the last may be smaller), in row order.

        Raises:
            InvalidParameterError: ``batch_size`` is not a positive int.
            DataError: The file cannot be read, or an int/bool feature has a missing value.
        """
        size = check_batch_size(batch_size)
        return self._iter_batches(size)

    def _iter_batches(self, size: int) -> Iterator[Batch]:
        read = _read_rows(size, self._row_bytes, limit=self._row_group_rows)
        # Record batches of the first read's size: the first read is ready after decoding
        # that many rows, and later reads join several (zero-copy).
        stream = self._read(self._columns.read, _first_read(read, size))
        return _split_stream(self._path, self._pa, stream, self._columns, read, size)


_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


def _check_csv_text(path: Path, head: bytes) -> None:
    """Refuse compressed or binary content before pyarrow quotes it back as garbage."""
    if path.name.lower().endswith(_COMPRESSED_SUFFIXES):
        return  # pyarrow decompresses by extension
    if head.startswith(b"\x1f\x8b"):
        raise DataError(
            f"{file_subject(path)}: looks like a gzip-compressed file; got gzip data in a file "
            f"named {path.name!r}, expected CSV text. Decompress it, or name it "
            f"{path.stem}.csv.gz."
        )
    sample = head[:4096]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        binary = exc.start < len(sample) - 3  # not just a character cut at the sample's end
    else:
        binary = False
    if binary or b"\x00" in sample:
        raise DataError(
            f"{file_subject(path)}: not a text CSV file; got binary data (starting with "
            f"{head[:8].hex()}), expected UTF-8 CSV text with a header row. Check the file "
            "(and 'format' in the spec)."
        )


class CsvDataset(_ArrowFileDataset):
    """A CSV file with a header row, streamed with ``pyarrow.csv.open_csv``.

    Opening costs one extra pass over the whole file: the streaming reader cannot know the
    row count in advance, so the file is parsed once (selected columns only) to count rows,
    count missing labels and segment values, and surface any parse error before the models
    run. Blocks of
    128 KiB (more for very wide files) keep peak memory to a few MB whatever the file size.

    Column types are inferred by pyarrow from the file's first block (1 MiB) and then fixed
    for the whole file. Int and float feature columns are read as float64 whatever was
    inferred, because CSV text has no binary dtype and an integer-looking first block must not
    make a later ``1.5`` an error; bool feature columns stay bool. Empty fields and
    ``NA``/``NaN``/``null`` are missing values, in string columns too.

    Args:
        path: The CSV file (already resolved).
        ref: The column selection.

    Raises:
        DataError: The file cannot be parsed, has no rows, lacks a named column, has a
            non-numeric feature column, has missing labels, or has a segment column with more
            than ``data.max_segment_values`` distinct values.
    """

    _kind = "csv"

    def __init__(self, path: Path, ref: DataRef) -> None:
        self._pa = lazy_import("pyarrow", extra="data")
        self._csv = lazy_import("pyarrow.csv", extra="data")
        self._path = path
        self._read_options = self._csv.ReadOptions(block_size=self._block_size())
        inferred = self._infer_types()
        selected = _resolve_columns(path, ref, inferred, index_columns=[""])
        types = self._pinned_types(inferred, selected[0])
        self._columns = _select_columns(path, self._pa, selected, types)
        read = self._columns.read
        self._row_bytes = _row_bytes(self._pa, [types[name] for name in read])
        self._convert = self._csv.ConvertOptions(
            include_columns=read,
            column_types={name: types[name] for name in read},
            strings_can_be_null=True,
        )
        self._n_rows = self._count_rows(self._segment_counter(ref))
        self._fingerprint: str | None = None

    def _block_size(self) -> int:
        try:
            with self._path.open("rb") as stream:
                header = stream.readline(1 << 24)
        except OSError as exc:
            raise read_error(self._path, "CSV", exc) from exc
        if not header:
            raise no_rows_error(self._path)
        _check_csv_text(self._path, header)
        return max(_CSV_MIN_BLOCK_BYTES, _CSV_HEADER_TO_BLOCK * len(header))

    def _open(self, convert: Any) -> Any:
        return self._csv.open_csv(
            self._path, read_options=self._read_options, convert_options=convert
        )

    def _infer_types(self) -> dict[str, Any]:
        options = self._csv.ConvertOptions(strings_can_be_null=True)
        try:
            with self._open(options) as reader:
                schema = reader.schema
        except (self._pa.ArrowException, OSError) as exc:
            raise read_error(self._path, "CSV", exc) from exc
        _check_unique_columns(self._path, [field.name for field in schema])
        return {field.name: field.type for field in schema}

    def _pinned_types(self, inferred: dict[str, Any], features: Sequence[str]) -> dict[str, Any]:
        """Fix every column's type for the whole file, from what the first block showed."""
        types = self._pa.types
        pinned = dict(inferred)
        for name, dtype in inferred.items():
            numeric_or_empty = types.is_integer(dtype) or types.is_floating(dtype)
            if name in features and (numeric_or_empty or types.is_null(dtype)):
                pinned[name] = self._pa.float64()
            elif types.is_null(dtype):
                # Empty throughout the first block: later blocks may hold text.
                pinned[name] = self._pa.string()
        return pinned

    def _count_rows(self, counter: SegmentValueCounter | None) -> int:
        """Rows, checked labels and counted segment values, in the one pass at open."""
        labels = self._columns.labels
        n_rows = 0
        n_missing = 0
        for record_batch in self._stream():
            n_rows += record_batch.num_rows
            if labels is not None:
                n_missing += count_missing(_label_array(self._pa, record_batch.column(labels)))
            if counter is not None:
                _count_segments(self._pa, counter, record_batch)
        if n_rows == 0:
            raise no_rows_error(self._path)
        if labels is not None and n_missing:
            raise missing_labels_error(file_subject(self._path), labels, n_missing, n_rows)
        self._segment_counts = None if counter is None else counter.counts
        return n_rows

    def _stream(self) -> Iterator[Any]:
        try:
            with self._open(self._convert) as reader:
                yield from reader
        except (self._pa.ArrowException, OSError) as exc:
            raise read_error(self._path, "CSV", exc) from exc

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` rows (the last may be smaller), in row order.

        Raises:
            InvalidParameterError: ``batch_size`` is not a positive int.
            DataError: The file cannot be parsed (e.g. it changed since it was opened).
        """
        size = check_batch_size(batch_size)
        return self._iter_batches(size)

    def _iter_batches(self, size: int) -> Iterator[Batch]:
        read = _read_rows(size, self._row_bytes)
        return _split_stream(self._path, self._pa, self._stream(), self._columns, read, size)
