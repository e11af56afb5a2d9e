"""Opening data files: ``load_dataset`` and the numpy readers (.npy, .npz).

Formats are chosen by ``DataRef.format`` or, when it is ``"auto"``, by the file's extension.
Parquet and CSV are streamed through pyarrow (see ``compval.data._arrow``); .npy is
memory-mapped; .npz members are loaded whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compval.data._arrow import CsvDataset, ParquetDataset
from compval.data._batch import Batch, Dataset
from compval.data._common import (
    check_selection,
    count_missing,
    file_subject,
    hash_file,
    missing_column_error,
    missing_labels_error,
    no_rows_error,
    read_error,
)
from compval.data._dataset import ArrayDataset
from compval.errors import DataError, InvalidParameterError
from compval.types import Array

if TYPE_CHECKING:
    from compval.spec import DataRef

__all__ = ["NpyDataset", "NpzDataset", "load_dataset"]

#: Extension -> format, for ``format: auto``.
SUPPORTED_EXTENSIONS: Mapping[str, str] = {
    ".npy": "npy",
    ".npz": "npz",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Read errors that numpy's loaders raise for corrupt or foreign files.
_NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _magic(path: Path) -> bytes:
    """The first bytes of a file, to tell .npy from .npz before numpy guesses."""
    try:
        with path.open("rb") as stream:
            return stream.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise read_error(path, "numpy data", exc) from exc


class _FileArrays:
    """Delegates batching to an ArrayDataset; the fingerprint hashes the file instead."""

    _kind = ""

    def __init__(self, path: Path, arrays: ArrayDataset, selection: dict[str, Any]) -> None:
        self._path = path
        self._arrays = arrays
        self._selection = selection
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r}, rows={len(self._arrays)})"

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the feature arrays, in order."""
        return self._arrays.input_names

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """Names of the segment columns, in order."""
        return self._arrays.segment_columns

    @property
    def has_labels(self) -> bool:
        """Whether batches carry labels."""
        return self._arrays.has_labels

    @property
    def segment_value_counts(self) -> dict[str, dict[Any, int]]:
        """Rows per distinct value of each segment column."""
        return self._arrays.segment_value_counts

    def fingerprint(self) -> str:
        """Hex sha256 of the file's bytes (streamed) and the key selection."""
        if self._fingerprint is None:
            self._fingerprint = hash_file(self._path, kind=self._kind, selection=self._selection)
        return self._fingerprint

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` rows (the last may be smaller), in row order.

        Raises:
            InvalidParameterError: ``batch_size`` is not a positive int.
        """
        return self._arrays.batches(batch_size)


class NpyDataset(_FileArrays):
    """A .npy file of features, memory-mapped: rows are read from disk as batches need them.

    A .npy file holds one array, so the dataset is unlabelled and has no segments; use a
    .npz file for labels and segments.

    Args:
        path: The .npy file (already resolved).
        ref: The data reference; ``labels``, ``features`` and ``segments`` must be unset.

    Raises:
        DataError: A label, feature or segment name is given, the file cannot be
            memory-mapped (corrupt, or an object array), the array is a scalar, or it has no
            rows.
    """

    _kind = "npy"

    def __init__(self, path: Path, ref: DataRef) -> None:
        for field, value in (
            ("labels", ref.labels),
            ("features", ref.features),
            ("segments", ref.segments),
        ):
            if value:
                raise DataError(
                    f"{file_subject(path)}: a .npy file holds one array, so it has no named "
                    f"columns; got {field}={value!r}, expected {field} unset. Save features, "
                    "labels and segments together with numpy.savez and use the .npz file."
                )
        if _magic(path).startswith(_ZIP_MAGIC):
            raise DataError(
                f"{file_subject(path)}: is not a .npy file; got a .npz archive, expected one "
                "array. Set 'format: npz' or rename the file to .npz."
            )
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except _NUMPY_READ_ERRORS as exc:
            raise read_error(path, "npy", exc) from exc
        if array.ndim == 0:
            raise DataError(
                f"{file_subject(path)}: holds a scalar; got shape (), expected an array with one "
                "row per sample. Save an array of shape (rows, ...)."
            )
        if array.shape[0] == 0:
            raise no_rows_error(path)
        super().__init__(path, ArrayDataset(array), {"array": "features"})


def _pick_default(
    path: Path, role: str, candidates: Sequence[str], keys: Sequence[str], taken: set[str]
) -> str | None:
    found = [k for k in candidates if k in keys and k not in taken]
    if len(found) > 1:
        raise DataError(
            f"{file_subject(path)}: the {role} key is ambiguous; got keys {found}, expected only "
            f"one of {list(candidates)}. Name the {role} key explicitly in the spec "
            f"('{role}s')."
        )
    return found[0] if found else None


class NpzDataset(_FileArrays):
    """A .npz archive of named arrays.

    The arrays it uses (features, labels, segments) are loaded whole into memory when the
    dataset is opened: numpy cannot memory-map members of a zip archive. For data larger than
    memory, use parquet or .npy.

    Keys: features are ``ref.features`` (several keys give several named inputs, for
    multi-input models), else the key ``"x"`` or ``"features"``; labels are ``ref.labels``,
    else the key ``"y"`` or ``"labels"`` when present; segments are ``ref.segments``.

    Args:
        path: The .npz file (already resolved).
        ref: The key selection.

    Raises:
        DataError: The archive cannot be read, holds object arrays (pickles are refused), a
            named key is missing, the default keys are absent or ambiguous, arrays differ in
            length, a label is missing, there are no rows, or a segment key has more than
            ``data.max_segment_values`` distinct values.
    """

    _kind = "npz"

    def __init__(self, path: Path, ref: DataRef) -> None:
        subject = file_subject(path)
        if _magic(path).startswith(_NPY_MAGIC):
            raise DataError(
                f"{subject}: is not a .npz archive; got a single .npy array, expected named "
                "arrays. Set 'format: npy' or rename the file to .npy."
            )
        try:
            # Opened here, not by np.load: it leaks the handle when the zip is corrupt.
            with path.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
                keys = list(archive.files)
        except _NUMPY_READ_ERRORS as exc:
            raise read_error(path, "npz", exc) from exc

        for name in [*([ref.labels] if ref.labels else []), *ref.segments]:
            if name not in keys:
                role = "label" if name == ref.labels else "segment"
                raise missing_column_error(subject, role, name, keys, what="key")
        if ref.features is not None:
            features = list(ref.features)
            for name in features:
                if name not in keys:
                    raise missing_column_error(subject, "feature", name, keys, what="key")
        else:
            taken = {*ref.segments, *([ref.labels] if ref.labels else [])}
            default = _pick_default(path, "feature", ("x", "features"), keys, taken)
            if default is None:
                raise DataError(
                    f"{subject}: no feature key; got keys {keys}, expected 'x' or 'features'. "
                    "Name the feature keys in the spec ('features')."
                )
            features = [default]
        labels = ref.labels
        if labels is None:
            labels = _pick_default(path, "label", ("y", "labels"), keys, {*features, *ref.segments})
        segments = list(ref.segments)
        check_selection(subject, features=features, labels=labels, segments=segments, what="key")

        try:
            with path.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in dict.fromkeys([*features, *segments])}
                label_values = None if labels is None else archive[labels]
        except _NUMPY_READ_ERRORS as exc:
            raise read_error(path, "npz", exc) from exc
        dataset = self._build(path, arrays, features, labels, label_values, segments)
        dataset.check_segment_values(ref.max_segment_values, subject=subject)
        selection = {"features": features, "labels": labels, "segments": segments}
        super().__init__(path, dataset, selection)

    @staticmethod
    def _build(
        path: Path,
        arrays: dict[str, Array],
        features: list[str],
        labels: str | None,
        label_values: Array | None,
        segments: list[str],
    ) -> ArrayDataset:
        subject = file_subject(path)
        for name in features:
            if arrays[name].ndim == 0:
                raise DataError(
                    f"{subject}: feature key {name!r} holds a scalar; got shape (), expected "
                    "one row per sample. Save an array of shape (rows, ...)."
                )
        columns = {f"segment key {n!r}": arrays[n] for n in segments}
        if label_values is not None:
            columns[f"label key {labels!r}"] = label_values
        for role, values in columns.items():
            if values.ndim != 1:
                raise DataError(
                    f"{subject}: {role} must be 1-D; got shape {values.shape}, expected "
                    "(rows,). Save one value per row (class indices, not one-hot)."
                )
        lengths = {f"feature key {n!r}": int(arrays[n].shape[0]) for n in features}
        lengths.update({role: int(values.shape[0]) for role, values in columns.items()})
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{role}: {n}" for role, n in lengths.items())
            raise DataError(
                f"{subject}: the arrays have different numbers of rows; got {listed}, "
                "expected the same number everywhere. Save arrays from the same rows."
            )
        n_rows = next(iter(lengths.values()))
        if n_rows == 0:
            raise no_rows_error(path)
        if label_values is not None and labels is not None:
            n_missing = count_missing(label_values)
            if n_missing:
                raise missing_labels_error(subject, labels, n_missing, n_rows)
        inputs: Array | dict[str, Array] = (
            arrays[features[0]] if len(features) == 1 else {n: arrays[n] for n in features}
        )
        return ArrayDataset(inputs, labels=label_values, segments={n: arrays[n] for n in segments})


def _resolve_path(ref: DataRef, base_dir: Path) -> Path:
    path = Path(ref.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    path = path.resolve()
    if not path.exists():
        raise DataError(
            f"data file {ref.path!r}: not found; got resolved path {str(path)!r}, expected an "
            f"existing file. Check 'data.path' (a relative path is resolved against "
            f"{str(base_dir)!r})."
        )
    if not path.is_file():
        raise DataError(
            f"data file {ref.path!r}: is not a file; got {str(path)!r}, expected a .npy, .npz, "
            ".csv or .parquet file. Point 'data.path' at the file itself."
        )
    return path


def _detect_format(ref: DataRef, path: Path) -> str:
    if ref.format != "auto":
        return ref.format
    suffix = path.suffix.lower()
    if path.name.lower().endswith(".csv.gz"):
        suffix = ".csv"  # pyarrow's CSV reader decompresses by the path's extension
    found = SUPPORTED_EXTENSIONS.get(suffix)
    if found is None:
        supported = ", ".join(SUPPORTED_EXTENSIONS)
        raise DataError(
            f"{file_subject(path)}: unknown data format; got extension {suffix or '(none)'!r}, "
            f"expected one of {supported}. Rename the file or set 'format' (npy, npz, csv, "
            "parquet) in the spec."
        )
    return found


def load_dataset(ref: DataRef, *, base_dir: Path) -> Dataset:
    """Open the data file a DataRef names, as a Dataset (extra ``data`` for parquet and CSV).

    Nothing but metadata (and, for CSV, one counting pass) is read here; rows are read as
    ``batches()`` asks for them, except for .npz members, which load whole.

    Args:
        ref: The file, its format, and the label, feature and segment columns (or keys).
        base_dir: Directory a relative ``ref.path`` is resolved against (usually the spec
            file's directory).

    Returns:
        A Dataset: for .npy a memory-mapped unlabelled one, for .npz an in-memory one, for
        parquet and CSV a streaming one.

    Raises:
        InvalidParameterError: ``ref`` is not a DataRef.
        DataError: The file is missing, of an unknown format, unreadable or corrupt, has no
            rows, lacks a named column, has non-numeric features, or has missing labels.
        MissingDependencyError: pyarrow is needed (parquet, CSV) and not installed.
    """
    # Imported here so that ``import compval.data`` does not pull in the spec (and pydantic).
    from compval.spec import DataRef

    if not isinstance(ref, DataRef):
        raise InvalidParameterError(
            f"load_dataset(): 'ref' must be a DataRef; got {type(ref).__name__}, expected "
            "compval.spec DataRef(path=...). Build one with DataRef(path='data.parquet')."
        )
    path = _resolve_path(ref, base_dir)
    kind = _detect_format(ref, path)
    if ref.text is not None:
        from compval.data._text import load_text_dataset

        return load_text_dataset(ref, path, kind, base_dir=base_dir)
    if kind == "npy":
        return NpyDataset(path, ref)
    if kind == "npz":
        return NpzDataset(path, ref)
    if kind == "csv":
        return CsvDataset(path, ref)
    return ParquetDataset(path, ref)
