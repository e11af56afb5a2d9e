"""The performance part of a report: latency, speedup, load and model facts, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "ExecutionProviderSupportLike",
    "LatencyStats",
    "LoadStats",
    "ModelProfile",
    "NodeFallbackLike",
    "ProfileSection",
    "SpeedupResult",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    """Latency of one model at one batch size, in milliseconds per batch."""

    batch_size: int
    iterations: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    throughput_sps: float

    def to_dict(self) -> dict[str, float | int]:
        """The report's ``latency`` entry."""
        return {
            "batch_size": self.batch_size,
            "iterations": self.iterations,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "std_ms": self.std_ms,
            "cv": self.cv,
            "throughput_sps": self.throughput_sps,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedupResult:
    """Reference latency / candidate latency at one batch size, with its interval."""

    candidate: str
    batch_size: int
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    rounds: int

    def to_dict(self) -> dict[str, str | float | int]:
        """The report's ``speedup`` entry."""
        return {
            "candidate": self.candidate,
            "batch_size": self.batch_size,
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "rounds": self.rounds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadStats:
    """Outcome of one load test.

    ``requests`` counts every request sent, ``errors`` those that raised (or hung).
    ``throughput_sps`` counts rows of successful requests per second of elapsed time; the
    latency percentiles are over successful requests (None when every request failed).
    """

    clients: int
    batch_size: int
    duration_s: float
    requests: int
    errors: int
    throughput_sps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, float | int | None]:
        """The report's ``concurrency`` entry."""
        return {
            "clients": self.clients,
            "batch_size": self.batch_size,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "errors": self.errors,
            "throughput_sps": self.throughput_sps,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
        }


class NodeFallbackLike(Protocol):
    """One node an execution provider cannot take, and why (``compval.profiling`` fills it).

    ``reasons`` holds codes: ``op_type``, ``opset``, ``data_type``, ``dynamic_shape``, ``rank``.
    """

    @property
    def node(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def opset(self) -> int | None: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def detail(self) -> str: ...


class ExecutionProviderSupportLike(Protocol):
    """Which of a model's nodes one execution provider can take.

    ``falls_back_to`` is ``"CPU"`` for accelerator EPs (their unsupported nodes run on the CPU
    EP) and None for the CPU EP itself (its unsupported nodes cannot run at all).
    """

    @property
    def provider(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def falls_back_to(self) -> str | None: ...
    @property
    def nodes(self) -> int: ...
    @property
    def unsupported(self) -> tuple[NodeFallbackLike, ...]: ...
    @property
    def partitions(self) -> int | None: ...
    @property
    def recommendation(self) -> str | None: ...
    @property
    def caveats(self) -> tuple[str, ...]: ...


def _provider_dict(ep: ExecutionProviderSupportLike) -> dict[str, Any]:
    return {
        "provider": ep.provider,
        "key": ep.key,
        "source": ep.source,
        "falls_back_to": ep.falls_back_to,
        "nodes": ep.nodes,
        "supported_nodes": ep.nodes - len(ep.unsupported),
        "partitions": ep.partitions,
        "recommendation": ep.recommendation,
        "unsupported": [
            {
                "node": n.node,
                "op": n.op,
                "opset": n.opset,
                "reasons": list(n.reasons),
                "detail": n.detail,
            }
            for n in ep.unsupported
        ],
        "caveats": list(ep.caveats),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProfile:
    """Everything measured for one model. Missing measurements are None.

    ``unsupported_ops`` describes the nodes the target's runtime cannot run (grouped by
    operator); ``execution_providers`` says, per execution provider, which nodes it cannot take
    (None when the target has no operator check or the model is not an ONNX file).
    """

    name: str
    role: Literal["reference", "candidate"]
    size_mb: float | None
    parameter_count: int | None
    weight_sparsity: float | None
    load_time_ms: float | None
    peak_memory_mb: float | None
    latency: tuple[LatencyStats, ...]
    concurrency: tuple[LoadStats, ...]
    unsupported_ops: tuple[str, ...] | None
    execution_providers: tuple[ExecutionProviderSupportLike, ...] | None = None

    def latency_at(self, batch_size: int) -> LatencyStats | None:
        """The latency entry for ``batch_size``, if measured."""
        return next((s for s in self.latency if s.batch_size == batch_size), None)

    def load_at(self, clients: int) -> LoadStats | None:
        """The load-test entry for ``clients``, if measured."""
        return next((s for s in self.concurrency if s.clients == clients), None)

    def to_dict(self) -> dict[str, Any]:
        """The report's entry for this model."""
        return {
            "role": self.role,
            "size_mb": self.size_mb,
            "parameter_count": self.parameter_count,
            "weight_sparsity": self.weight_sparsity,
            "load_time_ms": self.load_time_ms,
            "peak_memory_mb": self.peak_memory_mb,
            "latency": [s.to_dict() for s in self.latency],
            "concurrency": [s.to_dict() for s in self.concurrency],
            "unsupported_ops": None if self.unsupported_ops is None else list(self.unsupported_ops),
            "execution_providers": None
            if self.execution_providers is None
            else [_provider_dict(ep) for ep in self.execution_providers],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSection:
    """The report's ``profile`` section: the target, the settings and every model's profile.

    Attributes:
        target: Deployment target name (``"default"`` when none was named).
        threads: Intra-op threads the models were timed with (None: runtime default).
        batch_sizes: Timed batch sizes.
        concurrency: Client counts of the load tests.
        warmup: Untimed runs before timing.
        min_iterations: Timed runs per model and batch size, at least.
        min_duration_s: Timed seconds per model and batch size, at least.
        reference: The reference model's name.
        models: Model name -> profile, reference first.
        speedups: One entry per candidate and batch size.
        notes: Why some values are missing.
    """

    target: str
    threads: int | None
    batch_sizes: tuple[int, ...]
    concurrency: tuple[int, ...]
    warmup: int
    min_iterations: int
    min_duration_s: float
    reference: str
    models: Mapping[str, ModelProfile]
    speedups: tuple[SpeedupResult, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report.json ``profile`` object."""
        return {
            "target": {
                "name": self.target,
                "threads": self.threads,
                "batch_sizes": list(self.batch_sizes),
                "concurrency": list(self.concurrency),
            },
            "settings": {
                "warmup": self.warmup,
                "min_iterations": self.min_iterations,
                "min_duration_s": self.min_duration_s,
            },
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "speedup": [r.to_dict() for r in self.speedups],
        }
