"""``run_validation``: spec -> models and data -> paired run -> estimates -> checks -> Report.

The one orchestrator of a validation. Both models see exactly the same batches, of the
spec's batch size (dynamic INT8 models give different predictions at different batch sizes,
so the batch size is part of the evaluation and is recorded).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from compval.adapters import (
    ModelAdapter,
    as_adapter,
    default_model_name,
    derive_model,
    load_model,
)
from compval.checks import CheckSettings, Criterion, DatasetFacts, evaluate, resolve_criteria
from compval.data import feature_names
from compval.engine._datasets import (
    data_hash,
    dataset_notes,
    load_parts,
    merged_statistics,
    part_notes,
    robustness_part,
)
from compval.engine._estimates import metric_value, name_unsupported_ops, slice_estimates
from compval.engine._provenance import Clock, model_info, run_info
from compval.engine._stream import N_BLOCKS, CandidateState, RunState, stream
from compval.errors import ProfilingError, SpecValidationError
from compval.metrics import (
    Calibration,
    ContingencyTable,
    MetricEstimate,
    Resampling,
    WeakSlices,
    metric_info,
)
from compval.results import (
    POINT_ONLY_NOTE,
    DecisionInfo,
    FlipMatrix,
    NumericsSection,
    Reliability,
    Report,
    ResamplingInfo,
    SliceResult,
    StatisticsSection,
)
from compval.spec import (
    BUILTIN_TARGETS,
    ROBUSTNESS_METRIC_DIRECTIONS,
    AcceptanceSpec,
    CriterionSpec,
    LoadedSpec,
    ModelRef,
    load_spec,
)
from compval.types import ModelLike

if TYPE_CHECKING:
    from compval.engine._robustness import Robustness
    from compval.profiling import ProfileResult, ProfileSettings

__all__ = ["RunOptions", "run_validation"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Overrides and hooks for one run (the CLI fills these from flags)."""

    replicates: int | None = None
    progress: Progress | None = None
    profile: bool = True


def _model_name(ref: ModelRef, fallback: str) -> str:
    if ref.name:
        return ref.name
    if ref.path:
        return default_model_name(ref.path)
    return fallback


def _open_models(
    loaded: LoadedSpec,
    reference: ModelLike | None,
    candidates: Mapping[str, ModelLike] | None,
) -> tuple[ModelAdapter, str | None, list[tuple[str, ModelAdapter, str | None]]]:
    spec = loaded.spec
    ref_name = _model_name(spec.reference, "reference")
    if reference is not None:
        ref_adapter = as_adapter(reference, name=ref_name, threads=spec.reference.threads)
        if spec.reference.dtype is not None or spec.reference.device is not None:
            ref_adapter = derive_model(ref_adapter, spec.reference, name=ref_name)
    elif spec.reference.path is not None:
        ref_adapter = load_model(spec.reference, base_dir=loaded.base_dir, tracking=spec.tracking)
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
            if ref.dtype is not None or ref.device is not None:
                adapter = derive_model(adapter, ref, name=name)
        elif ref.from_ == "reference":
            # The reference module itself in another precision or on another device.
            adapter = derive_model(ref_adapter, ref, name=name)
        elif ref.path is not None:
            adapter = load_model(ref, base_dir=loaded.base_dir, tracking=spec.tracking)
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


def _check_active_devices(adapters: Sequence[ModelAdapter], *, budgets: bool) -> None:
    """Refuse performance budgets measured on another device than the one asked for.

    A requested ONNX Runtime provider that did not start (``ModelAdapter.inactive_devices``)
    means the latency would be measured where the runtime fell back to: a warning note
    (``run_notes``) without budgets, an error with them.
    """
    if not budgets:
        return
    off = {a.name: d for a in adapters if (d := a.inactive_devices())}
    if off:
        detail = "; ".join(f"{n!r}: {list(d)}" for n, d in off.items())
        raise ProfilingError(
            f"Requested device(s) or execution provider(s) not active ({detail}); the runtime "
            "fell back to another device, so the performance budgets would be checked on the "
            "wrong device. Install the runtime build for that device (onnxruntime-gpu) on a "
            "machine with the device, or remove it from 'providers'."
        )


#: Devices (``AdapterInfo.device``) that count as a GPU for a target with ``device: cuda``.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _check_target_device(spec: AcceptanceSpec, adapters: Sequence[ModelAdapter]) -> None:
    """A GPU target's timings mean nothing for a model that runs on the CPU: refuse the run."""
    perf = spec.performance
    if perf is None or perf.target is None:
        return
    target = {**BUILTIN_TARGETS, **perf.targets}[perf.target]
    if target.device != "cuda":
        return
    devices = {a.name: a.info().device for a in adapters}
    off = {n: d for n, d in devices.items() if not (d.startswith("cuda") or d in _GPU_PROVIDERS)}
    if off:
        raise ProfilingError(
            f"Target {perf.target!r} times models on a GPU; got {off} (model: device), expected "
            "every model on a CUDA device. Set 'device: cuda' on torch models and "
            "'providers: [CUDAExecutionProvider]' on ONNX Runtime models, or pick a CPU target."
        )


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
    reference: ModelLike | None = None,
    candidates: Mapping[str, ModelLike] | None = None,
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
            For a spec with several datasets: a mapping of dataset name -> data object,
            replacing those datasets' paths.
        options: Overrides (replicates) and a progress callback.

    Returns:
        The Report; ``report.passed`` is the gate.

    Raises:
        SpecError: The spec is invalid.
        AdapterError: A model cannot be loaded or run.
        DataError: The data cannot be read or does not fit the models.
    """
    clock = Clock()
    _prefetch("scipy.special")
    loaded = _loaded(spec)
    s = loaded.spec
    replicates = s.statistics.replicates if options.replicates is None else options.replicates
    resampling = (
        Resampling(
            replicates=replicates, confidence=s.statistics.confidence, seed=s.statistics_seed
        )
        if replicates > 0
        else None
    )
    # Each dataset gets its own paired-run state (resolving the task first: an unknown one
    # is a spec error) and is hashed on the side while the models run.
    parts = load_parts(loaded, data, resampling)
    primary = parts[0]
    settings: ProfileSettings | None = None
    budgets: list[CriterionSpec] = []
    if s.performance is not None and options.profile:
        # Profiling, robustness and numerics are imported by the runs that use them only.
        from compval.engine._profile import check_profile_memory, data_row_bytes
        from compval.profiling import resolve_settings

        settings = resolve_settings(
            s.performance, base_dir=loaded.base_dir, confidence=s.statistics.confidence
        )
        budgets = list(settings.budgets)
        # Before any model runs: a batch size too large for memory failed after the whole run.
        models = 1 + max(len(s.candidates), len(candidates or {}))
        check_profile_memory(settings, data_row_bytes(primary.dataset), models=models, flags=False)
    robustness = _prepare_robustness(s)  # perturbation kinds and parameters: spec errors first
    robust_part = robustness_part(s, parts) if robustness is not None else None
    criteria = resolve_criteria(
        [*s.criteria, *budgets],
        task=primary.run.task.metrics_of,
        label_segments=primary.run.task.label_segments,
        resampling=resampling is not None,
        segment_columns=list(primary.dataset.segment_columns),
        allow_nonfinite=s.allow_nonfinite,
        perturbations=[p.name for p in (s.robustness.perturbations if s.robustness else [])],
        datasets=None
        if not s.multi_dataset
        else [
            DatasetFacts(
                name=str(part.name),
                has_labels=part.dataset.has_labels,
                segment_columns=tuple(part.dataset.segment_columns),
                robustness=part is robust_part,
            )
            for part in parts
        ],
    )
    if not s.multi_dataset:
        _check_labels_needed(s, primary.dataset.has_labels)
    if robustness is not None and robust_part is not None:
        robustness.attach(robust_part.run)

    with ExitStack() as stack:
        ref_adapter, ref_output, cands = _open_models(loaded, reference, candidates)
        for adapter in [ref_adapter, *(a for _, a, _ in cands)]:
            stack.enter_context(adapter)
        if settings is not None:
            _check_target_device(s, [ref_adapter, *(a for _, a, _ in cands)])
        opened = [ref_adapter, *(a for _, a, _ in cands)]
        _check_active_devices(opened, budgets=bool(budgets))
        _check_candidate_names(s, [name for name, _, _ in cands])
        estimates: dict[str, list[MetricEstimate]] = {name: [] for name, _, _ in cands}
        margin = _discovery_margin(criteria)
        for part in parts:
            part.states = [CandidateState(name, adapter, output) for name, adapter, output in cands]
            part.rows = stream(
                part.run, ref_adapter, ref_output, part.states, part.progress(options.progress)
            )
            # The weak-slice searches run on a worker while this thread computes the metrics'
            # intervals: both are numpy work on finished accumulators that share nothing.
            with ThreadPoolExecutor(1, thread_name_prefix="compval-slices") as pool:
                searches = {
                    st.name: pool.submit(_discover, part.run, st, margin) for st in part.states
                }
                for st in part.states:
                    estimates[st.name] += part.scoped(_estimates(part.run, st))
                found = {name: search.result() for name, search in searches.items()}
            part.statistics = _statistics(part.run, part.states, discovered=found)
            for name, slices in part.statistics.discovered.items():
                estimates[name] += part.scoped(slice_estimates(slices))
        states = primary.states
        # Asked now, the counts (an endpoint's retried requests) are those of the paired runs.
        adapter_notes = [n for a in opened for n in a.run_notes()]
        infos = {
            ref_adapter.name: model_info(
                ref_adapter, "reference", primary.run.kinds.get(ref_adapter.name)
            )
        }
        for st in states:
            infos[st.name] = model_info(st.adapter, "candidate", primary.run.kinds.get(st.name))
        statistics = merged_statistics(parts)
        robust_section = None
        if robustness is not None and robust_part is not None:
            extra_estimates, robust_section = robustness.run(
                robust_part.run, ref_adapter, ref_output, robust_part.states, options.progress
            )
            robust_section = replace(robust_section, dataset=robust_part.name)
            for name, extra in extra_estimates.items():
                estimates[name] += robust_part.scoped(extra)
        profile: ProfileResult | None = None
        if settings is not None:
            from compval.engine._profile import first_rows, profile_opened

            profile = profile_opened(
                ref_adapter,
                {st.name: st.adapter for st in states},
                first_rows(primary.dataset, max(settings.batch_sizes)),
                settings=settings,
                seed=s.seed,
                progress=options.progress,
                columns=primary.run.feature_columns,
            )
            for st in states:
                estimates[st.name] += profile.metric_estimates(st.name)
        numerics: NumericsSection | None = None
        if s.numerics is not None:
            from compval.engine._diagnose import numerics_estimates, run_numerics, sample_rows

            numerics = run_numerics(
                s.numerics,
                ref_adapter,
                [(st.adapter, primary.run.outputs.get(st.name)) for st in states],
                sample_rows(
                    primary.dataset, s.numerics.sample, seed=s.seed, batch_size=s.batch_size
                ),
                batch_size=s.batch_size,
                seed=s.seed,
                reference_output=primary.run.outputs.get(ref_adapter.name),
                feature_names=feature_names(primary.dataset),
            )
            for name, extra in numerics_estimates(numerics).items():
                estimates[name] += extra
        adapters = [ref_adapter, *(st.adapter for st in states)]

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
        if profile is not None:
            checks = name_unsupported_ops(checks, profile)
        notes = [*part_notes(parts), *adapter_notes]
        notes += [] if profile is None else profile.notes
        notes += [] if robustness is None else robustness.notes
        notes += dataset_notes(s, parts, criteria, robust_part, profiled=profile is not None)
        if resampling is None:
            notes.append(POINT_ONLY_NOTE)
        if not s.criteria and not budgets:
            notes.append(
                "No criteria in the spec: only the built-in checks ran (nonfinite-outputs unless "
                "allow_nonfinite: true)."
                if criteria
                else "No criteria: nothing is gated."
            )
        info = run_info(
            clock,
            adapters=adapters,
            models=infos,
            task=s.task.type,
            spec_hash=loaded.hash,
            spec_path=str(loaded.path) if loaded.path else None,
            data_hash=data_hash(parts, multi=s.multi_dataset),
            data_rows=sum(part.rows for part in parts),
            seed=s.seed,
            batch_size=s.batch_size,
            segment_columns=tuple(
                dict.fromkeys(c for part in parts for c in part.dataset.segment_columns)
            ),
            notes=tuple(notes),
            datasets=tuple(part.describe() for part in parts) if s.multi_dataset else (),
        )
    return Report(
        run=info,
        metrics=tuple(metric_value(name, e) for name, ests in estimates.items() for e in ests),
        checks=tuple(checks),
        candidates=tuple(st.name for st in states),
        statistics=statistics,
        profile=None if profile is None else profile.section(),
        numerics=numerics,
        robustness=robust_section,
    )


def _prefetch(module: str) -> None:
    """Import ``module`` on a daemon thread while models load and run.

    scipy.special takes about 0.25 s to import and the statistics need it only after the
    paired run; imported on the side, it overlaps inference instead of adding to it.
    Python's import lock makes a later ``import`` wait for this one, never repeat it. (No
    statistic on a run's path uses scipy.stats, which takes nearly a second.)
    """
    if module not in sys.modules:
        threading.Thread(
            target=importlib.import_module, args=(module,), name="compval-prefetch", daemon=True
        ).start()


def _prepare_robustness(spec: AcceptanceSpec) -> Robustness | None:
    """The run's robustness pass (None without one), resolved before any model runs.

    A spec without a robustness section or criterion does not import the robustness code.
    """
    named = any(c.metric.split("[", 1)[0] in ROBUSTNESS_METRIC_DIRECTIONS for c in spec.criteria)
    if spec.robustness is None and not named:
        return None
    from compval.engine._robustness import prepare_robustness

    return prepare_robustness(spec)


def _loaded(spec: AcceptanceSpec | LoadedSpec | str | Path) -> LoadedSpec:
    if isinstance(spec, LoadedSpec):
        return spec
    if isinstance(spec, AcceptanceSpec):
        return LoadedSpec(spec, path=None, text_hash=None)
    return load_spec(spec)


def _estimates(run: RunState, st: CandidateState) -> list[MetricEstimate]:
    out: list[MetricEstimate] = []
    for acc in st.accumulators:
        if isinstance(acc, ContingencyTable):
            acc.class_names = [run.state.classes.display(i) for i in range(len(run.state.classes))]
        out.extend(acc.estimates(run.resampling))
    return out


def _discovery_margin(criteria: Sequence[Criterion]) -> float:
    """The accuracy drop that ``segment: discovered`` criteria allow (the smallest), else 0.

    The slice search ranks slices by the evidence that their drop exceeds this margin.
    """
    margins = [
        -c.threshold
        for c in criteria
        if c.segment == "discovered"
        and c.metric == "accuracy_score"
        and c.compare == "delta"
        and c.op in (">=", ">")
    ]
    return max(0.0, min(margins)) if margins else 0.0


def _discover(run: RunState, st: CandidateState, margin: float) -> tuple[SliceResult, ...]:
    """The candidate's discovered weak slices (empty without a slice search)."""
    s = run.spec.statistics
    for acc in st.accumulators:
        if isinstance(acc, WeakSlices):
            return acc.discovered(
                min_rows=s.min_rows, confidence=s.confidence, top_k=s.top_slices, margin=margin
            )
    return ()


def _statistics(
    run: RunState,
    states: Sequence[CandidateState],
    *,
    discovered: Mapping[str, tuple[SliceResult, ...]],
) -> StatisticsSection:
    s = run.spec.statistics
    flips: dict[str, FlipMatrix] = {}
    reliability: dict[str, Reliability] = {}
    for st in states:
        for acc in st.accumulators:
            # The HTML report's flip matrix and reliability diagrams (report.json carries them).
            if isinstance(acc, ContingencyTable) and (matrix := acc.flip_matrix()) is not None:
                flips[st.name] = matrix
            elif isinstance(acc, Calibration) and (bins := acc.reliability()) is not None:
                reliability[st.name] = bins
    return StatisticsSection(
        resampling=None
        if run.resampling is None
        else ResamplingInfo(
            method="Tango score and Clopper-Pearson intervals for proportions; Bayesian "
            "bootstrap of the contingency table (Gamma(count) per cell, prior on unobserved "
            "discordance, at most 500 draws per interval end) for precision and F1; "
            "Poisson(1) weights per hashed row block "
            f"({N_BLOCKS} blocks) for continuous metrics",
            interval="percentile (table), t-expanded BCa (blocks)",
            replicates=run.resampling.replicates,
            confidence=run.resampling.confidence,
            seed=run.resampling.seed,
        ),
        decision=DecisionInfo(
            rule="non-inferiority: pass when the whole interval meets the threshold, fail "
            "when the whole interval violates it, else inconclusive",
            min_rows=s.min_rows,
            correction=s.correction,
            inconclusive=s.inconclusive,
        ),
        discovered={name: slices for name, slices in discovered.items() if slices},
        flips=flips,
        reliability=reliability,
    )
