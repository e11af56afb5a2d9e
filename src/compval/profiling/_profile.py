"""``profile_models``: latency, paired speedup, concurrent load, size and memory of models.

Order of work, for a reference and its candidates (all already open, same thread settings):

1. static facts of each model (size, parameters, sparsity, load time, operators); with a
   target operator check, the nodes its runtime cannot run and, per execution provider
   (NNAPI, CoreML), the nodes that would fall back to the CPU;
2. for each batch size, interleaved timing: every model gets its warm-up, then the models
   take turns in ``rounds`` rounds (reference, candidate 1, candidate 2, ...), each turn a
   block of timed runs; latencies pool all rounds, speedups pair them round by round;
3. for each model and client count, a fixed-duration concurrent load test;
4. peak memory of each model file in a child process.

All models see the same rows: batches are cut from the sample pool in one seeded order.

Models are timed through their adapter's ``timed_call`` hook: ONNX Runtime runs ``session.run``
itself, after one checked ``predict`` on the same inputs (compval's per-call input checks
cost microseconds that would inflate the latency of small models); others run ``predict``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compval.adapters import ModelAdapter, RuntimeOperators, bind_inputs
from compval.errors import AdapterError, InvalidParameterError, ProfilingError
from compval.profiling._inputs import BatchCutter, check_batch_axes
from compval.profiling._load import LoadStats, run_load
from compval.profiling._memory import measure_peak_memory
from compval.profiling._model_stats import ModelStats, model_stats
from compval.profiling._operators import (
    ExecutionProviderSupport,
    NodeFallback,
    OperatorSupport,
    describe_unsupported,
)
from compval.profiling._result import ModelProfile, ProfileResult
from compval.profiling._settings import ProfileSettings
from compval.profiling._stats import (
    LatencyStats,
    SpeedupResult,
    paired_speedup,
    summarize_latencies,
)
from compval.profiling._timing import flatten, time_interleaved
from compval.profiling.targets import mobile_ep_support
from compval.types import Array

if TYPE_CHECKING:
    from compval.adapters import ModelAdapter

__all__ = ["profile_models"]

Clock = Callable[[], int]
_MEMORY_KINDS = ("onnx", "torchscript", "torch_export")


def profile_models(
    reference: ModelAdapter,
    candidates: Mapping[str, ModelAdapter],
    sample: Mapping[str, Array],
    *,
    settings: ProfileSettings,
    seed: int = 0,
    clock: Clock = time.perf_counter_ns,
    progress: Callable[[str], None] | None = None,
) -> ProfileResult:
    """Measure the reference and every candidate under the same settings.

    Args:
        reference: The open reference adapter; reported under ``reference.name``.
        candidates: Candidate name -> open adapter.
        sample: A pool of input rows (batch on axis 0), by input name; batches are cut from
            it and tiled when it is smaller than a batch size.
        settings: Resolved settings (``resolve_settings``). Adapters must already have been
            opened with ``settings.threads``; the count is only recorded here.
        seed: Seed of the order in which rows are drawn from the pool.
        clock: Integer nanosecond clock used for every timing.
        progress: Called with a short message as each step starts.

    Returns:
        Per-model latency, load, size and memory, and per-candidate speedups.

    Raises:
        InvalidParameterError: A candidate has the reference's name.
        DataError: The sample is empty or its arrays disagree on rows.
        ProfilingError: A model fixes a batch size that is not profiled, its file cannot be
            read, or its runtime failed during timing.
        AdapterError: A model rejected the inputs or failed on its first batch.
    """
    say = progress or _quiet
    if reference.name in candidates:
        raise InvalidParameterError(
            f"profile_models: candidate name equals the reference's; got {reference.name!r} "
            "twice, expected distinct names. Rename the candidate."
        )
    models: dict[str, ModelAdapter] = {reference.name: reference, **candidates}
    cutter = BatchCutter(sample, seed=seed)
    sizes = set(settings.batch_sizes)
    if settings.concurrency:
        sizes.add(settings.concurrency_batch_size)
    bound: dict[str, dict[str, Array]] = {}
    for name, adapter in models.items():
        spec = adapter.input_spec()
        check_batch_axes(name, spec, sizes)
        bound[name] = bind_inputs(name, sample, spec)
    notes: list[str] = []

    stats: dict[str, ModelStats] = {}
    for name, adapter in models.items():
        say(f"{name}: size, parameters, load time")
        stats[name] = model_stats(
            adapter, threads=settings.threads, infer_types=settings.operators is not None
        )
        notes.extend(stats[name].notes)
    support: dict[str, tuple[ExecutionProviderSupport, ...] | None] = {}
    for name in models:
        if settings.operators is not None:
            say(f"{name}: operators and execution providers")
            support[name] = _provider_support(
                name, stats[name], settings.operators, notes, models[name]
            )

    latency: dict[str, list[LatencyStats]] = {name: [] for name in models}
    speedups: list[SpeedupResult] = []
    for size in settings.batch_sizes:
        calls = {
            name: adapter.timed_call(cutter.cut(bound[name], size))
            for name, adapter in models.items()
        }
        with _runtime_errors(f"latency at batch size {size}"):
            samples = time_interleaved(
                calls,
                warmup=settings.warmup,
                min_iterations=settings.min_iterations,
                min_duration_s=settings.min_duration_s,
                rounds=settings.rounds,
                clock=clock,
                on_round=functools.partial(_announce_round, say, size, settings.rounds),
            )
        for name in models:
            latency[name].append(summarize_latencies(flatten(samples[name]), batch_size=size))
        reference_medians = _round_medians_ms(samples[reference.name])
        for name in candidates:
            speedups.append(
                paired_speedup(
                    reference_medians,
                    _round_medians_ms(samples[name]),
                    candidate=name,
                    batch_size=size,
                    confidence=settings.confidence,
                )
            )

    loads: dict[str, list[LoadStats]] = {name: [] for name in models}
    for name, adapter in models.items():
        if not settings.concurrency:
            break
        call = adapter.timed_call(cutter.cut(bound[name], settings.concurrency_batch_size))
        with _runtime_errors(f"the load test's warm-up of {name!r}"):
            for _ in range(settings.warmup):
                call()
        for clients in settings.concurrency:
            say(f"{name}: {clients} concurrent client(s) for {settings.concurrency_duration_s} s")
            result = run_load(
                call,
                clients=clients,
                duration_s=settings.concurrency_duration_s,
                batch_size=settings.concurrency_batch_size,
                clock=clock,
            )
            loads[name].append(result)
            if result.errors:
                notes.append(
                    f"model {name!r}: {result.errors} of {result.requests} requests failed with "
                    f"{clients} clients, e.g. {'; '.join(result.error_examples[:2])}"
                )

    memory: dict[str, float | None] = {}
    for name, adapter in models.items():
        memory[name] = None
        if not settings.measure_memory:
            continue
        info = stats[name]
        if info.kind not in _MEMORY_KINDS or info.path is None:
            notes.append(
                f"model {name!r}: peak memory not measured (only ONNX, TorchScript and "
                "torch.export model files can be loaded in a separate process)"
            )
            continue
        say(f"{name}: peak memory in a child process")
        providers = adapter.execution_providers()
        try:
            memory[name] = measure_peak_memory(
                info.path,
                kind=info.kind,
                inputs=cutter.cut(bound[name], max(settings.batch_sizes)),
                input_order=list(adapter.input_spec()),
                threads=settings.threads,
                providers=None if providers is None else list(providers),
                timeout_s=settings.memory_timeout_s,
            ).peak_mb
        except ProfilingError as exc:
            notes.append(f"model {name!r}: peak memory not measured: {exc}")

    profiles: dict[str, ModelProfile] = {}
    for name in models:
        info = stats[name]
        eps = support.get(name)
        unsupported = None if eps is None else describe_unsupported(eps[0].unsupported)
        profiles[name] = ModelProfile(
            name=name,
            role="reference" if name == reference.name else "candidate",
            size_mb=info.size_mb,
            parameter_count=info.parameter_count,
            weight_sparsity=info.weight_sparsity,
            load_time_ms=info.load_time_ms,
            peak_memory_mb=memory[name],
            latency=tuple(latency[name]),
            concurrency=tuple(loads[name]),
            unsupported_ops=unsupported,
            execution_providers=eps,
        )
    return ProfileResult(
        settings=settings,
        reference=reference.name,
        models=profiles,
        speedups=tuple(speedups),
        notes=tuple(notes),
    )


def _provider_support(
    name: str,
    info: ModelStats,
    operators: OperatorSupport,
    notes: list[str],
    adapter: ModelAdapter,
) -> tuple[ExecutionProviderSupport, ...] | None:
    """The target runtime's CPU check, then NNAPI and CoreML; None when nothing can be said.

    The first entry decides ``unsupported_op_count``: nodes the target's runtime cannot run
    at all. The others are informational unless a budget names their fallback count. A
    non-ONNX model is checked by its own runtime (``ModelAdapter.runtime_operators``: a
    LiteRT model on a phone runs in LiteRT, whose operator set is not ONNX Runtime's).
    """
    if info.nodes is None or info.path is None:
        own = adapter.runtime_operators()
        if own is not None:
            return (_runtime_support(own),)
        notes.append(f"model {name!r}: operators not checked (not an ONNX model file)")
        return None
    cpu = ExecutionProviderSupport(
        provider="CPU",
        key="cpu",
        source=operators.basis,
        falls_back_to=None,
        nodes=len(info.nodes),
        unsupported=tuple(operators.check(info.nodes)),
    )
    accelerators, ep_notes = mobile_ep_support(Path(info.path), name=name)
    notes.extend(ep_notes)
    return (cpu, *accelerators)


def _runtime_support(own: RuntimeOperators) -> ExecutionProviderSupport:
    """A non-ONNX model's own runtime's operator check as the CPU entry."""
    ops = dict(own.nodes)
    return ExecutionProviderSupport(
        provider=own.runtime,
        key="cpu",
        source=own.basis,
        falls_back_to=None,
        nodes=len(own.nodes),
        unsupported=tuple(
            NodeFallback(
                node=label,
                op=ops.get(label, label),
                opset=None,
                reasons=("op_type",),
                detail=why,
            )
            for label, why in own.unsupported
        ),
    )


def _quiet(_: str) -> None:
    """Progress sink that drops messages."""


@contextlib.contextmanager
def _runtime_errors(what: str) -> Iterator[None]:
    """Turn a runtime's own exception, raised after its checked first batch, into ours."""
    try:
        yield
    except (AdapterError, ProfilingError):
        raise
    except Exception as exc:  # raw session.run calls raise the runtime's exception types
        raise ProfilingError(
            f"Profiling {what}: a model failed while being timed; got {type(exc).__name__}: "
            f"{exc}. The same inputs had succeeded once, so the runtime is unstable under "
            "repeated calls."
        ) from exc


def _announce_round(say: Callable[[str], None], size: int, rounds: int, index: int) -> None:
    say(f"latency batch={size}: round {index + 1}/{rounds}")


def _round_medians_ms(rounds: list[list[int]]) -> list[float]:
    return [float(np.median(block)) / 1e6 for block in rounds]
