"""Performance runs: the spec's ``performance:`` section, and ``compval profile``.

Both time models with the target's thread count: a model opened with other threads for the
accuracy run is re-created through its adapter's ``with_threads`` hook (models that cannot
be re-created, such as in-memory ones, are timed as they are).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from compval.adapters import ModelAdapter, bind_inputs, is_model_uri, load_model
from compval.checks import CheckSettings, evaluate, resolve_criteria
from compval.data import Dataset, feature_names, load_dataset
from compval.engine._estimates import metric_value, name_unsupported_ops
from compval.engine._provenance import Clock, model_info, run_info
from compval.errors import SpecValidationError, UsageError
from compval.profiling import ProfileResult, ProfileSettings, profile_models, synthetic_inputs
from compval.results import Report
from compval.spec import BUILTIN_TARGETS, DataRef, ModelRef, PerformanceSpec, TrackingSpec
from compval.types import Array

__all__ = ["ProfileRequest", "check_profile_memory", "profile_files", "profile_opened"]

Progress = Callable[[str, int, int], None]


def profile_opened(
    reference: ModelAdapter,
    candidates: Mapping[str, ModelAdapter],
    sample: Mapping[str, Array],
    *,
    settings: ProfileSettings,
    seed: int,
    progress: Progress | None = None,
    columns: Sequence[str] = (),
) -> ProfileResult:
    """Profile open adapters on ``sample``, each re-created with the target's thread count.

    ``columns`` names the columns of a table's single feature array, for a model with one
    input per column (``compval.adapters.bind_inputs``).
    """
    with ExitStack() as stack:

        def timed(adapter: ModelAdapter) -> ModelAdapter:
            fresh = adapter.with_threads(settings.threads)
            if fresh is not adapter:
                stack.enter_context(fresh)
            return fresh

        timed_ref = timed(reference)
        timed_cands = {name: timed(a) for name, a in candidates.items()}
        bound = bind_inputs(timed_ref.name, sample, timed_ref.input_spec(), columns=columns)
        steps = 0

        def tick(message: str) -> None:
            nonlocal steps
            steps += 1
            if progress is not None:
                progress(f"profile: {message}", steps, steps + 1)

        return profile_models(
            timed_ref, timed_cands, bound, settings=settings, seed=seed, progress=tick
        )


#: The share of the machine's physical memory the profiler's inputs may take: the sample pool
#: plus one batch per model (the models' own memory comes on top).
MEMORY_SHARE = 0.5


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say (Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def spec_row_bytes(adapter: ModelAdapter) -> int | None:
    """Bytes of one row of the inputs ``adapter`` declares; None when a dimension is unknown."""
    total = 0
    for tensor in adapter.input_spec().values():
        if tensor.shape is None or any(d is None for d in tensor.shape[1:]):
            return None
        itemsize = np.dtype(np.float32 if tensor.dtype is None else tensor.dtype).itemsize
        total += itemsize * math.prod(int(d) for d in tensor.shape[1:] if d is not None)
    return total


def data_row_bytes(dataset: Dataset) -> int:
    """Bytes of one row of ``dataset``'s inputs, as its batches hold them."""
    return sum(int(a[:1].nbytes) for a in first_rows(dataset, 1).values())


def check_profile_memory(
    settings: ProfileSettings, row_bytes: int | None, *, models: int, flags: bool
) -> None:
    """Refuse batch sizes whose inputs alone would not fit in memory, before any model runs.

    The profiler holds a pool of the largest batch's rows and one batch per model; with rows of
    an image model (600 KB), 100,000 rows are 60 GB per copy. Without this check such a size
    ended in a MemoryError after the whole accuracy run.

    Args:
        settings: The resolved profile settings.
        row_bytes: Bytes of one input row (None: unknown, nothing is checked).
        models: Reference plus candidates.
        flags: Name the command-line flags (``compval profile``) rather than the spec keys.

    Raises:
        UsageError: (``flags``) A batch size needs more than ``MEMORY_SHARE`` of the memory.
        SpecValidationError: (not ``flags``) The same, naming the spec key.
    """
    memory = physical_memory()
    if row_bytes is None or memory is None:
        return
    sizes = [("batch_sizes", max(settings.batch_sizes))]
    if settings.concurrency:
        sizes.append(("concurrency_batch_size", settings.concurrency_batch_size))
    for key, rows in sizes:
        need = (models + 1) * rows * row_bytes
        if need <= MEMORY_SHARE * memory:
            continue
        name = f"--{key.replace('_', '-')}" if flags else f"performance.{key}"
        fits = max(1, int(MEMORY_SHARE * memory // ((models + 1) * max(row_bytes, 1))))
        message = (
            f"{name}: batch size {rows:,} is too large for this machine; profiling it holds "
            f"about {_gigabytes(need)} of inputs ({models + 1} copies of {rows:,} rows of "
            f"{row_bytes:,} bytes), expected at most half of its {_gigabytes(memory)} of "
            f"memory. Use batch sizes up to about {fits:,}."
        )
        if flags:
            raise UsageError(f"profile: {message}")
        raise SpecValidationError(message, path=name)


def _gigabytes(count: float) -> str:
    return f"{count / 1e9:,.1f} GB"


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
        tracking: TrackingSpec | None = None,
    ) -> None:
        self.models = list(models)
        #: Where model URIs (models:/clf/3) resolve (None: MLFLOW_TRACKING_URI or the default).
        self.tracking = tracking
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
    target = {**BUILTIN_TARGETS, **request.performance.targets}.get(settings.target)
    if target is not None and target.device == "cuda":
        # Files given on the command line run on the CPU: their timings would be labelled
        # with a GPU target they never ran on.
        raise UsageError(
            f"Target {settings.target!r} times models on a GPU, but model files given to "
            "'compval profile' run on the CPU. Write a spec with 'device: cuda' (torch) or "
            "'providers: [CUDAExecutionProvider]' (ONNX Runtime) on each model and run "
            "'compval validate', or pick a CPU target."
        )
    clock = Clock()
    with ExitStack() as stack:
        adapters = [
            stack.enter_context(
                load_model(
                    ModelRef(
                        name=name,
                        # A model URI (models:/clf/3) is resolved by load_model, not here.
                        path=path if is_model_uri(path) else str(Path(path).resolve()),
                        threads=settings.threads,
                        allow_pickle=request.allow_pickle,
                    ),
                    base_dir=Path.cwd(),
                    tracking=request.tracking,
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
                    # Segments only say which columns are not inputs: their values are unused.
                    max_segment_values=None,
                ),
                base_dir=Path.cwd(),
            )
            check_profile_memory(
                settings, data_row_bytes(dataset), models=len(adapters), flags=True
            )
            sample = first_rows(dataset, rows)
            columns = feature_names(dataset)
            data_hash = dataset.fingerprint()
        else:
            check_profile_memory(
                settings, spec_row_bytes(reference), models=len(adapters), flags=True
            )
            sample = synthetic_inputs(reference, rows=rows, seed=request.seed)
            columns = ()
        result = profile_opened(
            reference, candidates, sample, settings=settings, seed=request.seed, columns=columns
        )
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
