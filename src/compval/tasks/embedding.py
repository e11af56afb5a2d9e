"""``task: embedding``: text (or any) encoders compared by what their users check.

Each row's compared output is one embedding (rows, dim). The task reports, per segment:
fidelity (``cosine_similarity`` mean with interval, ``p1_cosine_similarity``,
``min_cosine_similarity``, ``embedding_norm`` of both models), neighbour agreement at each k
of ``task.embedding.neighbours_k`` with the Spearman correlation of pairwise similarities, and,
with relevance judgements (``task.embedding.qrels``), recall@k, nDCG@k and MRR@k of both models
with paired deltas. ``data.labels``, when given, is the row id column that the judgements refer
to (else row numbers, 0-based). See docs/tasks.md.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from compval.errors import AdapterError, SpecValidationError
from compval.metrics import (
    Accumulator,
    CosineQuantiles,
    EmbeddingFidelity,
    EmbeddingRows,
    NeighbourAgreement,
    NonFiniteCounts,
    OutputFidelity,
    PairedRows,
    Qrels,
    RetrievalQuality,
)
from compval.spec import AcceptanceSpec
from compval.tasks._base import ChunkContext, RowsBase, TaskState
from compval.tasks._outputs import OutputKind
from compval.tasks._values import ValueTask
from compval.types import Array, Outputs

__all__ = ["EmbeddingTask", "load_qrels"]

#: Output names preferred as the embedding when the spec names none (sentence-transformers'
#: and Hugging Face exports' pooled outputs).
_POOLED_NAMES = ("sentence_embedding", "embeddings", "embedding", "pooler_output")


def load_qrels(spec: AcceptanceSpec, base_dir: Path | None = None) -> Qrels | None:
    """The relevance judgements named by ``task.embedding.qrels`` (CSV or TSV), or None.

    A relative path is read from ``base_dir`` (the spec file's folder), else from the working
    directory.

    Raises:
        SpecValidationError: The file is missing or lacks the named columns, or a relevance is
            not a number.
    """
    cfg = spec.task.embedding
    if cfg.qrels is None:
        return None
    folder = Path.cwd() if base_dir is None else base_dir
    path = folder / cfg.qrels
    where = "task.embedding.qrels"
    if not path.is_file():
        raise SpecValidationError(
            f"{where}: no such file {str(path)!r} (relative paths are read from the spec's "
            f"folder, {str(folder)!r}).",
            path=where,
        )
    with path.open(newline="", encoding="utf-8") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        first = sample.splitlines()[0] if sample else ""
        delimiter = "\t" if "\t" in first else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        for column in (cfg.query_column, cfg.document_column):
            if column not in header:
                raise SpecValidationError(
                    f"{where}: {str(path)!r} has no column {column!r}; its columns are "
                    f"{header}. Set task.embedding.query_column / document_column.",
                    path=where,
                )
        triples = []
        for line, row in enumerate(reader, start=2):
            raw = row.get(cfg.relevance_column) if cfg.relevance_column in header else "1"
            try:
                rel = float(raw if raw not in (None, "") else "nan")
            except ValueError:
                rel = float("nan")
            if not np.isfinite(rel):
                raise SpecValidationError(
                    f"{where}: line {line} of {str(path)!r}: relevance {raw!r} is not a finite "
                    "number.",
                    path=where,
                )
            triples.append((row[cfg.query_column], row[cfg.document_column], rel))
    if not triples:
        raise SpecValidationError(f"{where}: {str(path)!r} holds no judgements.", path=where)
    return Qrels.from_triples(triples)


class EmbeddingTask(ValueTask):
    """Embedding fidelity, neighbour agreement and (with qrels) retrieval quality."""

    name = "embedding"
    metrics_of = "embedding"

    def default_output(self, state: TaskState, outputs: Outputs, *, model: str) -> str | None:
        """A pooled output by name, else the first 2-D output, else the first (noted)."""
        names = list(outputs)
        chosen = next((n for n in _POOLED_NAMES if n in outputs), None)
        if chosen is None:
            chosen = next((n for n in names if np.ndim(outputs[n]) == 2), None)
        if chosen is not None and chosen != names[0]:
            state.notes.append(
                f"Model {model!r}: compared its output {chosen!r} as the embedding (the spec "
                "names none; set 'output' to choose another)."
            )
        return chosen

    def output_kind(self, state: TaskState, raw: Array, *, model: str) -> OutputKind:
        """``values``; per-token outputs (rows, tokens, dim) are refused: pool them first.

        Raises:
            AdapterError: The output is not numeric or not one vector per row.
        """
        kind = super().output_kind(state, raw, model=model)
        if raw.ndim > 2:
            raise AdapterError(
                f"Model {model!r}: its compared output has shape {raw.shape[1:]} per row, one "
                "vector per token; task embedding compares one embedding per row. Set 'output' "
                "to a pooled output (e.g. sentence_embedding or pooler_output), or export the "
                "model with its pooling (mean over the attention mask, as sentence-transformers)."
            )
        return kind

    def prepare_chunk(
        self,
        state: TaskState,
        *,
        reference: Array,
        kind: OutputKind,
        labels: Array | None,
        model: str,
    ) -> ChunkContext:
        """The row ids (``data.labels``) as text, in ``reference``; no targets."""
        ids = None if labels is None else np.asarray(labels).reshape(len(labels), -1)[:, 0]
        return ChunkContext(labels=None, label_classes=None, reference=ids, raw_labels=labels)

    def pair(
        self,
        state: TaskState,
        chunk: ChunkContext,
        base: RowsBase,
        *,
        raw: Array,
        kind: OutputKind,
        model: str,
    ) -> tuple[PairedRows, PairedRows]:
        """Value pairs plus each row's id (the id column, else the row number)."""
        rows, nonfinite = super().pair(state, chunk, base, raw=raw, kind=kind, model=model)
        ids = base.row_ids if chunk.reference is None else chunk.reference
        text = np.array([_id_text(v) for v in ids.tolist()], dtype=object)
        fields = {f: getattr(rows, f) for f in PairedRows.__dataclass_fields__}
        return EmbeddingRows(**fields, ids=text), nonfinite

    def accumulators(
        self,
        state: TaskState,
        *,
        reference_kind: OutputKind,
        candidate_kind: OutputKind,
        width: int,
    ) -> list[Accumulator]:
        """Non-finite counts, fidelity, cosine tail, then neighbours or, with qrels, retrieval.

        With qrels, RetrievalQuality reports the neighbour metrics too, from its own buffer:
        each row's embeddings are kept once, not once per metric family.
        """
        seg, cfg = state.segments, state.spec.task.embedding
        accs: list[Accumulator] = [
            NonFiniteCounts(seg),
            OutputFidelity(seg),
            EmbeddingFidelity(seg),
            CosineQuantiles(seg),
        ]
        seed = state.spec.statistics_seed
        neighbours = {"ks": cfg.neighbours_k, "max_rows": cfg.max_rows, "pairs": cfg.pairs}
        qrels = load_qrels(state.spec, state.base_dir)
        if qrels is None:
            accs.append(
                NeighbourAgreement(
                    seg,
                    ks=cfg.neighbours_k,
                    max_rows=cfg.max_rows,
                    pairs=cfg.pairs,
                    seed=seed,
                    notes=state.notes,
                )
            )
        else:
            accs.append(
                RetrievalQuality(
                    seg,
                    qrels=qrels.triples(),
                    ks=cfg.retrieval_k,
                    # Spec field task.embedding.max_retrieval_rows, once the spec has it.
                    max_rows=cfg.max_retrieval_rows,
                    neighbours={**neighbours, "seed": seed},
                    notes=state.notes,
                )
            )
        return accs

    def default_criteria(self, *, has_labels: bool) -> list[dict[str, Any]]:
        """Mean cosine and neighbour agreement at 10."""
        return [
            {"id": "cosine", "metric": "cosine_similarity", "min": 0.99},
            {"id": "neighbours", "metric": "neighbour_agreement[k=10]", "min": 0.8},
        ]


def _id_text(value: object) -> str:
    """An id as the judgements' text: ``7`` not ``7.0``, bytes decoded."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
