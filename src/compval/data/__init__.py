"""Data: batches of inputs, labels and segment values, from arrays, DataFrames or files.

Every source is a ``Dataset``: it knows its length, its segment columns, whether it has
labels, a content fingerprint, and yields ``Batch`` objects in row order. Files are opened
with ``load_dataset`` (.npy memory-mapped, .npz in memory, parquet and CSV streamed through
pyarrow); ``as_dataset`` accepts whatever a user is likely to pass. pandas and pyarrow are
imported only when a DataFrame, parquet or CSV is used (extra ``data``). A text column
is tokenized per batch with a local tokenizer (``TextDataset``, ``load_tokenizer``; extra
``text``; see ``compval.data._text``).
"""

from __future__ import annotations

from compval._public import name_public_functions
from compval.data._batch import Batch, Dataset, feature_names
from compval.data._convert import as_dataset
from compval.data._dataset import ArrayDataset, from_dataframe
from compval.data._readers import load_dataset
from compval.data._text import (
    TEXT_INPUTS,
    TextDataset,
    TextTokenizer,
    load_text_dataset,
    load_tokenizer,
)

__all__ = [
    "TEXT_INPUTS",
    "ArrayDataset",
    "Batch",
    "Dataset",
    "as_dataset",
    "feature_names",
    "from_dataframe",
    "TextDataset",
    "TextTokenizer",
    "load_dataset",
    "load_text_dataset",
    "load_tokenizer",
]

name_public_functions(__name__, globals(), __all__)
