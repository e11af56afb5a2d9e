"""``run_validation``: the one orchestrator.

spec -> dataset + adapters -> paired batches -> accumulators -> estimates (with intervals)
-> statistical tests -> checks -> Report. Both models see exactly the same batches, of the
spec's batch size (dynamic INT8 models give different predictions at different batch sizes,
so the batch size is part of the evaluation and is recorded).
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compval import __version__
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
from compval._evidence import RunEvidence, table_tests
from compval.adapters import ModelAdapter, as_adapter, bind_inputs, load_model
from compval.checks import CheckSettings, Criterion, evaluate, resolve_criteria
from compval.data import Batch, Dataset, as_dataset, load_dataset
from compval.errors import DataError, SpecValidationError
from compval.metrics import (
    Accumulator,
    Calibration,
    ClassTable,
    ContingencyTable,
    KLQuantiles,
    MetricEstimate,
    NonFiniteCounts,
    OutputFidelity,
    PairedRows,
    ProbabilityDivergence,
    RegressionErrors,
    Resampling,
    SegmentTable,
    metric_info,
)
from compval.reports._model import MetricValue, Report, RunInfo
from compval.spec import AcceptanceSpec, LoadedSpec, ModelRef, load_spec

__all__ = ["RunOptions", "run_validation"]

log = logging.getLogger(__name__)
N_BLOCKS = 256
#: Metrics that need labels; a criterion on one of them with unlabelled data is a spec error.
_NEEDS_LABELS = frozenset(
    {
        "accuracy_score", "macro_f1_score", "weighted_f1_score", "precision_score",
        "recall_score", "f1_score", "flip_correct_to_wrong_rate", "flip_wrong_to_correct_rate",
        "brier_loss", "expected_calibration_error", "mean_absolute_error",
        "root_mean_squared_error", "r2_score",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Overrides and hooks for one run (the CLI fills these from flags)."""

    replicates: int | None = None
    progress: Callable[[str, int, int], None] | None = None
    profile: bool = True


@dataclass
class _CandidateState:
    name: str
    adapter: ModelAdapter
    output: str | None
    kind: OutputKind | None = None
    accumulators: list[Accumulator] = field(default_factory=list)
    extras: Any = None


def _model_name(ref: ModelRef, fallback: str) -> str:
    if ref.name:
        return ref.name
    if ref.path:
        return Path(ref.path).stem
    return fallback


def _open_models(
    loaded: LoadedSpec,
    reference: object | None,
    candidates: Mapping[str, object] | None,
) -> tuple[ModelAdapter, str | None, list[tuple[str, ModelAdapter, str | None]]]:
    spec = loaded.spec
    ref_name = _model_name(spec.reference, "reference")
    if reference is not None:
        ref_adapter = as_adapter(reference, name=ref_name, threads=spec.reference.threads)
    elif spec.reference.path is not None:
        ref_adapter = load_model(spec.reference, base_dir=loaded.base_dir)
    else:
        raise SpecValidationError(
            "reference.path: required key is missing (or pass the model object in Python).",
            path="reference.path",
        )
    out: list[tuple[str, ModelAdapter, str | None]] = []
    objects = dict(candidates or {})
    for i, ref in enumerate(spec.candidates):
        name = _model_name(ref, f"candidate{i}")
        if name in objects:
            adapter = as_adapter(objects.pop(name), name=name, threads=ref.threads)
        elif ref.path is not None:
            adapter = load_model(ref, base_dir=loaded.base_dir)
        else:
            raise SpecValidationError(
                f"candidates[{i}].path: required key is missing (or pass the model object "
                f"for {name!r} in Python).",
                path=f"candidates[{i}].path",
            )
        out.append((name, adapter, ref.output))
    for name, obj in objects.items():
        out.append((name, as_adapter(obj, name=name), None))
    names = [ref_name] + [n for n, _, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecValidationError(
            f"candidates: model names must be unique; {dupes} used more than once. Give each "
            "model a distinct 'name'.",
            path="candidates",
        )
    return ref_adapter, spec.reference.output, out


def _check_labels_needed(criteria: Sequence[Criterion], spec: AcceptanceSpec, has_labels: bool) -> None:
    if has_labels:
        return
    for i, c in enumerate(spec.criteria):
        if c.metric.split("[", 1)[0] in _NEEDS_LABELS:
            raise SpecValidationError(
                f"criteria[{i}].metric: {c.metric!r} needs labels, but the data has none; set "
                "data.labels to the label column, or use label-free metrics (top1_agreement, "
                "mean_kl_divergence, output fidelity).",
                path=f"criteria[{i}].metric",
            )


class _Run:
    """State of one validation run (kept out of the public API)."""

    def __init__(self, spec: AcceptanceSpec, dataset: Dataset, resampling: Resampling | None) -> None:
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

    def kind_of(self, model: str, raw: Array) -> OutputKind:
        if self.task != "classification":
            return "values"
        forced = self.spec.task.outputs
        kind: OutputKind = detect_kind(raw) if forced == "auto" else forced
        self.kinds.setdefault(model, kind)
        return self.kinds[model]

    def seed_classes(self, adapter: ModelAdapter, raw: Array, kind: OutputKind) -> None:
        if kind not in ("probabilities", "logits") or not self.dynamic_classes:
            return
        k = raw.reshape(raw.shape[0], -1).shape[1]
        names = getattr(adapter, "classes", None)
        values = list(names) if names is not None and len(names) == k else list(range(k))
        self.classes = ClassTable([v.item() if isinstance(v, np.generic) else v for v in values])
        self.dynamic_classes = False
        self.n_scores = k


def _make_accumulators(run: _Run, ref_kind: OutputKind, cand_kind: OutputKind, width: int) -> list[Accumulator]:
    seg = run.segments
    has_labels = run.dataset.has_labels
    accs: list[Accumulator] = [NonFiniteCounts(seg)]
    if run.task == "classification":
        accs.append(ContingencyTable(seg, class_names=[]))
        scores = ref_kind != "labels" and cand_kind != "labels"
        if scores:
            accs += [OutputFidelity(seg), ProbabilityDivergence(seg), KLQuantiles(seg)]
            if has_labels:
                accs.append(Calibration(seg))
    else:
        accs.append(OutputFidelity(seg))
        if run.task == "regression" and has_labels:
            accs.append(RegressionErrors(seg, width=width))
    return accs


def run_validation(
    spec: AcceptanceSpec | LoadedSpec | str | Path,
    *,
    reference: object | None = None,
    candidates: Mapping[str, object] | None = None,
    data: object | None = None,
    options: RunOptions = RunOptions(),
) -> Report:
    """Validate every candidate against the reference, as the spec says.

    Args:
        spec: A spec file path, a loaded spec, or an AcceptanceSpec (paths then relative to
            the current directory).
        reference: Optional model object (nn.Module, estimator, callable, adapter) used
            instead of ``spec.reference.path``.
        candidates: Optional name -> model object; names matching a spec candidate replace
            its path, others are added.
        data: Optional in-memory data (DataFrame, (X, y), array, Dataset) used instead of
            ``spec.data.path``; ``spec.data.labels``/``segments`` still name its columns.
        options: Overrides (replicates) and a progress callback.

    Returns:
        The Report; ``report.passed`` is the gate.

    Raises:
        SpecError: The spec is invalid.
        AdapterError: A model cannot be loaded or run.
        DataError: The data cannot be read or does not fit the models.
    """
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    loaded = spec if isinstance(spec, LoadedSpec) else (
        LoadedSpec(spec, path=None, text_hash=None) if isinstance(spec, AcceptanceSpec) else load_spec(spec)
    )
    s = loaded.spec
    dataset = (
        as_dataset(data, labels=s.data.labels, segments=s.data.segments, features=s.data.features)
        if data is not None
        else load_dataset(s.data, base_dir=loaded.base_dir)
    )
    replicates = s.statistics.replicates if options.replicates is None else options.replicates
    resampling = (
        Resampling(replicates=replicates, confidence=s.statistics.confidence, seed=s.statistics_seed)
        if replicates > 0
        else None
    )
    criteria = resolve_criteria(
        s.criteria,
        task=s.task.type,
        resampling=resampling is not None,
        segment_columns=list(dataset.segment_columns),
        allow_nonfinite=s.allow_nonfinite,
    )
    _check_labels_needed(criteria, s, dataset.has_labels)
    run = _Run(s, dataset, resampling)

    with ExitStack() as stack:
        ref_adapter, ref_output, cands = _open_models(loaded, reference, candidates)
        for adapter in [ref_adapter, *(a for _, a, _ in cands)]:
            stack.enter_context(adapter)
        states = [_CandidateState(name, adapter, output) for name, adapter, output in cands]
        n_rows = _stream(run, ref_adapter, ref_output, states, options)
        infos = {ref_adapter.name: _info_dict(ref_adapter, "reference", run.kinds.get(ref_adapter.name))}
        for st in states:
            infos[st.name] = _info_dict(st.adapter, "candidate", run.kinds.get(st.name))
        estimates = {st.name: _estimates(run, st) for st in states}
        statistics = _statistics(run, states)
        for name, slices in statistics["discovered"].items():
            estimates[name] = [*estimates[name], *_slice_estimates(slices)]
        profile_dict = None
        if s.performance is not None and options.profile:
            profile_dict, perf = _profile(run, loaded, ref_adapter, states)
            for name, values in perf.items():
                estimates[name] = [*estimates[name], *values]

    checks = evaluate(
        criteria,
        estimates,
        settings=CheckSettings(
            min_rows=s.statistics.min_rows,
            confidence=s.statistics.confidence,
            correction=s.statistics.correction,
            inconclusive=s.statistics.inconclusive,
        ),
    )
    metrics = tuple(
        _metric_value(name, e) for name, ests in estimates.items() for e in ests
    )
    finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    notes = []
    if not criteria:
        notes.append("No criteria: nothing is gated.")
    run_info = RunInfo(
        compval_version=__version__,
        python_version=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        runtimes=_runtime_versions(),
        task=s.task.type,
        spec_hash=loaded.hash,
        spec_path=str(loaded.path) if loaded.path else None,
        data_hash=dataset.fingerprint(),
        data_rows=n_rows,
        seed=s.seed,
        batch_size=s.batch_size,
        started_at=started_at,
        finished_at=finished_at,
        duration_s=round(time.perf_counter() - started, 3),
        models=infos,
        segment_columns=tuple(dataset.segment_columns),
        notes=tuple(notes),
    )
    return Report(
        run=run_info,
        metrics=metrics,
        checks=tuple(checks),
        candidates=tuple(st.name for st in states),
        statistics=statistics,
        profile=profile_dict,
    )


def _stream(
    run: _Run,
    ref: ModelAdapter,
    ref_output: str | None,
    states: list[_CandidateState],
    options: RunOptions,
) -> int:
    from compval.stats import row_blocks

    spec = run.spec
    total = len(run.dataset)
    done = 0
    ref_kind: OutputKind | None = None
    for batch in run.dataset.batches(spec.batch_size):
        n = len(batch)
        outputs = select_output(
            ref.predict(bind_inputs(ref.name, batch.inputs, ref.input_spec())), ref_output, ref.name
        )
        as_rows(outputs, n, ref.name)
        if ref_kind is None:
            ref_kind = run.kind_of(ref.name, outputs)
            run.seed_classes(ref, outputs, ref_kind)
        cand_raw: list[Array] = []
        for st in states:
            out = select_output(
                st.adapter.predict(bind_inputs(st.name, batch.inputs, st.adapter.input_spec())),
                st.output,
                st.name,
            )
            as_rows(out, n, st.name)
            if st.kind is None:
                st.kind = run.kind_of(st.name, out)
                run.seed_classes(st.adapter, out, st.kind)
            cand_raw.append(out)

        # Shared per batch: labels, segment ids and bootstrap blocks.
        labels_codes: Array | None = None
        label_names: Array | None = None
        reg_labels: Array | None = None
        if batch.labels is not None:
            if run.task == "classification":
                labels_codes = label_codes(
                    np.asarray(batch.labels), run.classes, dynamic=run.dynamic_classes, n_scores=run.n_scores
                )
            elif run.task == "regression":
                reg_labels = np.asarray(batch.labels, dtype=np.float64).reshape(n, -1)
        ref_prep = None
        if run.task == "classification":
            ref_prep = prepare_classification(
                outputs, ref_kind, run.classes, dynamic=run.dynamic_classes, model=ref.name
            )
        if labels_codes is not None:
            names = np.asarray(run.classes.names, dtype=object)
            label_names = names[labels_codes]
        seg = segment_ids(
            run.segments, n=n, label_names=label_names, segments=batch.segments, columns=run.columns
        )
        blocks = row_blocks(np.asarray(batch.row_ids, dtype=np.int64), seed=run.seed, n_blocks=N_BLOCKS)
        ref_rows = as_rows(np.asarray(outputs), n, ref.name).astype(np.float64, copy=False)
        for st, raw in zip(states, cand_raw, strict=True):
            cand_rows = as_rows(np.asarray(raw), n, st.name).astype(np.float64, copy=False)
            assert st.kind is not None
            if run.task == "classification":
                assert ref_prep is not None
                cand_prep = prepare_classification(
                    raw, st.kind, run.classes, dynamic=run.dynamic_classes, model=st.name
                )
                if ref_prep.prob is not None and cand_prep.prob is not None:
                    if ref_prep.prob.shape[1] != cand_prep.prob.shape[1]:
                        raise DataError(
                            f"Candidate {st.name!r} outputs {cand_prep.prob.shape[1]} classes but "
                            f"the reference outputs {ref_prep.prob.shape[1]}; both models must "
                            "score the same classes in the same order."
                        )
                    fid_ref, fid_cand = ref_prep.prob, cand_prep.prob
                else:
                    fid_ref, fid_cand = ref_rows, cand_rows
                rows = PairedRows(
                    reference=fid_ref,
                    candidate=fid_cand,
                    row_ids=batch.row_ids,
                    blocks=blocks,
                    segment_ids=seg,
                    finite=ref_prep.finite & cand_prep.finite,
                    labels=labels_codes,
                    ref_pred=ref_prep.pred,
                    cand_pred=cand_prep.pred,
                    ref_prob=ref_prep.prob,
                    cand_prob=cand_prep.prob,
                )
                nonfinite = PairedRows(
                    reference=ref_rows, candidate=cand_rows, row_ids=batch.row_ids,
                    blocks=blocks, segment_ids=seg, finite=rows.finite,
                )
            else:
                if cand_rows.shape != ref_rows.shape:
                    raise DataError(
                        f"Candidate {st.name!r} returns outputs of shape {cand_rows.shape[1:]} "
                        f"per row but the reference returns {ref_rows.shape[1:]}; the models "
                        "must produce comparable outputs (set 'output' to pick one)."
                    )
                if reg_labels is not None and reg_labels.shape[1] != ref_rows.shape[1]:
                    raise DataError(
                        f"Labels have {reg_labels.shape[1]} values per row but the models "
                        f"output {ref_rows.shape[1]}; regression targets must match the outputs."
                    )
                finite = np.isfinite(ref_rows).all(axis=1) & np.isfinite(cand_rows).all(axis=1)
                rows = PairedRows(
                    reference=ref_rows, candidate=cand_rows, row_ids=batch.row_ids,
                    blocks=blocks, segment_ids=seg, finite=finite, labels=reg_labels,
                )
                nonfinite = rows
            if not st.accumulators:
                st.accumulators = _make_accumulators(run, ref_kind, st.kind, ref_rows.shape[1])
                st.extras = _make_extras(run, st, batch, ref_kind)
            for acc in st.accumulators:
                acc.update(nonfinite if isinstance(acc, NonFiniteCounts) else rows)
            if isinstance(st.extras, RunEvidence):
                n_features = 0
                if st.extras.slices is not None:
                    n_features = len(st.extras.slices.feature_names) - sum(
                        1 for c in run.columns if c in st.extras.slices.feature_names
                    )
                st.extras.update(batch, rows, _slice_columns(batch, run, n_features))
        done += n
        if options.progress is not None:
            options.progress("validate", done, total)
    if done == 0:
        raise DataError("The dataset produced no rows; nothing to validate.")
    return done


def _estimates(run: _Run, st: _CandidateState) -> list[MetricEstimate]:
    out: list[MetricEstimate] = []
    for acc in st.accumulators:
        if isinstance(acc, ContingencyTable):
            acc.class_names = [run.classes.display(i) for i in range(len(run.classes))]
            out.extend(table_tests(acc))
        out.extend(acc.estimates(run.resampling))
    if isinstance(st.extras, RunEvidence):
        out.extend(st.extras.estimates())
    return out


def _metric_value(candidate: str, e: MetricEstimate) -> MetricValue:
    return MetricValue(
        candidate=candidate,
        metric=e.metric,
        segment=e.segment,
        reference_value=e.reference,
        candidate_value=e.candidate,
        delta=e.delta,
        n=e.n,
        higher_is_better=e.higher_is_better,
        ci_low=e.ci[0] if e.ci else None,
        ci_high=e.ci[1] if e.ci else None,
        confidence=e.confidence if e.ci else None,
        ci_method=None if e.ci is None else ("poisson_table_bootstrap" if _is_table(e.metric) else "poisson_block_bootstrap"),
    )


def _is_table(metric: str) -> bool:
    info = metric_info(metric)
    return info is not None and info.fraction and info.name not in ("expected_calibration_error",)


def _info_dict(adapter: ModelAdapter, role: str, kind: OutputKind | None) -> dict[str, Any]:
    info = adapter.info()
    return {
        "role": role,
        "runtime": info.runtime,
        "runtime_version": info.runtime_version,
        "device": info.device,
        "model_id": info.model_id,
        "path": info.path,
        "size_bytes": info.size_bytes,
        "output_kind": kind,
    }


def _runtime_versions() -> dict[str, str]:
    out = {"numpy": np.__version__}
    for module in ("onnxruntime", "torch", "sklearn", "scipy"):
        mod = sys.modules.get(module)
        if mod is not None:
            out[module] = str(getattr(mod, "__version__", "unknown"))
    return out


MAX_SLICE_FEATURES = 256


def _slice_layout(run: _Run, batch: Batch) -> tuple[list[str], list[bool]] | None:
    """Names and categorical flags of the columns searched for weak slices, or None."""
    if not run.spec.statistics.discovery or run.task != "classification":
        return None
    if not run.dataset.has_labels or len(batch.inputs) != 1:
        return None
    (features,) = batch.inputs.values()
    if features.ndim != 2 or features.shape[1] > MAX_SLICE_FEATURES:
        return None
    names = list(getattr(run.dataset, "feature_columns", ()) or ())
    if len(names) != features.shape[1]:
        names = [f"x{j}" for j in range(features.shape[1])]
    names = [n for n in names]
    segs = [c for c in run.columns if c not in names]
    return names + segs, [False] * len(names) + [True] * len(segs)


def _slice_columns(batch: Batch, run: _Run, n_features: int) -> list[Array]:
    (features,) = batch.inputs.values()
    cols = [features[:, j] for j in range(n_features)]
    return cols + [np.asarray(batch.segments[c]) for c in run.columns if c in batch.segments]


def _make_extras(run: _Run, st: _CandidateState, batch: Batch, ref_kind: OutputKind) -> RunEvidence | None:
    if run.task != "classification":
        return None
    layout = _slice_layout(run, batch)
    scores = ref_kind != "labels" and st.kind != "labels"
    if not scores and layout is None:
        return None
    return RunEvidence(
        confidences=scores,
        slice_features=None if layout is None else layout[0],
        categorical=() if layout is None else layout[1],
        seed=run.seed,
    )


def _statistics(run: _Run, states: Sequence[_CandidateState]) -> dict[str, Any]:
    s = run.spec.statistics
    out: dict[str, Any] = {
        "resampling": None
        if run.resampling is None
        else {
            "method": "poisson bootstrap: Poisson(n) counts per contingency-table cell for "
            "classification metrics; Poisson(1) weights per hashed row block "
            f"({N_BLOCKS} blocks) for continuous metrics",
            "replicates": run.resampling.replicates,
            "confidence": run.resampling.confidence,
            "seed": run.resampling.seed,
            "interval": "percentile",
        },
        "decision": {
            "rule": "non-inferiority: pass when the interval's worst end meets the threshold, "
            "fail when the estimate does not, else inconclusive",
            "min_rows": s.min_rows,
            "correction": s.correction,
            "inconclusive": s.inconclusive,
        },
        "discovered": {},
    }
    for st in states:
        if isinstance(st.extras, RunEvidence):
            slices = st.extras.discovered(
                min_rows=s.min_rows, confidence=s.confidence, top_k=s.top_slices
            )
            if slices:
                out["discovered"][st.name] = slices
    return out


def _slice_estimates(slices: Sequence[Mapping[str, Any]]) -> list[MetricEstimate]:
    """Discovered slices as estimates, so criteria with ``segment: discovered`` can gate them."""
    out: list[MetricEstimate] = []
    for sl in slices:
        seg = f"slice:{sl['description']}"
        ci = (float(sl["ci"][0]), float(sl["ci"][1]))
        ref, cand = float(sl["reference_accuracy"]), float(sl["candidate_accuracy"])
        out.append(
            MetricEstimate(
                metric="accuracy_score", segment=seg, higher_is_better=True, paired=False,
                n=int(sl["n"]), reference=ref, candidate=cand, delta=cand - ref,
                ratio=cand / ref if ref else None, ci=ci, confidence=float(sl["confidence"]),
                p_adjusted=float(sl["p_value_adjusted"]),
            )
        )
        out.append(
            MetricEstimate(
                metric="flip_correct_to_wrong_rate", segment=seg, higher_is_better=False,
                paired=True, n=int(sl["n"]), reference=None,
                candidate=float(sl["flip_correct_to_wrong_rate"]), delta=None,
                p_adjusted=float(sl["p_value_adjusted"]),
            )
        )
    return out


def _profile(
    run: _Run, loaded: LoadedSpec, ref: ModelAdapter, states: Sequence[_CandidateState]
) -> tuple[dict[str, Any] | None, dict[str, list[MetricEstimate]]]:
    return None, {}


