"""The paired run: both models on the same batches, outputs into the accumulators.

Models run at the spec's batch size (that is part of the evaluation), but their outputs are
buffered and fed to the accumulators in chunks of about ``CHUNK_ROWS`` rows. The accumulators
are partition-invariant (``tests/metrics/test_laws.py``), so results are identical, and the
validator's own per-row cost drops to a small fraction of inference: numpy's per-call overhead
is paid once per chunk, not once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compval._evidence import RunEvidence, slice_sample
from compval._prepare import (
    OutputKind,
    as_rows,
    detect_kind,
    label_codes,
    prepare_classification,
    segment_ids,
    select_output,
)
from compval._types import Array
from compval.adapters import ModelAdapter, bind_inputs
from compval.data import Batch, Dataset
from compval.errors import DataError
from compval.metrics import (
    Accumulator,
    Calibration,
    ClassTable,
    ContingencyTable,
    KLQuantiles,
    NonFiniteCounts,
    OutputFidelity,
    PairedRows,
    ProbabilityDivergence,
    RegressionErrors,
    Resampling,
    SegmentTable,
)
from compval.metrics.continuous import kl_divergence_rows
from compval.spec import AcceptanceSpec

__all__ = ["CHUNK_ROWS", "N_BLOCKS", "CandidateState", "RunState", "stream"]

N_BLOCKS = 256
CHUNK_ROWS = 16_384
#: Tabular data wider than this is not searched for weak slices (memory: rows x features).
MAX_SLICE_FEATURES = 256


@dataclass
class CandidateState:
    """One candidate's adapter, detected output kind and accumulators."""

    name: str
    adapter: ModelAdapter
    output: str | None
    kind: OutputKind | None = None
    accumulators: list[Accumulator] = field(default_factory=list)
    evidence: RunEvidence | None = None


class RunState:
    """Tables shared by every accumulator of a run: segments, classes, output kinds."""

    def __init__(
        self, spec: AcceptanceSpec, dataset: Dataset, resampling: Resampling | None
    ) -> None:
        self.spec = spec
        self.task = spec.task.type
        self.dataset = dataset
        self.resampling = resampling
        self.seed = spec.statistics_seed
        self.segments = SegmentTable()
        self.classes = ClassTable()
        self.dynamic_classes = True
        self.n_scores: int | None = None
        self.kinds: dict[str, OutputKind] = {}
        self.columns = list(dataset.segment_columns)
        self.slice_layout: tuple[list[str], list[bool]] | None = None

    def kind_of(self, model: str, raw: Array) -> OutputKind:
        """The output kind of ``model``, detected once (first chunk) unless the spec sets it."""
        if model not in self.kinds:
            if self.task != "classification":
                self.kinds[model] = "values"
            else:
                forced = self.spec.task.outputs
                self.kinds[model] = detect_kind(raw) if forced == "auto" else forced
        return self.kinds[model]

    def seed_classes(self, adapter: ModelAdapter, raw: Array, kind: OutputKind) -> None:
        """Fix the class index space from the first model that outputs class scores."""
        if kind not in ("probabilities", "logits") or not self.dynamic_classes:
            return
        k = raw.reshape(raw.shape[0], -1).shape[1]
        names = getattr(adapter, "classes", None)
        values = list(names) if names is not None and len(names) == k else list(range(k))
        self.classes = ClassTable([v.item() if isinstance(v, np.generic) else v for v in values])
        self.dynamic_classes = False
        self.n_scores = k


def _accumulators(
    run: RunState, ref_kind: OutputKind, cand_kind: OutputKind, width: int
) -> list[Accumulator]:
    seg = run.segments
    has_labels = run.dataset.has_labels
    accs: list[Accumulator] = [NonFiniteCounts(seg)]
    if run.task == "classification":
        accs.append(ContingencyTable(seg))
        if ref_kind != "labels" and cand_kind != "labels":
            accs += [OutputFidelity(seg), ProbabilityDivergence(seg), KLQuantiles(seg)]
            if has_labels:
                accs.append(Calibration(seg))
    else:
        accs.append(OutputFidelity(seg))
        if run.task == "regression" and has_labels:
            accs.append(RegressionErrors(seg, width=width))
    return accs


def _slice_layout(run: RunState, batch: Batch) -> tuple[list[str], list[bool]] | None:
    """Names and categorical flags of the columns searched for weak slices, or None."""
    if not run.spec.statistics.discovery or run.task != "classification":
        return None
    if not run.dataset.has_labels or len(batch.inputs) != 1:
        return None
    (features,) = batch.inputs.values()
    if features.ndim != 2 or features.shape[1] > MAX_SLICE_FEATURES:
        return None
    names = [str(n) for n in (getattr(run.dataset, "feature_columns", ()) or ())]
    if len(names) != features.shape[1]:
        names = [f"x{j}" for j in range(features.shape[1])]
    segs = [c for c in run.columns if c not in names]
    return names + segs, [False] * len(names) + [True] * len(segs)


class _Chunk:
    """Buffered batches: what the accumulators need, without the model inputs."""

    def __init__(self, n_candidates: int) -> None:
        self.rows = 0
        self.labels: list[Array] = []
        self.row_ids: list[Array] = []
        self.segments: list[dict[str, Array]] = []
        self.features: list[Array] = []
        self.ref: list[Array] = []
        self.cands: list[list[Array]] = [[] for _ in range(n_candidates)]

    def add(self, batch: Batch, ref: Array, cands: Sequence[Array], keep_features: bool) -> None:
        self.rows += len(batch)
        if batch.labels is not None:
            self.labels.append(np.asarray(batch.labels))
        self.row_ids.append(np.asarray(batch.row_ids, dtype=np.int64))
        self.segments.append({k: np.asarray(v) for k, v in batch.segments.items()})
        if keep_features:
            (features,) = batch.inputs.values()
            self.features.append(np.asarray(features))
        self.ref.append(ref)
        for store, out in zip(self.cands, cands, strict=True):
            store.append(out)


def _cat(parts: list[Array]) -> Array:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def stream(
    run: RunState,
    ref: ModelAdapter,
    ref_output: str | None,
    states: list[CandidateState],
    progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Run every batch through the reference and each candidate; return the row count."""
    # Chunks are scored on one worker thread while the models run the next batches: ONNX
    # Runtime and numpy release the GIL, so the validator's own work overlaps inference. One
    # worker keeps chunks in order (results are identical either way: accumulators are
    # partition-invariant) and at most one chunk waits, which bounds memory.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compval-score")
    pending: Future[None] | None = None

    def submit(full: _Chunk) -> None:
        nonlocal pending
        if pending is not None:
            pending.result()
        pending = worker.submit(_flush, run, ref, states, full)

    try:
        done = _run_batches(run, ref, ref_output, states, progress, submit)
        if pending is not None:
            pending.result()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
    if done == 0:
        raise DataError("The dataset produced no rows; nothing to validate.")
    return done


def _run_batches(
    run: RunState,
    ref: ModelAdapter,
    ref_output: str | None,
    states: list[CandidateState],
    progress: Callable[[str, int, int], None] | None,
    submit: Callable[[_Chunk], None],
) -> int:
    total = len(run.dataset)
    done = 0
    chunk = _Chunk(len(states))
    for batch in run.dataset.batches(run.spec.batch_size):
        n = len(batch)
        ref_out = select_output(
            ref.predict(bind_inputs(ref.name, batch.inputs, ref.input_spec())), ref_output, ref.name
        )
        as_rows(ref_out, n, ref.name)
        cand_outs = []
        for st in states:
            out = select_output(
                st.adapter.predict(bind_inputs(st.name, batch.inputs, st.adapter.input_spec())),
                st.output,
                st.name,
            )
            as_rows(out, n, st.name)
            cand_outs.append(out)
        if done == 0:
            run.slice_layout = _slice_layout(run, batch)
        chunk.add(batch, ref_out, cand_outs, keep_features=run.slice_layout is not None)
        done += n
        if chunk.rows >= CHUNK_ROWS:
            submit(chunk)
            chunk = _Chunk(len(states))
        if progress is not None:
            progress("validate", done, total)
    if chunk.rows:
        submit(chunk)
    return done


def _flush(run: RunState, ref: ModelAdapter, states: list[CandidateState], chunk: _Chunk) -> None:
    from compval.stats import row_blocks

    n = chunk.rows
    ref_raw = _cat(chunk.ref)
    ref_kind = run.kind_of(ref.name, ref_raw)
    run.seed_classes(ref, ref_raw, ref_kind)
    cand_raws = [_cat(parts) for parts in chunk.cands]
    for st, raw in zip(states, cand_raws, strict=True):
        if st.kind is None:
            st.kind = run.kind_of(st.name, raw)
            run.seed_classes(st.adapter, raw, st.kind)
    row_ids = _cat(chunk.row_ids)
    segments = {c: _cat([s[c] for s in chunk.segments]) for c in run.columns}
    raw_labels = _cat(chunk.labels) if chunk.labels else None

    labels: Array | None = None
    if raw_labels is not None and run.task == "classification":
        labels = label_codes(
            raw_labels, run.classes, dynamic=run.dynamic_classes, n_scores=run.n_scores
        )
    elif raw_labels is not None and run.task == "regression":
        labels = raw_labels.astype(np.float64).reshape(n, -1)
    ref_prep = None
    if run.task == "classification":
        ref_prep = prepare_classification(
            ref_raw, ref_kind, run.classes, dynamic=run.dynamic_classes, model=ref.name
        )
    seg = segment_ids(
        run.segments,
        n=n,
        labels=labels if run.task == "classification" else None,
        classes=run.classes,
        segments=segments,
        columns=run.columns,
    )
    blocks = row_blocks(row_ids, seed=run.seed, n_blocks=N_BLOCKS)
    ref_rows = as_rows(np.asarray(ref_raw), n, ref.name).astype(np.float64, copy=False)
    slice_columns: list[Array] = []
    keep: Array | None = None
    if run.slice_layout is not None:
        keep = slice_sample(row_ids, seed=run.seed, total_rows=len(run.dataset))
        sel = slice(None) if keep is None else keep
        # Feature-major copy: the search reads whole columns, which are strided in (rows, d).
        features = np.ascontiguousarray(_cat(chunk.features)[sel].T)
        slice_columns = list(features)
        slice_columns += [segments[c][sel] for c in run.slice_layout[0][features.shape[0] :]]

    for st, raw in zip(states, cand_raws, strict=True):
        assert st.kind is not None
        cand_rows = as_rows(np.asarray(raw), n, st.name).astype(np.float64, copy=False)
        if ref_prep is not None:
            rows, nonfinite = _classification_rows(
                run, st, raw, ref_prep, ref_rows, cand_rows, labels, row_ids, blocks, seg
            )
        else:
            rows = _value_rows(st, ref_rows, cand_rows, labels, row_ids, blocks, seg)
            nonfinite = rows
        if not st.accumulators:
            st.accumulators = _accumulators(run, ref_kind, st.kind, ref_rows.shape[1])
            if run.task == "classification" and (
                run.slice_layout is not None or (ref_kind != "labels" and st.kind != "labels")
            ):
                st.evidence = RunEvidence(
                    confidences=ref_kind != "labels" and st.kind != "labels",
                    slice_features=None if run.slice_layout is None else run.slice_layout[0],
                    categorical=() if run.slice_layout is None else run.slice_layout[1],
                    seed=run.seed,
                )
        for acc in st.accumulators:
            acc.update(nonfinite if isinstance(acc, NonFiniteCounts) else rows)
        if st.evidence is not None:
            st.evidence.update(rows, slice_columns, keep)


def _classification_rows(
    run: RunState,
    st: CandidateState,
    raw: Array,
    ref_prep: Any,
    ref_rows: Array,
    cand_rows: Array,
    labels: Array | None,
    row_ids: Array,
    blocks: Array,
    seg: Array,
) -> tuple[PairedRows, PairedRows]:
    assert st.kind is not None
    cand_prep = prepare_classification(
        raw, st.kind, run.classes, dynamic=run.dynamic_classes, model=st.name
    )
    if ref_prep.prob is not None and cand_prep.prob is not None:
        if ref_prep.prob.shape[1] != cand_prep.prob.shape[1]:
            raise DataError(
                f"Candidate {st.name!r} outputs {cand_prep.prob.shape[1]} classes but the "
                f"reference outputs {ref_prep.prob.shape[1]}; both models must score the same "
                "classes in the same order."
            )
        fid_ref, fid_cand = ref_prep.prob, cand_prep.prob
    else:
        fid_ref, fid_cand = ref_rows, cand_rows
    finite = ref_prep.finite & cand_prep.finite
    kl = None
    if ref_prep.prob is not None and cand_prep.prob is not None:
        kl = np.zeros(finite.shape[0])
        kl[finite] = kl_divergence_rows(ref_prep.prob[finite], cand_prep.prob[finite])
    rows = PairedRows(
        reference=fid_ref,
        candidate=fid_cand,
        row_ids=row_ids,
        blocks=blocks,
        segment_ids=seg,
        finite=finite,
        labels=labels,
        ref_pred=ref_prep.pred,
        cand_pred=cand_prep.pred,
        ref_prob=ref_prep.prob,
        cand_prob=cand_prep.prob,
        kl=kl,
    )
    nonfinite = PairedRows(
        reference=ref_rows,
        candidate=cand_rows,
        row_ids=row_ids,
        blocks=blocks,
        segment_ids=seg,
        finite=finite,
    )
    return rows, nonfinite


def _value_rows(
    st: CandidateState,
    ref_rows: Array,
    cand_rows: Array,
    labels: Array | None,
    row_ids: Array,
    blocks: Array,
    seg: Array,
) -> PairedRows:
    if cand_rows.shape != ref_rows.shape:
        raise DataError(
            f"Candidate {st.name!r} returns outputs of shape {cand_rows.shape[1:]} per row but "
            f"the reference returns {ref_rows.shape[1:]}; the models must produce comparable "
            "outputs (set 'output' to pick one)."
        )
    if labels is not None and labels.shape[1] != ref_rows.shape[1]:
        raise DataError(
            f"Labels have {labels.shape[1]} values per row but the models output "
            f"{ref_rows.shape[1]}; regression targets must match the outputs."
        )
    finite = np.asarray(np.isfinite(ref_rows).all(axis=1) & np.isfinite(cand_rows).all(axis=1))
    return PairedRows(
        reference=ref_rows,
        candidate=cand_rows,
        row_ids=row_ids,
        blocks=blocks,
        segment_ids=seg,
        finite=finite,
        labels=labels,
    )
