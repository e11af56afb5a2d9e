"""``as_dataset``: turn whatever the user passed into a Dataset."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from compval.data._batch import Dataset
from compval.data._common import as_name_list
from compval.data._dataset import ArrayDataset, from_dataframe
from compval.data._readers import load_dataset
from compval.errors import InvalidParameterError

__all__ = ["as_dataset"]

_ACCEPTED = (
    "a Dataset, a pandas DataFrame, an (X, y) tuple, a numpy array, or a path to a .npy, "
    ".npz, .csv or .parquet file"
)


def _no_columns(kind: str, labels: str | None, segments: Sequence[str], features: object) -> None:
    given = {
        name: value
        for name, value in (("labels", labels), ("segments", segments), ("features", features))
        if value
    }
    if given:
        raise InvalidParameterError(
            f"as_dataset(): column names do not apply to {kind}; got {given}, expected none. "
            "Column names select columns of a DataFrame or a file; leave them out here."
        )


def as_dataset(
    obj: object,
    *,
    labels: str | None = None,
    segments: Sequence[str] = (),
    features: Sequence[str] | None = None,
) -> Dataset:
    """Turn ``obj`` into a Dataset.

    Accepted: a Dataset (returned as is); a pandas DataFrame (``from_dataframe``); an
    ``(X, y)`` tuple (a labelled ArrayDataset; ``X`` may be a mapping of input name to array);
    a numpy array (an unlabelled ArrayDataset); a ``str`` or ``Path`` naming a data file
    (``load_dataset``, relative to the working directory).

    Args:
        obj: The data.
        labels: Label column, for a DataFrame or a file.
        segments: Segment columns, for a DataFrame or a file.
        features: Feature columns, for a DataFrame or a file; default: all other columns.

    Returns:
        A Dataset.

    Raises:
        InvalidParameterError: ``obj`` is of another type, a tuple does not have two items,
            or column names are given for an object that has no columns.
        DataError: The data itself is unusable (see ``from_dataframe`` and ``load_dataset``).

    Example:
        >>> import numpy as np
        >>> len(as_dataset((np.zeros((4, 2)), np.array([0, 1, 0, 1]))))
        4
    """
    segment_list = as_name_list("as_dataset()", "segments", segments) or []
    feature_list = as_name_list("as_dataset()", "features", features)
    if isinstance(obj, Dataset):
        _no_columns("a Dataset", labels, segment_list, feature_list)
        return obj
    # A DataFrame can only exist if pandas was imported already; no need to import it here.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(obj, pandas.DataFrame):
        return from_dataframe(obj, labels=labels, segments=segment_list, features=feature_list)
    if isinstance(obj, tuple):
        if len(obj) != 2:
            raise InvalidParameterError(
                f"as_dataset(): a tuple must be (X, y); got a tuple of {len(obj)} items, "
                "expected 2. Pass (features, labels), or build an ArrayDataset for segments."
            )
        _no_columns("an (X, y) tuple", labels, segment_list, feature_list)
        return ArrayDataset(obj[0], labels=obj[1])
    if isinstance(obj, np.ndarray):
        _no_columns("a numpy array", labels, segment_list, feature_list)
        return ArrayDataset(obj)
    if isinstance(obj, str | Path):
        # Imported here so that ``import compval.data`` does not pull in the spec (and pydantic).
        from compval.spec import DataRef

        ref = DataRef(path=str(obj), labels=labels, features=feature_list, segments=segment_list)
        return load_dataset(ref, base_dir=Path.cwd())
    raise InvalidParameterError(
        f"as_dataset(): cannot make a dataset from {type(obj).__name__}; got {obj!r:.80}, "
        f"expected {_ACCEPTED}. Convert the data to one of these."
    )
