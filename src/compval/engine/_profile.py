"""Performance runs: the spec's ``performance:`` section, and ``compval profile``.

Both time models with the target's thread count: a model opened with other threads for the
accuracy run is re-created through its adapter's ``with_threads`` hook (models that cannot
be re-created, such as in-memory ones, are timed as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from compval.adapters import ModelAdapter, bind_inputs, load_model
from compval.checks import CheckSettings, evaluate, resolve_criteria
from compval.data import Dataset, load_dataset
from compval.engine._estimates import metric_value, name_unsupported_ops
from compval.engine._provenance import Clock, model_info, run_info
from compval.profiling import ProfileResult, ProfileSettings, profile_models, synthetic_inputs
from compval.results import Report
from compval.spec import DataRef, ModelRef, PerformanceSpec
from compval.types import Array

__all__ = ["ProfileRequest", "profile_files", "profile_opened"]

Progress = Callable[[str, int, int], None]


def profile_opened(
    reference: ModelAdapter,
    candidates: Mapping[str, ModelAdapter],
    sample: Mapping[str, Array],
    *,
    settings: ProfileSettings,
    seed: int,
    progress: Progress | None = None,
) -> ProfileResult:
    """Profile open adapters on ``sample``, each re-created with the target's thread count."""
    with ExitStack() as stack:

        def timed(adapter: ModelAdapter) -> ModelAdapter:
            fresh = adapter.with_threads(settings.threads)
            if fresh is not adapter:
                stack.enter_context(fresh)
            return fresh

        timed_ref = timed(reference)
        timed_cands = {name: timed(a) for name, a in candidates.items()}
        bound = bind_inputs(timed_ref.name, sample, timed_ref.input_spec())
        steps = 0

        def tick(message: str) -> None:
            nonlocal steps
            steps += 1
            if progress is not None:
                progress(f"profile: {message}", steps, steps + 1)

        return profile_models(
            timed_ref, timed_cands, bound, settings=settings, seed=seed, progress=tick
        )


def first_rows(dataset: Dataset, rows: int) -> dict[str, Array]:
    """The first ``rows`` rows of ``dataset``'s inputs: the profiler's sample pool."""
    return dict(next(iter(dataset.batches(rows))).inputs)


class ProfileRequest:
    """What ``compval profile`` asks for: model files, settings, optional data."""

    def __init__(
        self,
        models: Sequence[tuple[str, str]],
        *,
        performance: PerformanceSpec,
        data: str | None,
        seed: int,
        allow_pickle: bool,
        labels: str | None = None,
        segments: Sequence[str] = (),
        features: Sequence[str] | None = None,
    ) -> None:
        self.models = list(models)
        self.performance = performance
        self.data = data
        self.seed = seed
        self.allow_pickle = allow_pickle
        # Columns of ``data`` that are not model inputs (labels, segments), or the inputs.
        self.labels = labels
        self.segments = list(segments)
        self.features = None if features is None else list(features)


def profile_files(request: ProfileRequest, settings: ProfileSettings) -> Report:
    """Profile model files (the first is the reference); the budgets become checks."""
    clock = Clock()
    with ExitStack() as stack:
        adapters = [
            stack.enter_context(
                load_model(
                    ModelRef(
                        name=name,
                        path=str(Path(path).resolve()),
                        threads=settings.threads,
                        allow_pickle=request.allow_pickle,
                    ),
                    base_dir=Path.cwd(),
                )
            )
            for name, path in request.models
        ]
        reference, candidates = adapters[0], {a.name: a for a in adapters[1:]}
        rows = max(settings.batch_sizes)
        data_hash = "synthetic"
        if request.data:
            dataset = load_dataset(
                DataRef(
                    path=str(Path(request.data).resolve()),
                    labels=request.labels,
                    segments=request.segments,
                    features=request.features,
                ),
                base_dir=Path.cwd(),
            )
            sample = first_rows(dataset, rows)
            data_hash = dataset.fingerprint()
        else:
            sample = synthetic_inputs(reference, rows=rows, seed=request.seed)
        result = profile_opened(reference, candidates, sample, settings=settings, seed=request.seed)
        infos = {
            a.name: model_info(a, "reference" if a is reference else "candidate", None)
            for a in adapters
        }
        criteria = resolve_criteria(
            list(settings.budgets), task="generic", resampling=True, allow_nonfinite=True
        )
        estimates = {c: result.metric_estimates(c) for c in candidates}
        checks = name_unsupported_ops(
            evaluate(criteria, estimates, settings=CheckSettings(min_rows=1)), result
        )
        notes = list(result.notes)
        if not criteria:
            notes.append("No budgets: nothing is gated (pick a --target with budgets, or a spec).")
        run = run_info(
            clock,
            adapters=adapters,
            models=infos,
            task="profile",
            spec_hash=None,
            spec_path=None,
            data_hash=data_hash,
            data_rows=int(next(iter(sample.values())).shape[0]),
            seed=request.seed,
            batch_size=rows,
            notes=tuple(notes),
        )
    return Report(
        run=run,
        metrics=tuple(metric_value(c, e) for c, ests in estimates.items() for e in ests),
        checks=tuple(checks),
        candidates=tuple(candidates),
        profile=result.section(),
    )
