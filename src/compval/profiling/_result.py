"""The profiler's result: per-model measurements, speedups, and their metric values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compval.errors import InvalidParameterError
from compval.metrics import MetricEstimate
from compval.profiling._settings import ProfileSettings
from compval.results import ModelProfile, ProfileSection, SpeedupResult
from compval.spec import PERF_METRIC_DIRECTIONS

__all__ = ["SPEEDUP_CI_METHOD", "ModelProfile", "ProfileResult"]

#: ``ci_method`` recorded on speedup metric values (see ``compval.profiling._stats``).
SPEEDUP_CI_METHOD = "paired_t_log_ratio"
_LATENCY_FIELDS = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileResult:
    """What ``profile_models`` measured.

    Attributes:
        settings: The settings the run used.
        reference: Name of the reference model.
        models: Model name -> its profile, reference first.
        speedups: One entry per candidate and batch size.
        notes: Why some values are missing (e.g. memory of an in-memory model).
    """

    settings: ProfileSettings
    reference: str
    models: Mapping[str, ModelProfile]
    speedups: tuple[SpeedupResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        """Candidate names, in the order they were given."""
        return tuple(n for n, m in self.models.items() if m.role == "candidate")

    def section(self) -> ProfileSection:
        """The report's ``profile`` section."""
        s = self.settings
        return ProfileSection(
            target=s.target,
            threads=s.threads,
            batch_sizes=s.batch_sizes,
            concurrency=s.concurrency,
            warmup=s.warmup,
            min_iterations=s.min_iterations,
            min_duration_s=s.min_duration_s,
            reference=self.reference,
            models=self.models,
            speedups=self.speedups,
            notes=self.notes,
        )

    def to_dict(self) -> dict[str, Any]:
        """The report.json ``profile`` object (``section().to_dict()``)."""
        return self.section().to_dict()

    def metric_estimates(self, candidate: str) -> list[MetricEstimate]:
        """The candidate's performance metrics, named as in the shared vocabulary.

        Two-sided metrics carry the reference's value, the candidate's, their difference
        (candidate - reference) and ratio; ``speedup[batch=B]`` is paired: the ratio in
        ``candidate`` and its interval in ``ci``; ``unsupported_op_count`` (only when the
        target has an operator set: the number of nodes its runtime cannot run) is the
        candidate's alone, and so is ``<ep>_fallback_node_count`` (nodes that EP leaves to
        the CPU, e.g. ``nnapi_fallback_node_count``) for each EP whose metric name is
        registered in ``compval.spec.PERF_METRIC_DIRECTIONS``. The checks decide on these
        exactly as on accuracy metrics.

        Args:
            candidate: A candidate's name.

        Raises:
            InvalidParameterError: ``candidate`` is not a profiled candidate.
        """
        if candidate not in self.candidates:
            raise InvalidParameterError(
                f"ProfileResult.metric_estimates: unknown candidate; got {candidate!r}, expected "
                f"one of {list(self.candidates)}."
            )
        ref, cand = self.models[self.reference], self.models[candidate]
        values: list[MetricEstimate] = []

        def add(metric: str, r: float | None, c: float | None, n: int = 1) -> None:
            values.append(
                MetricEstimate(
                    metric=metric,
                    segment=None,
                    higher_is_better=PERF_METRIC_DIRECTIONS[metric.split("[", 1)[0]],
                    paired=r is None,
                    n=max(n, 1),
                    reference=r,
                    candidate=c,
                    delta=None if r is None or c is None else c - r,
                    ratio=None if not r or c is None else c / r,
                )
            )

        for size in self.settings.batch_sizes:
            r_lat, c_lat = ref.latency_at(size), cand.latency_at(size)
            if r_lat is None or c_lat is None:
                continue
            for short, attr in (*_LATENCY_FIELDS, ("mean", "mean_ms")):
                add(
                    f"latency_{short}_ms[batch={size}]",
                    getattr(r_lat, attr),
                    getattr(c_lat, attr),
                    c_lat.iterations,
                )
            add(f"throughput_sps[batch={size}]", r_lat.throughput_sps, c_lat.throughput_sps,
                c_lat.iterations)  # fmt: skip
        for speedup in self.speedups:
            if speedup.candidate == candidate:
                ci = (speedup.ci_low, speedup.ci_high)
                values.append(
                    MetricEstimate(
                        metric=f"speedup[batch={speedup.batch_size}]",
                        segment=None,
                        higher_is_better=True,
                        paired=True,
                        n=speedup.rounds,
                        reference=None,
                        candidate=speedup.ratio,
                        delta=None,
                        ci=ci,
                        ci_candidate=ci,
                        confidence=speedup.confidence,
                        ci_method=SPEEDUP_CI_METHOD,
                    )
                )
        add("model_size_mb", ref.size_mb, cand.size_mb)
        add("parameter_count", _float(ref.parameter_count), _float(cand.parameter_count))
        add("weight_sparsity", ref.weight_sparsity, cand.weight_sparsity)
        add("load_time_ms", ref.load_time_ms, cand.load_time_ms)
        if self.settings.measure_memory:
            add("peak_memory_mb", ref.peak_memory_mb, cand.peak_memory_mb)
        for clients in self.settings.concurrency:
            r_load, c_load = ref.load_at(clients), cand.load_at(clients)
            if r_load is None or c_load is None:
                continue
            ok = c_load.requests - c_load.errors
            add(f"concurrent_throughput_sps[clients={clients}]", r_load.throughput_sps,
                c_load.throughput_sps, ok)  # fmt: skip
            add(f"concurrent_latency_p95_ms[clients={clients}]", r_load.p95_ms, c_load.p95_ms, ok)
        if self.settings.operators is not None:
            providers = cand.execution_providers or ()
            counts = {ep.key: float(len(ep.unsupported)) for ep in providers}
            values.append(_count("unsupported_op_count", counts.get("cpu")))
            for ep in providers:
                metric = f"{ep.key}_fallback_node_count"
                # Gated only once the name is part of the spec's vocabulary (budgets on it
                # validate there); until then the per-EP lists are informational.
                if ep.falls_back_to is not None and metric in PERF_METRIC_DIRECTIONS:
                    values.append(_count(metric, counts[ep.key]))
        return values


def _count(metric: str, value: float | None) -> MetricEstimate:
    """A candidate-only count (lower is better), e.g. of unsupported nodes."""
    return MetricEstimate(
        metric=metric,
        segment=None,
        higher_is_better=False,
        paired=True,
        n=1,
        reference=None,
        candidate=value,
        delta=None,
    )


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)
