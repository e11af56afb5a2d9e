"""Text in: a text column plus a local tokenizer, tokenized per batch (extra ``text``).

The API, for tasks and users alike:

* ``load_tokenizer(path, max_length=512)`` opens a tokenizer from a LOCAL folder (or a
  ``tokenizer.json`` file) and never downloads: a folder with ``tokenizer.json`` is read with
  Hugging Face ``tokenizers``; any other folder with ``transformers.AutoTokenizer``
  (``local_files_only=True``). It returns a :class:`TextTokenizer`, whose
  ``encode(texts)`` gives ``{"input_ids", "attention_mask", "token_type_ids",
  "position_ids"}``, int64 arrays of shape (rows, longest row of the batch), truncated to
  ``max_length`` tokens and padded on the right with the tokenizer's pad id.
* ``TextDataset(texts, tokenizer, labels=None, segments=None)`` is a :class:`Dataset` whose
  batches hold those arrays as the model's named inputs, tokenized when the batch is made
  (one batch of tokens in memory at a time). ``load_dataset`` builds one from a spec's
  ``data: {path: eval.parquet, text: text, tokenizer: ./tok, max_length: 512}`` (parquet or
  CSV).
* The engine feeds each model only the inputs it declares (``compval.adapters.bind_inputs``):
  ``token_type_ids`` and ``position_ids`` are dropped for a model that does not take them;
  ``attention_mask`` too, but only while the batch has no padding (a model that cannot mask
  padding would otherwise silently read the pad tokens).

Multiple-choice prompt sets (``task: causal_lm``): ``ChoiceDataset(prompts, choices, answers,
tokenizer)`` yields one row per (question, choice): the prompt's tokens followed by the
choice's, each tokenized on its own without special tokens (as lm-evaluation-harness does; so a
choice carries its own leading space, e.g. ``" Paris"`` after ``"Q: ... A:"``), truncated on the
left of the prompt when the pair exceeds ``max_length``. Every choice of a question is in the
same batch. The batch's labels are a numpy record array with the fields of
``CHOICE_LABEL_FIELDS`` (answer index, question row, choice index, number of choices, the
first choice token's position), which the causal_lm task reads to score each choice's summed
log-likelihood. ``load_text_dataset`` builds one when the spec's ``data`` names a
``choices`` column.

Right padding is deliberate: positions 0..n-1 of every row are its real tokens, so
``position_ids`` are simply 0..L-1, and a causal model's predictions for real tokens never see
the pads. Pad values are masked out, so the pad id only matters to models without a mask.

Limitation: a file's text, label and segment columns are read whole when the dataset is
opened (about the size of the text); tokens are made per batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from compval._lazy import lazy_import
from compval.data._batch import Batch
from compval.data._common import check_batch_size, file_subject, hash_file, read_error
from compval.data._dataset import ArrayDataset
from compval.errors import DataError, InvalidParameterError, MissingDependencyError
from compval.types import Array

if TYPE_CHECKING:
    from compval.spec import DataRef

__all__ = [
    "CHOICE_LABEL_FIELDS",
    "TEXT_INPUTS",
    "ChoiceDataset",
    "TextDataset",
    "TextTokenizer",
    "load_text_dataset",
    "load_tokenizer",
]

#: The inputs a text batch carries, in this order.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
#: Fields of a multiple-choice batch's labels (int64 record array, one record per sequence):
#: the question's answer index, the question's row, the choice's index, the question's number
#: of choices, and the position of the choice's first token (the prompt's length in tokens
#: after truncation). The causal_lm task reads them by these names (its ``CHOICE_FIELDS``).
CHOICE_LABEL_FIELDS = ("answer", "question", "choice", "n_choices", "context_length")
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|padding|>", "<|endoftext|>", "</s>")


class TextTokenizer:
    """A loaded tokenizer: ``encode(texts)`` -> the model's named int64 inputs.

    Build it with :func:`load_tokenizer`. ``backend`` is ``"tokenizers"`` or
    ``"transformers"``; ``pad_id`` the id written into padding (masked out).
    """

    def __init__(self, impl: Any, *, backend: str, max_length: int, pad_id: int, source: str):
        self._impl = impl
        self.backend = backend
        self.max_length = max_length
        self.pad_id = pad_id
        self.source = source
        self._plain: Any = None

    def __repr__(self) -> str:
        return (
            f"TextTokenizer({self.source!r}, backend={self.backend!r}, "
            f"max_length={self.max_length})"
        )

    def _ids(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        if self.backend == "tokenizers":
            encodings = self._impl.encode_batch(texts)
            return [e.ids for e in encodings], [e.type_ids for e in encodings]
        out = self._impl(
            texts, truncation=True, max_length=self.max_length, padding=False,
            return_token_type_ids=True,
        )  # fmt: skip
        ids = [list(r) for r in out["input_ids"]]
        types = out.get("token_type_ids") or [[0] * len(r) for r in ids]
        return ids, [list(t) for t in types]

    def encode_pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text alone: no special tokens, no truncation, no padding."""
        items = [str(t) for t in texts]
        if self.backend == "tokenizers":
            if self._plain is None:
                # A second instance without the truncation ``encode`` relies on.
                self._plain = type(self._impl).from_str(self._impl.to_str())
                self._plain.no_truncation()
                self._plain.no_padding()
            return [list(e.ids) for e in self._plain.encode_batch(items, add_special_tokens=False)]
        out = self._impl(items, add_special_tokens=False, truncation=False, padding=False)
        return [list(r) for r in out["input_ids"]]

    def encode(self, texts: Sequence[str]) -> dict[str, Array]:
        """Tokenize, truncate to ``max_length``, right-pad to the longest row.

        Returns:
            ``input_ids``, ``attention_mask`` (1 on tokens), ``token_type_ids`` and
            ``position_ids`` (0..L-1), int64 (rows, L); L >= 1 even when every text is empty.
        """
        ids, types = self._ids([str(t) for t in texts])
        n = len(ids)
        lengths = [min(len(r), self.max_length) for r in ids]
        width = max([1, *lengths])
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        type_ids = np.zeros((n, width), dtype=np.int64)
        for i, (row, trow, k) in enumerate(zip(ids, types, lengths, strict=True)):
            input_ids[i, :k] = row[:k]
            type_ids[i, :k] = trow[:k]
            mask[i, :k] = 1
        positions = np.broadcast_to(np.arange(width, dtype=np.int64), (n, width)).copy()
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": type_ids,
            "position_ids": positions,
        }


def _pad_id_from_json(config: Mapping[str, Any], token_to_id: Any) -> int:
    padding = config.get("padding") or {}
    if isinstance(padding, Mapping) and isinstance(padding.get("pad_id"), int):
        return int(padding["pad_id"])
    for token in _PAD_TOKENS:
        found = token_to_id(token)
        if found is not None:
            return int(found)
    return 0


def load_tokenizer(path: str | Path, *, max_length: int = 512) -> TextTokenizer:
    """Open a tokenizer from a local folder or ``tokenizer.json`` file; never downloads.

    Raises:
        InvalidParameterError: ``max_length`` is not a positive int.
        DataError: The path does not exist, or the tokenizer cannot be loaded from it.
        MissingDependencyError: ``tokenizers`` / ``transformers`` is missing (extra ``text``).
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise InvalidParameterError(
            f"load_tokenizer(): 'max_length' must be a positive int; got {max_length!r}, "
            "expected e.g. 512. Set data.max_length."
        )
    where = Path(path).expanduser()
    if not where.exists():
        raise DataError(
            f"tokenizer {str(path)!r}: not found; expected a local folder holding "
            "tokenizer.json (or a transformers tokenizer) or a tokenizer.json file. compval "
            "never downloads a tokenizer: save it with tokenizer.save_pretrained(folder)."
        )
    file = where if where.is_file() else where / "tokenizer.json"
    try:
        if file.is_file():
            tokenizers = lazy_import("tokenizers", extra="text")
            impl = tokenizers.Tokenizer.from_file(str(file))
            # Our own truncation and padding, whatever tokenizer.json configures.
            impl.no_padding()
            impl.enable_truncation(max_length)
            config = json.loads(file.read_text(encoding="utf-8"))
            pad = _pad_id_from_json(config, impl.token_to_id)
            return TextTokenizer(
                impl, backend="tokenizers", max_length=max_length, pad_id=pad, source=str(where)
            )
        transformers = lazy_import("transformers", extra="text")
        impl = transformers.AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    except MissingDependencyError:
        raise
    except Exception as exc:  # the libraries raise many kinds; all mean the same here
        raise DataError(
            f"tokenizer {str(path)!r}: cannot be loaded; got {type(exc).__name__}: {exc}, "
            "expected a tokenizer.json or a folder saved with save_pretrained(). Check "
            "data.tokenizer."
        ) from exc
    pad = impl.pad_token_id if impl.pad_token_id is not None else impl.eos_token_id
    return TextTokenizer(
        impl, backend="transformers", max_length=max_length, pad_id=int(pad or 0), source=str(where)
    )


class TextDataset:
    """A dataset of texts, tokenized batch by batch into the model's named inputs.

    Args:
        texts: One text per row.
        tokenizer: From :func:`load_tokenizer`.
        labels: One label per row, or None.
        segments: Segment column -> one value per row.
        fingerprint: The content hash to report (default: a hash of texts and tokenizer).

    Raises:
        DataError: A text is missing (None/NaN), or there are no rows.
    """

    def __init__(
        self,
        texts: Sequence[str] | Array,
        tokenizer: TextTokenizer,
        *,
        labels: npt.ArrayLike | None = None,
        segments: Mapping[str, npt.ArrayLike] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        items = texts.tolist() if isinstance(texts, np.ndarray) else list(texts)
        values = np.empty(len(items), dtype=object)
        values[:] = items
        if values.ndim != 1 or values.size == 0:
            raise DataError(
                f"TextDataset: texts must be a non-empty list; got shape {values.shape}, "
                "expected one text per row."
            )
        bad = [i for i, t in enumerate(values.tolist()) if not isinstance(t, str)]
        if bad:
            raise DataError(
                f"TextDataset: {len(bad)} row(s) have no text (first at row {bad[0]}: "
                f"{values[bad[0]]!r}); expected a string in every row. Drop or fill them."
            )
        self.texts = values
        self.tokenizer = tokenizer
        # Row ids, labels and segments are an ArrayDataset's; the inputs are the row index.
        self._rows = ArrayDataset(
            {"row": np.arange(values.size, dtype=np.int64)}, labels=labels, segments=segments
        )
        self._fingerprint = fingerprint

    def __len__(self) -> int:
        return int(self.texts.size)

    def __repr__(self) -> str:
        return f"TextDataset(rows={len(self)}, tokenizer={self.tokenizer!r})"

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs of every batch (a model gets those it declares)."""
        return TEXT_INPUTS

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """Names of the segment columns, in order."""
        return self._rows.segment_columns

    @property
    def has_labels(self) -> bool:
        """Whether batches carry labels."""
        return self._rows.has_labels

    @property
    def segment_value_counts(self) -> dict[str, dict[Any, int]]:
        """Rows per distinct value of each segment column."""
        return self._rows.segment_value_counts

    def check_segment_values(self, limit: int | None, *, subject: str) -> None:
        """Raise DataError if a segment column has more than ``limit`` values."""
        self._rows.check_segment_values(limit, subject=subject)

    def fingerprint(self) -> str:
        """The file's hash (from ``load_text_dataset``), else a hash of texts and tokenizer."""
        if self._fingerprint is None:
            import hashlib

            digest = hashlib.sha256(b"compval-text-v1\0")
            digest.update(f"{self.tokenizer.source}\0{self.tokenizer.max_length}\0".encode())
            for text in self.texts.tolist():
                digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` rows, tokenized, in row order."""
        check_batch_size(batch_size)
        for rows in self._rows.batches(batch_size):
            index = rows.inputs["row"]
            yield Batch(
                inputs=self.tokenizer.encode(self.texts[index].tolist()),
                labels=rows.labels,
                row_ids=rows.row_ids,
                segments=rows.segments,
            )


class ChoiceDataset:
    """A multiple-choice prompt set: one row per (question, choice), tokenized per batch.

    Row i of the sequences is choice ``c`` of question ``q`` in question order; its tokens are
    the prompt's then the choice's (each tokenized alone, without special tokens), right-padded
    to the batch's longest row. When a pair exceeds the tokenizer's ``max_length``, the
    prompt loses tokens on the left (the end of the prompt, next to the choice, is kept).
    Batches hold whole questions: as many as fit in ``batch_size`` rows, and at least one (a
    question with more choices than ``batch_size`` makes a larger batch). Labels are records of
    ``CHOICE_LABEL_FIELDS``; segments are per question.

    Args:
        prompts: One prompt per question.
        choices: Per question, its choices (at least two strings).
        answers: Per question, the index of the right choice (0-based).
        tokenizer: From :func:`load_tokenizer`.
        segments: Segment column -> one value per question.
        fingerprint: The content hash to report (default: a hash of the questions and
            tokenizer).

    Raises:
        DataError: No questions, a missing prompt or choice, fewer than two choices, or an
            answer that is not an index into its question's choices.
    """

    def __init__(
        self,
        prompts: Sequence[str] | Array,
        choices: Sequence[Sequence[str]] | Array,
        answers: npt.ArrayLike,
        tokenizer: TextTokenizer,
        *,
        segments: Mapping[str, npt.ArrayLike] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        texts = prompts.tolist() if isinstance(prompts, np.ndarray) else list(prompts)
        options = choices.tolist() if isinstance(choices, np.ndarray) else list(choices)
        if not texts:
            raise DataError("ChoiceDataset: no questions; expected at least one prompt.")
        if len(options) != len(texts):
            raise DataError(
                f"ChoiceDataset: {len(texts)} prompts but {len(options)} choice lists; "
                "expected one list of choices per prompt."
            )
        lists: list[list[str]] = []
        for q, (prompt, row) in enumerate(zip(texts, options, strict=True)):
            if not isinstance(prompt, str):
                raise DataError(
                    f"ChoiceDataset: question {q} has no prompt (got {prompt!r}); expected a "
                    "string in every row. Drop or fill it."
                )
            row = list(row) if isinstance(row, list | tuple | np.ndarray) else row
            if (
                not isinstance(row, list)
                or len(row) < 2
                or not all(isinstance(c, str) for c in row)
            ):
                raise DataError(
                    f"ChoiceDataset: question {q} has choices {row!r}; expected a list of at "
                    "least two strings."
                )
            lists.append([str(c) for c in row])
        raw = np.asarray(answers).reshape(-1)
        if raw.size != len(texts):
            raise DataError(
                f"ChoiceDataset: {raw.size} answers for {len(texts)} questions; expected one "
                "answer index per question."
            )
        counts = np.array([len(r) for r in lists], dtype=np.int64)
        try:
            as_int = raw.astype(np.float64)
        except (TypeError, ValueError):
            as_int = np.full(raw.size, np.nan)
        bad = ~np.isfinite(as_int) | (as_int != np.round(as_int))
        bad |= ~bad & ((as_int < 0) | (as_int >= counts))
        if bad.any():
            q = int(np.flatnonzero(bad)[0])
            value = raw[q].item() if isinstance(raw[q], np.generic) else raw[q]
            raise DataError(
                f"ChoiceDataset: {int(bad.sum())} answer(s) are not an index into their "
                f"question's choices (first: question {q}, answer {value!r}, "
                f"{counts[q]} choices); expected an integer in 0..{counts[q] - 1} (0-based)."
            )
        self.prompts = texts
        self.choices = lists
        self.answers = as_int.astype(np.int64)
        self.tokenizer = tokenizer
        self._counts = counts
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # Segments and the per-question bookkeeping are an ArrayDataset's (one row a question).
        self._questions = ArrayDataset(
            {"row": np.arange(len(texts), dtype=np.int64)}, segments=segments
        )
        self._fingerprint = fingerprint

    def __len__(self) -> int:
        """Number of sequences (every choice of every question)."""
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (
            f"ChoiceDataset(questions={len(self.prompts)}, sequences={len(self)}, "
            f"tokenizer={self.tokenizer!r})"
        )

    @property
    def questions(self) -> int:
        """Number of questions."""
        return len(self.prompts)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs of every batch (a model gets those it declares)."""
        return TEXT_INPUTS

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """Names of the segment columns, in order."""
        return self._questions.segment_columns

    @property
    def has_labels(self) -> bool:
        """Always true: the labels hold the answers."""
        return True

    @property
    def segment_value_counts(self) -> dict[str, dict[Any, int]]:
        """Questions per distinct value of each segment column."""
        return self._questions.segment_value_counts

    def check_segment_values(self, limit: int | None, *, subject: str) -> None:
        """Raise DataError if a segment column has more than ``limit`` values."""
        self._questions.check_segment_values(limit, subject=subject)

    def fingerprint(self) -> str:
        """The file's hash (from ``load_text_dataset``), else a hash of questions and tokenizer."""
        if self._fingerprint is None:
            import hashlib

            digest = hashlib.sha256(b"compval-choices-v1\0")
            digest.update(f"{self.tokenizer.source}\0{self.tokenizer.max_length}\0".encode())
            payload = {"p": self.prompts, "c": self.choices, "a": self.answers.tolist()}
            digest.update(json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches of whole questions, about ``batch_size`` sequences each, in order.

        Raises:
            DataError: A prompt has no tokens, or a choice has no tokens or needs the whole
                ``max_length`` on its own (there would be nothing to predict it from).
        """
        check_batch_size(batch_size)
        start, n = 0, len(self.prompts)
        seg_rows = iter(self._questions.batches(n))
        segments = next(seg_rows).segments
        while start < n:
            stop = start + 1
            while stop < n and self._offsets[stop + 1] - self._offsets[start] <= batch_size:
                stop += 1
            yield self._batch(start, stop, segments)
            start = stop

    def _batch(self, start: int, stop: int, segments: Mapping[str, Array]) -> Batch:
        questions = np.repeat(np.arange(start, stop), self._counts[start:stop])
        choice = np.concatenate([np.arange(c) for c in self._counts[start:stop]])
        prompt_ids = self.tokenizer.encode_pieces(self.prompts[start:stop])
        choice_ids = self.tokenizer.encode_pieces(
            [c for q in range(start, stop) for c in self.choices[q]]
        )
        limit = self.tokenizer.max_length
        rows, contexts = [], []
        for q, c, cont in zip(questions.tolist(), choice.tolist(), choice_ids, strict=True):
            ctx = prompt_ids[q - start]
            if not ctx or not cont or len(cont) >= limit:
                what = (
                    "its prompt has no tokens"
                    if not ctx
                    else "the choice has no tokens"
                    if not cont
                    else f"the choice alone has {len(cont)} tokens, max_length is {limit}"
                )
                raise DataError(
                    f"ChoiceDataset: question {q}, choice {c} cannot be scored: {what}; "
                    "expected a non-empty prompt and a choice shorter than data.max_length "
                    "(its first token is predicted from the prompt's last)."
                )
            ctx = ctx[-(limit - len(cont)) :]
            rows.append(ctx + cont)
            contexts.append(len(ctx))
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        labels = np.empty(len(rows), dtype=[(f, np.int64) for f in CHOICE_LABEL_FIELDS])
        labels["answer"] = self.answers[questions]
        labels["question"] = questions
        labels["choice"] = choice
        labels["n_choices"] = self._counts[questions]
        labels["context_length"] = contexts
        return Batch(
            inputs={
                "input_ids": input_ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids),
                "position_ids": np.broadcast_to(np.arange(width), input_ids.shape).copy(),
            },
            labels=labels,
            row_ids=np.arange(self._offsets[start], self._offsets[stop], dtype=np.int64),
            segments={k: np.asarray(v)[questions] for k, v in segments.items()},
        )


def load_text_dataset(
    ref: DataRef, path: Path, kind: str, *, base_dir: Path
) -> TextDataset | ChoiceDataset:
    """The dataset of a spec's ``data:`` with ``text`` and ``tokenizer`` (parquet or CSV).

    A TextDataset; or, when ``ref`` names a ``choices`` column, a :class:`ChoiceDataset`
    whose prompts are the ``text`` column, choices the ``choices`` column (a parquet list of
    strings, or a JSON array of strings per CSV cell) and answers the ``labels`` column.

    Raises:
        DataError: Wrong format, a missing column, a text column that is not text, a missing
            text or label, choices that are not lists of strings, a missing answer column,
            or the tokenizer cannot be loaded.
    """
    subject = file_subject(path)
    if kind not in ("parquet", "csv"):
        raise DataError(
            f"{subject}: data.text needs a parquet or CSV file; got format {kind!r}. Save the "
            "texts as a column of a parquet or CSV file, or give pre-tokenized arrays in a "
            ".npz (input_ids, attention_mask) without data.text."
        )
    if ref.features:
        raise DataError(
            f"{subject}: data.text and data.features are exclusive; got features "
            f"{ref.features!r}. The model's inputs come from the tokenizer: remove 'features'."
        )
    assert ref.text is not None and ref.tokenizer is not None
    # The multiple-choice column (spec field ``data.choices``; read by name so that a spec
    # model without the field reads as no choices).
    choices_col = ref.choices
    if choices_col is not None and ref.labels is None:
        raise DataError(
            f"{subject}: data.choices {choices_col!r} needs the answers: set data.labels to "
            "the column holding each question's right choice (0-based index)."
        )
    tok_path = Path(ref.tokenizer).expanduser()
    if not tok_path.is_absolute():
        tok_path = base_dir / tok_path
    tokenizer = load_tokenizer(tok_path, max_length=ref.max_length)
    pa = lazy_import("pyarrow", extra="data")
    wanted = [("text", ref.text), *(("segment", s) for s in ref.segments)]
    wanted += [("label", ref.labels)] if ref.labels else []
    wanted += [("choices", choices_col)] if choices_col else []
    columns = list(dict.fromkeys(name for _, name in wanted))
    try:
        if kind == "parquet":
            pq = lazy_import("pyarrow.parquet", extra="data")
            names = list(pq.read_schema(path).names)
        else:
            pacsv = lazy_import("pyarrow.csv", extra="data")
            with pacsv.open_csv(path) as reader:
                names = list(reader.schema.names)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise read_error(path, kind, exc) from exc
    for role, name in wanted:
        if name not in names:
            field = {"text": "text", "choices": "choices"}.get(role, role + "s")
            raise DataError(
                f"{subject}: no {role} column {name!r}; got columns {names}, expected it among "
                f"them. Fix data.{field}."
            )
    try:
        if kind == "parquet":
            table = pq.read_table(path, columns=columns)
        else:
            types = {ref.text: pa.string()} | ({choices_col: pa.string()} if choices_col else {})
            options = pacsv.ConvertOptions(include_columns=columns, column_types=types)
            table = pacsv.read_csv(path, convert_options=options)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise read_error(path, kind, exc) from exc
    text_col = table.column(ref.text)
    if not (pa.types.is_string(text_col.type) or pa.types.is_large_string(text_col.type)):
        raise DataError(
            f"{subject}: text column {ref.text!r} holds {text_col.type}, expected strings. "
            "Point data.text at the column of texts."
        )
    if table.num_rows == 0:
        raise DataError(f"{subject}: the data has no rows; expected at least 1.")
    texts = np.asarray(text_col.to_pylist(), dtype=object)
    labels = None if ref.labels is None else table.column(ref.labels).to_numpy(zero_copy_only=False)
    segments = {s: table.column(s).to_numpy(zero_copy_only=False) for s in ref.segments}
    selection = {
        "text": ref.text,
        "labels": ref.labels,
        "segments": list(ref.segments),
        "tokenizer": str(tok_path),
        "max_length": ref.max_length,
    }
    dataset: TextDataset | ChoiceDataset
    try:
        if choices_col is not None:
            assert labels is not None
            options = _choice_lists(table.column(choices_col), choices_col, pa)
            dataset = ChoiceDataset(
                texts,
                options,
                labels,
                tokenizer,
                segments=segments,
                fingerprint=hash_file(
                    path, kind=f"choices-{kind}", selection=selection | {"choices": choices_col}
                ),
            )
        else:
            dataset = TextDataset(
                texts,
                tokenizer,
                labels=labels,
                segments=segments,
                fingerprint=hash_file(path, kind=f"text-{kind}", selection=selection),
            )
    except DataError as exc:
        raise DataError(f"{subject}: {exc}") from exc
    dataset.check_segment_values(ref.max_segment_values, subject=subject)
    return dataset


def _choice_lists(column: Any, name: str, pa: Any) -> list[Any]:
    """Each row's choices: a list column as it is, a string column as JSON arrays.

    Raises:
        DataError: A string cell is not a JSON array, or the column is neither.
    """
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return list(column.to_pylist())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(
            f"choices column {name!r} holds {column.type}; expected a list of strings per row "
            '(parquet), or a JSON array of strings per cell (CSV: ["Paris", "Rome"]).'
        )
    out: list[Any] = []
    for row, cell in enumerate(column.to_pylist()):
        try:
            value = json.loads(cell) if isinstance(cell, str) else cell
        except json.JSONDecodeError as exc:
            raise DataError(
                f"choices column {name!r}, row {row}: {cell!r} is not a JSON array ({exc}); "
                'expected e.g. ["Paris", "Rome"].'
            ) from exc
        out.append(value)
    return out
