"""``run_validation``: the one orchestrator.

spec -> dataset + adapters -> paired batches -> accumulators -> estimates (with intervals)
-> statistical tests -> checks -> Report. Both models see exactly the same batches, of the
spec's batch size (dynamic INT8 models give different predictions at different batch sizes,
so the batch size is part of the evaluation and is recorded).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compval import __version__
from compval._evidence import table_tests
from compval._prepare import OutputKind
from compval._stream import N_BLOCKS, CandidateState, RunState, stream
from compval.adapters import ModelAdapter, as_adapter, bind_inputs, load_model
from compval.checks import CheckSettings, evaluate, resolve_criteria
from compval.data import Dataset, as_dataset, load_dataset
from compval.errors import SpecValidationError
from compval.metrics import ContingencyTable, MetricEstimate, Resampling, metric_info
from compval.reports._model import CheckResult, MetricValue, Report, RunInfo
from compval.spec import AcceptanceSpec, CriterionSpec, LoadedSpec, ModelRef, load_spec

__all__ = ["RunOptions", "run_validation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Overrides and hooks for one run (the CLI fills these from flags)."""

    replicates: int | None = None
    progress: Callable[[str, int, int], None] | None = None
    profile: bool = True


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


def _check_candidate_names(spec: AcceptanceSpec, names: Sequence[str]) -> None:
    """A criterion naming an unknown candidate would silently gate nothing: refuse it."""
    for i, c in enumerate(spec.criteria):
        unknown = [n for n in (c.candidates or []) if n not in names]
        if unknown:
            raise SpecValidationError(
                f"criteria[{i}].candidates: unknown candidate(s) {unknown}; expected names "
                f"among {list(names)}. Fix the name, or remove 'candidates' to gate them all.",
                path=f"criteria[{i}].candidates",
            )


def _check_labels_needed(spec: AcceptanceSpec, has_labels: bool) -> None:
    """A criterion on a label-based metric cannot be decided on unlabelled data."""
    if has_labels:
        return
    for i, c in enumerate(spec.criteria):
        if (c.segment or "").startswith("label="):
            raise SpecValidationError(
                f"criteria[{i}].segment: {c.segment!r} needs labels, but the data has none; set "
                "data.labels to the label column, or use a segment column.",
                path=f"criteria[{i}].segment",
            )
        info = metric_info(c.metric)
        if info is not None and info.needs_labels:
            raise SpecValidationError(
                f"criteria[{i}].metric: {c.metric!r} needs labels, but the data has none; set "
                "data.labels to the label column, or use label-free metrics (top1_agreement, "
                "mean_kl_divergence, output fidelity).",
                path=f"criteria[{i}].metric",
            )


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
    if isinstance(spec, LoadedSpec):
        loaded = spec
    elif isinstance(spec, AcceptanceSpec):
        loaded = LoadedSpec(spec, path=None, text_hash=None)
    else:
        loaded = load_spec(spec)
    s = loaded.spec
    if data is None:
        dataset = load_dataset(s.data, base_dir=loaded.base_dir)
    elif isinstance(data, (tuple, list, np.ndarray, Dataset)):
        # Arrays carry no column names: the spec's data.labels/segments do not apply.
        dataset = as_dataset(data)
    else:
        dataset = as_dataset(
            data, labels=s.data.labels, segments=s.data.segments, features=s.data.features
        )
    replicates = s.statistics.replicates if options.replicates is None else options.replicates
    resampling = (
        Resampling(
            replicates=replicates, confidence=s.statistics.confidence, seed=s.statistics_seed
        )
        if replicates > 0
        else None
    )
    settings = None
    budgets: list[CriterionSpec] = []
    if s.performance is not None and options.profile:
        from compval.profiling import resolve_settings

        settings = resolve_settings(
            s.performance, base_dir=loaded.base_dir, confidence=s.statistics.confidence
        )
        budgets = list(settings.budgets)
    criteria = resolve_criteria(
        [*s.criteria, *budgets],
        task=s.task.type,
        resampling=resampling is not None,
        segment_columns=list(dataset.segment_columns),
        allow_nonfinite=s.allow_nonfinite,
    )
    _check_labels_needed(s, dataset.has_labels)
    run = RunState(s, dataset, resampling)

    with ExitStack() as stack:
        ref_adapter, ref_output, cands = _open_models(loaded, reference, candidates)
        for adapter in [ref_adapter, *(a for _, a, _ in cands)]:
            stack.enter_context(adapter)
        states = [CandidateState(name, adapter, output) for name, adapter, output in cands]
        _check_candidate_names(s, [st.name for st in states])
        n_rows = stream(run, ref_adapter, ref_output, states, options.progress)
        infos = {
            ref_adapter.name: _info_dict(ref_adapter, "reference", run.kinds.get(ref_adapter.name))
        }
        for st in states:
            infos[st.name] = _info_dict(st.adapter, "candidate", run.kinds.get(st.name))
        estimates = {st.name: _estimates(run, st) for st in states}
        statistics = _statistics(run, states)
        for name, slices in statistics["discovered"].items():
            estimates[name] = [*estimates[name], *_slice_estimates(slices)]
        profile_dict = None
        notes: list[str] = []
        if settings is not None:
            profile_dict, perf, notes = _profile(
                run, loaded, settings, ref_adapter, states, options.progress
            )
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
    if profile_dict is not None:
        checks = name_unsupported_ops(checks, profile_dict)
    metrics = tuple(_metric_value(name, e) for name, ests in estimates.items() for e in ests)
    finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not s.criteria and not budgets:
        notes.append(
            "No criteria in the spec: only the built-in checks ran (nonfinite-outputs unless "
            "allow_nonfinite: true)."
            if criteria
            else "No criteria: nothing is gated."
        )
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


def _estimates(run: RunState, st: CandidateState) -> list[MetricEstimate]:
    out: list[MetricEstimate] = []
    for acc in st.accumulators:
        if isinstance(acc, ContingencyTable):
            acc.class_names = [run.classes.display(i) for i in range(len(run.classes))]
            out.extend(table_tests(acc))
        out.extend(acc.estimates(run.resampling))
    if st.evidence is not None:
        out.extend(st.evidence.estimates())
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
        ci_method=e.ci_method if e.ci else None,
    )


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


def _statistics(run: RunState, states: Sequence[CandidateState]) -> dict[str, Any]:
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
        if st.evidence is not None:
            slices = st.evidence.discovered(
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
                metric="accuracy_score",
                segment=seg,
                higher_is_better=True,
                paired=False,
                n=int(sl["n"]),
                reference=ref,
                candidate=cand,
                delta=cand - ref,
                ratio=cand / ref if ref else None,
                ci=ci,
                confidence=float(sl["confidence"]),
                p_adjusted=float(sl["p_value_adjusted"]),
                ci_method="tango_score",
            )
        )
        out.append(
            MetricEstimate(
                metric="flip_correct_to_wrong_rate",
                segment=seg,
                higher_is_better=False,
                paired=True,
                n=int(sl["n"]),
                reference=None,
                candidate=float(sl["flip_correct_to_wrong_rate"]),
                delta=None,
                p_adjusted=float(sl["p_value_adjusted"]),
            )
        )
    return out


def _profile(
    run: RunState,
    loaded: LoadedSpec,
    settings: Any,
    ref: ModelAdapter,
    states: Sequence[CandidateState],
    progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[str, Any], dict[str, list[MetricEstimate]], list[str]]:
    """Profile the models on the first rows of the data, with the target's thread count.

    File-based models are opened again with the target's threads, so the accuracy run's
    settings never leak into the timing; in-memory models are timed as they are.
    """
    from compval.profiling import profile_models

    spec = loaded.spec
    rows = max(settings.batch_sizes)
    first = next(iter(run.dataset.batches(rows)))
    with ExitStack() as stack:

        def reopen(ref_spec: ModelRef, adapter: ModelAdapter) -> ModelAdapter:
            # Every model is timed with the target's thread count (None: the runtime's
            # default), whatever its own 'threads:' for the accuracy run.
            if ref_spec.path is None or ref_spec.threads == settings.threads:
                return adapter
            fresh = load_model(
                ref_spec.model_copy(update={"threads": settings.threads, "name": adapter.name}),
                base_dir=loaded.base_dir,
            )
            stack.enter_context(fresh)
            return fresh

        timed_ref = reopen(spec.reference, ref)
        by_name = {(c.name or (Path(c.path).stem if c.path else "")): c for c in spec.candidates}
        timed = {
            st.name: (reopen(by_name[st.name], st.adapter) if st.name in by_name else st.adapter)
            for st in states
        }
        sample = bind_inputs(timed_ref.name, first.inputs, timed_ref.input_spec())
        steps = 0

        def tick(message: str) -> None:
            nonlocal steps
            steps += 1
            if progress is not None:
                progress(f"profile: {message}", steps, steps + 1)

        result = profile_models(
            timed_ref, timed, sample, settings=settings, seed=spec.seed, progress=tick
        )
    perf = {
        st.name: [_estimate_from_value(v) for v in result.metric_values(st.name)] for st in states
    }
    return result.to_dict(), perf, list(result.notes)


def name_unsupported_ops(
    checks: Sequence[CheckResult], profile: Mapping[str, Any]
) -> list[CheckResult]:
    """Name the operators in failing ``unsupported_op_count`` checks.

    The count alone is not something a user can act on.
    """
    models = profile.get("models", {})
    out = []
    for c in checks:
        ops = models.get(c.candidate, {}).get("unsupported_ops")
        if c.metric == "unsupported_op_count" and c.verdict != "pass" and ops:
            c = dataclasses.replace(c, message=f"{c.message} Unsupported: {', '.join(ops)}.")
        out.append(c)
    return out


def _estimate_from_value(v: MetricValue) -> MetricEstimate:
    ci = None if v.ci_low is None or v.ci_high is None else (v.ci_low, v.ci_high)
    paired = v.reference_value is None and v.delta is None
    return MetricEstimate(
        metric=v.metric,
        segment=v.segment,
        higher_is_better=v.higher_is_better,
        paired=paired,
        n=v.n,
        reference=v.reference_value,
        candidate=v.candidate_value,
        delta=v.delta,
        ratio=None
        if not v.reference_value or v.candidate_value is None
        else v.candidate_value / v.reference_value,
        ci=ci,
        ci_candidate=ci if paired else None,
        confidence=v.confidence,
        ci_method=v.ci_method,
    )
