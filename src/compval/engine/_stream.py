"""The paired run: both models on the same batches, outputs into the accumulators.

Models run at the spec's batch size (that is part of the evaluation), but their outputs are
buffered and fed to the accumulators in chunks of at most ``CHUNK_ROWS`` rows and about
``CHUNK_BYTES`` of model outputs (whichever comes first: a causal LM's logits are megabytes per
row, so a row count alone would not bound memory). The accumulators
are partition-invariant (``tests/metrics/test_laws.py``), so results are identical, and the
validator's own per-row cost drops to a small fraction of inference: numpy's per-call overhead
is paid once per chunk, not once per batch.

A model whose adapter declares ``max_concurrent_batches`` > 1 (a served model: the server
answers several requests at once) is sent the next batches ahead, from worker threads, while
the run uses the answers strictly in batch order: at most that many batches are in flight, and
every decision (the compared output, the output kind, the chunks) is taken in the same order
as in a sequential run, so results and errors are the same. Local models are called on the
run's own thread, one batch at a time.

Nothing here knows the task: the run's :class:`~compval.tasks.Task` turns raw outputs into
paired rows and names the accumulators.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from compval.adapters import ModelAdapter, bind_inputs
from compval.data import Batch, Dataset, feature_names
from compval.errors import DataError
from compval.metrics import Accumulator, NonFiniteCounts, Resampling, slice_sample
from compval.spec import AcceptanceSpec
from compval.stats import all_finite, row_blocks
from compval.tasks import (
    OutputKind,
    RowsBase,
    Task,
    TaskState,
    as_rows,
    get_task,
    segment_ids,
    select_output,
)
from compval.types import Array, Outputs

__all__ = ["CHUNK_ROWS", "N_BLOCKS", "CandidateState", "RunState", "stream"]

N_BLOCKS = 256
CHUNK_ROWS = 16_384
#: Model outputs (all models together) buffered before a chunk is scored. Scoring holds about
#: four times this at its peak (the chunk being filled, the chunk being scored, and their
#: float64 copies), so the default keeps compval's own memory near 1 GiB for any output width.
CHUNK_BYTES = 256 * 1024 * 1024
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


class RunState:
    """What one run shares across candidates: the task, its state, the output kinds."""

    def __init__(
        self, spec: AcceptanceSpec, dataset: Dataset, resampling: Resampling | None
    ) -> None:
        self.spec = spec
        self.task: Task = get_task(spec.task.type)
        self.dataset = dataset
        self.resampling = resampling
        self.seed = spec.statistics_seed
        self.state = TaskState(spec=spec, has_labels=dataset.has_labels)
        self.kinds: dict[str, OutputKind] = {}
        #: Model name -> the output compared (None: the model's first), fixed on its first batch.
        self.outputs: dict[str, str | None] = {}
        self.columns = list(dataset.segment_columns)
        self.columns += self.task.added_segments(self.state, self.columns)
        #: Names of a tabular dataset's feature columns (() when unknown): a model with one
        #: input per column is fed by them (``compval.adapters.bind_inputs``).
        self.feature_columns = feature_names(dataset)
        #: Round float values bound to integer model inputs (perturbed data: noise on an
        #: integer feature is not a whole number).
        self.round_integer_inputs = False
        #: NaN/Inf counts per feature column (kept only with data.allow_nonfinite_features).
        self.nonfinite_features: dict[str, int] = {}
        #: Decisions the run made on the user's behalf (e.g. which output it compared);
        #: they go to ``report.run.notes``. The same list as the task's, so that the task's
        #: decisions (an output kind inferred from one column) are reported too.
        self.notes: list[str] = self.state.notes
        #: Extra accumulators every candidate gets next to the task's (the robustness runs add
        #: per-block correctness here, to pair the clean and perturbed passes).
        self.extra_accumulators: Callable[[TaskState], list[Accumulator]] | None = None

    def kind_of(self, adapter: ModelAdapter, raw: Array) -> OutputKind:
        """The output kind of a model, decided on its first chunk (the task may learn from it)."""
        if adapter.name not in self.kinds:
            kind = self.task.output_kind(self.state, raw, model=adapter.name)
            self.kinds[adapter.name] = kind
            self.task.observe(self.state, adapter.classes, raw, kind, model=adapter.name)
        return self.kinds[adapter.name]

    def compared(self, adapter: ModelAdapter, outputs: Outputs, wanted: str | None) -> Array:
        """The output of ``adapter`` that is compared: ``wanted``, else the task's choice."""
        if adapter.name not in self.outputs:
            chosen = wanted
            if chosen is None and outputs:
                chosen = self.task.default_output(self.state, outputs, model=adapter.name)
            self.outputs[adapter.name] = chosen
        return select_output(outputs, self.outputs[adapter.name], adapter.name)


def _slice_layout(run: RunState, batch: Batch) -> tuple[list[str], list[bool]] | None:
    """Names and categorical flags of the columns searched for weak slices, or None."""
    if not run.spec.statistics.discovery or not run.task.searches_slices:
        return None
    if not run.dataset.has_labels:
        return None
    # A table's text feature columns are inputs of their own (object arrays): its numbers,
    # one array, are searched; the text only as segments.
    texts = [n for n, a in batch.inputs.items() if a.dtype == object]
    numeric = [a for n, a in batch.inputs.items() if n not in texts]
    unsearched = [n for n in texts if n not in run.columns]
    if unsearched:
        run.notes.append(
            f"Weak-slice search: text feature column(s) {', '.join(map(repr, unsearched))} "
            "were not searched; list them in data.segments too to search them by value."
        )
    if len(numeric) != 1:
        return None
    (features,) = numeric
    if features.dtype.kind not in "fiub":
        return None
    if features.ndim != 2 or features.shape[1] > MAX_SLICE_FEATURES:
        return None
    names = list(feature_names(run.dataset))
    if len(names) != features.shape[1]:
        names = [f"x{j}" for j in range(features.shape[1])]
    # Segment columns are searched by value. One whose values are all smaller than the
    # min_rows a slice needs (an id-like column) can yield no slice, and one past 65,536
    # values cannot be coded by the search (16-bit codes): both are skipped, with a note,
    # instead of failing the run. Datasets that do not count their segment values (custom
    # ones) have every column searched.
    from compval.metrics import SLICE_SAMPLE_ROWS

    counts = getattr(run.dataset, "segment_value_counts", None) or {}
    min_rows = run.spec.statistics.min_rows
    kept = min(1.0, SLICE_SAMPLE_ROWS / max(len(run.dataset), 1))
    segs = []
    for column in (c for c in run.columns if c not in names):
        values = counts.get(column)
        if values and len(values) > 65_536:
            why = f"{len(values):,} distinct values, more than the 65,536 the search can code"
        elif values and max(values.values()) * kept < min_rows:
            why = (
                f"none of its {len(values):,} values holds the {min_rows} rows a slice needs "
                f"(statistics.min_rows; the largest holds {max(values.values()):,}"
                + (" before the search's subsample" if kept < 1 else "")
                + ")"
            )
        else:
            segs.append(column)
            continue
        run.notes.append(
            f"Weak-slice search: segment column {column!r} was not searched: {why}. Its "
            "per-segment metrics are reported as usual."
        )
    return names + segs, [False] * len(names) + [True] * len(segs)


def _count_nonfinite_features(run: RunState, batch: Batch, rows_before: int) -> None:
    """Count NaN/Inf feature values per column; stop the run on the first unless allowed.

    A dynamically quantized model computes its scales per batch: one Inf spoils every row of
    its batch, and without this check the candidate would be blamed for a data defect.
    """
    if batch.inputs_finite:
        # Checked by the dataset, once for the read or span it is a view of. Each check here
        # releases the GIL and waits to get it back from the scoring thread: per 256-row
        # batch that was 0.04 s of a 1 s run of bench_validate.py, for microseconds of sums.
        return
    for name, array in batch.inputs.items():
        values = np.asarray(array)
        if values.dtype.kind not in "fc" or all_finite(values):
            continue
        bad = ~np.isfinite(values.reshape(values.shape[0], -1))
        names = list(feature_names(run.dataset))
        if len(names) != bad.shape[1]:
            names = [name] if bad.shape[1] == 1 else [f"{name}[{j}]" for j in range(bad.shape[1])]
        for column, count in zip(names, bad.sum(axis=0), strict=True):
            if count:
                run.nonfinite_features[column] = run.nonfinite_features.get(column, 0) + int(count)
        if not run.spec.primary_data.allow_nonfinite_features:
            first = int(np.flatnonzero(bad.any(axis=1))[0]) + rows_before
            found = ", ".join(f"{c!r}: {k}" for c, k in run.nonfinite_features.items())
            raise DataError(
                f"Data: non-finite feature values (NaN/Inf) in column(s) {found} (counted up to "
                f"row {rows_before + values.shape[0]:,}; first at row {first:,}); expected "
                "finite features. A NaN or Inf spoils the whole batch of a dynamically "
                "quantized model and the candidate would be blamed for it. Clean the data, or "
                "set data.allow_nonfinite_features: true to keep these rows (their counts are "
                "then reported in run.notes)."
            )


class _Chunk:
    """Buffered batches: what the accumulators need, without the model inputs."""

    def __init__(self, n_candidates: int) -> None:
        self.rows = 0
        self.nbytes = 0
        self.labels: list[Array] = []
        self.row_ids: list[Array] = []
        self.segments: list[dict[str, Array]] = []
        self.features: list[Array] = []
        self.ref: list[Array] = []
        self.cands: list[list[Array]] = [[] for _ in range(n_candidates)]

    def add(self, batch: Batch, ref: Array, cands: Sequence[Array], keep_features: bool) -> None:
        self.rows += len(batch)
        self.nbytes += ref.nbytes + sum(out.nbytes for out in cands)
        if batch.labels is not None:
            self.labels.append(np.asarray(batch.labels))
        self.row_ids.append(np.asarray(batch.row_ids, dtype=np.int64))
        self.segments.append({k: np.asarray(v) for k, v in batch.segments.items()})
        if keep_features:
            # The one numeric input (``_slice_layout`` keeps features only when there is one).
            (features,) = [a for a in batch.inputs.values() if a.dtype != object]
            self.features.append(np.asarray(features))
        self.ref.append(ref)
        for store, out in zip(self.cands, cands, strict=True):
            store.append(out)


def _cat(parts: list[Array]) -> Array:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _feature_major(parts: list[Array], keep: Array | None) -> Array:
    """The chunk's (rows, d) feature batches as one (d, kept rows) array.

    The slice search reads whole columns, which are strided in (rows, d). With every row kept
    (the usual case), each batch is copied transposed into place: one pass instead of a
    concatenation and then a transposed copy.
    """
    if keep is not None:
        return np.ascontiguousarray(_cat(parts)[keep].T)
    out = np.empty((parts[0].shape[1], sum(len(p) for p in parts)), np.result_type(*parts))
    lo = 0
    for part in parts:
        out[:, lo : lo + len(part)] = part.T
        lo += len(part)
    return out


def _numeric_rows(raw: Array, n: int, model: str) -> Array:
    """A model's rows as float64, for the NaN/Inf counts and output fidelity.

    Text labels (a classifier trained on string classes) have no NaN or Inf and no numeric
    difference: they count as one zero per row here, and the task compares them by value. A
    task that compares values refuses non-numeric outputs before this point.
    """
    rows = as_rows(np.asarray(raw), n, model)
    if rows.dtype.kind not in "fiub":
        return np.zeros((n, 1))
    return rows.astype(np.float64, copy=False)


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


#: One model's answer to one batch, in the run's model order: called when the run uses it.
_Answer = Callable[[], Outputs]


def _predict(
    run: RunState, adapter: ModelAdapter, batch: Batch, on_device: bool = False
) -> Outputs:
    feed = bind_inputs(
        adapter.name,
        batch.inputs,
        adapter.input_spec(),
        columns=run.feature_columns,
        round_integers=run.round_integer_inputs,
    )
    if on_device:
        # The task reduces the outputs where they are (torch tensors on a GPU) and brings back
        # only its rows: no (rows, seq, vocab) copy to the host.
        return adapter.predict_on_device(feed)
    # Once the compared output is chosen (on the model's first batch), only it is asked for.
    chosen = run.outputs.get(adapter.name)
    return adapter.predict(feed, None if chosen is None else (chosen,))


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
    models = [ref, *(st.adapter for st in states)]
    # One pool per model that takes concurrent batches, sized by its own limit.
    pools = {
        i: ThreadPoolExecutor(m, thread_name_prefix=f"compval-{a.name}")
        for i, a in enumerate(models)
        if (m := a.max_concurrent_batches) > 1
    }
    depth = max((a.max_concurrent_batches for a in models), default=1)
    answers = _answers(run, models, pools, depth)
    try:
        for batch, (ref_answer, *cand_answers) in answers:
            n = len(batch)
            ref_out = run.compared(ref, ref_answer(), ref_output)
            as_rows(ref_out, n, ref.name)
            cand_outs = []
            for st, answer in zip(states, cand_answers, strict=True):
                out = run.compared(st.adapter, answer(), st.output)
                as_rows(out, n, st.name)
                cand_outs.append(out)
            if done == 0:
                run.state.slice_features = _slice_layout(run, batch)
            reduced = run.task.reduce_batch(
                run.state, batch, ref_out, cand_outs, models=[ref.name, *(st.name for st in states)]
            )
            if reduced is not None:  # e.g. per-token values instead of (rows, seq, vocab) logits
                batch, ref_out, cand_outs = reduced
            chunk.add(batch, ref_out, cand_outs, keep_features=run.state.slice_features is not None)
            done += n
            if chunk.rows >= CHUNK_ROWS or chunk.nbytes >= CHUNK_BYTES:
                submit(chunk)
                chunk = _Chunk(len(states))
            if progress is not None:
                progress("validate", done, total)
    finally:
        answers.close()
        for pool in pools.values():
            # Requests already sent finish (each within the adapter's own timeout); the
            # batches not yet started are dropped.
            pool.shutdown(wait=True, cancel_futures=True)
    if chunk.rows:
        submit(chunk)
    return done


def _answers(
    run: RunState,
    models: Sequence[ModelAdapter],
    pools: dict[int, ThreadPoolExecutor],
    depth: int,
) -> Generator[tuple[Batch, list[_Answer]], None, None]:
    """Each batch, in order, with each model's answer to it (checked for NaN/Inf first).

    Without pools (every model local) an answer is the model's call itself, made when the run
    asks for it: exactly the sequential run. With pools, the batch is submitted to each
    concurrent model's pool as soon as it is read, up to ``depth`` batches ahead of the one
    in use; local models still run when asked, on the caller's thread. A failure while
    reading or checking batch i (a bad file, NaN features) is raised after batches before i
    are handed out, where a sequential run would raise it.
    """
    batches = iter(run.dataset.batches(run.spec.batch_size))
    seen = 0
    on_device = run.task.device_outputs
    if not pools:
        for batch in batches:
            _count_nonfinite_features(run, batch, seen)
            seen += len(batch)
            yield batch, [functools.partial(_predict, run, a, batch, on_device) for a in models]
        return
    ahead: deque[tuple[Batch, list[_Answer]]] = deque()
    failure: Exception | None = None
    while True:
        try:
            batch = next(batches)
            _count_nonfinite_features(run, batch, seen)
        except StopIteration:
            break
        except Exception as exc:  # raised in batch order, below
            failure = exc
            break
        seen += len(batch)
        answers: list[_Answer] = []
        for i, adapter in enumerate(models):
            pool = pools.get(i)
            if pool is None:
                answers.append(functools.partial(_predict, run, adapter, batch, on_device))
            else:
                answers.append(pool.submit(_predict, run, adapter, batch, on_device).result)
        ahead.append((batch, answers))
        if len(ahead) >= depth:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()
    if failure is not None:
        raise failure


def _flush(run: RunState, ref: ModelAdapter, states: list[CandidateState], chunk: _Chunk) -> None:
    n = chunk.rows
    task, state = run.task, run.state
    ref_raw = _cat(chunk.ref)
    ref_kind = run.kind_of(ref, ref_raw)
    cand_raws = [_cat(parts) for parts in chunk.cands]
    for st, raw in zip(states, cand_raws, strict=True):
        if st.kind is None:
            st.kind = run.kind_of(st.adapter, raw)
    row_ids = _cat(chunk.row_ids)
    segments = {c: _cat([s[c] for s in chunk.segments]) for c in run.columns}
    raw_labels = _cat(chunk.labels) if chunk.labels else None
    prepared = task.prepare_chunk(
        state, reference=ref_raw, kind=ref_kind, labels=raw_labels, model=ref.name
    )
    seg = segment_ids(
        state.segments,
        n=n,
        labels=prepared.label_classes,
        classes=state.classes,
        segments=segments,
        columns=run.columns,
    )
    blocks = row_blocks(row_ids, seed=run.seed, n_blocks=N_BLOCKS)
    ref_rows = _numeric_rows(ref_raw, n, ref.name)
    slice_columns: list[Array] | None = None
    keep: Array | None = None
    if state.slice_features is not None:
        keep = slice_sample(row_ids, seed=run.seed, total_rows=len(run.dataset))
        features = _feature_major(chunk.features, keep)
        slice_columns = list(features)
        sel = slice(None) if keep is None else keep
        slice_columns += [segments[c][sel] for c in state.slice_features[0][features.shape[0] :]]

    for st, raw in zip(states, cand_raws, strict=True):
        assert st.kind is not None
        cand_rows = _numeric_rows(raw, n, st.name)
        base = RowsBase(
            reference=ref_rows,
            candidate=cand_rows,
            row_ids=row_ids,
            blocks=blocks,
            segment_ids=seg,
            slice_columns=slice_columns,
            slice_keep=keep,
        )
        rows, nonfinite = task.pair(state, prepared, base, raw=raw, kind=st.kind, model=st.name)
        if not st.accumulators:
            st.accumulators = task.accumulators(
                state, reference_kind=ref_kind, candidate_kind=st.kind, width=ref_rows.shape[1]
            )
            if run.extra_accumulators is not None:
                st.accumulators += run.extra_accumulators(state)
        for acc in st.accumulators:
            acc.update(nonfinite if isinstance(acc, NonFiniteCounts) else rows)
