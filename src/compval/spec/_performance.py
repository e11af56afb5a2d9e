"""The ``performance:`` section of the acceptance spec and the built-in deployment targets.

A deployment target fixes the thread count, batch sizes, concurrency levels, an optional
operator set and budgets. Four are built in (``cloud``, ``cloud-gpu``, ``edge``, ``mobile``;
docs/targets.md says which runtime each stands for); a spec may
define its own under ``targets:`` (a user target named like a built-in one replaces it).
Explicit fields of the ``performance:`` section override the chosen target's.

Example::

    performance:
      target: edge
      batch_sizes: [1, 4]            # overrides edge's [1]
      budgets:
        - {id: p95, metric: "latency_p95_ms[batch=1]", max: 5}
        - {id: faster, metric: "speedup[batch=1]", min: 1.5}
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from compval.spec._criterion import CriterionSpec
from compval.spec._perf_metrics import parse_perf_metric
from compval.spec._types import BatchSize, ClientCount, SpecBool, SpecFloat, SpecInt, echo

__all__ = ["BUILTIN_TARGETS", "DEFAULT_TARGET", "PerformanceSpec", "TargetSpec"]

_TARGET_NAME = r"^[A-Za-z0-9_.\-]+$"


def _check_unique(values: list[int] | None) -> list[int] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"values must be distinct; got {echo(values)}, expected no repeats")
    return values


def _check_budget_metric(budget: CriterionSpec) -> CriterionSpec:
    # Validated per item, so an error's field path names the budget: budgets[1].
    parse_perf_metric(budget.metric)
    return budget


#: A budget: a criterion whose metric must be a performance metric.
Budget = Annotated[CriterionSpec, AfterValidator(_check_budget_metric)]


def _check_budgets(budgets: list[CriterionSpec]) -> list[CriterionSpec]:
    ids = [b.id for b in budgets]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"budget ids must be unique; got {echo(duplicated)} more than once")
    return budgets


#: Distinct client counts and batch sizes, each within its bounds (``MAX_CLIENTS``,
#: ``MAX_BATCH_SIZE``); validated wherever they appear.
_Counts = Annotated[list[ClientCount], AfterValidator(_check_unique)]
_BatchSizes = Annotated[list[BatchSize], Field(min_length=1), AfterValidator(_check_unique)]
#: Budgets with unique ids, each on a performance metric.
_Budgets = Annotated[list[Budget], AfterValidator(_check_budgets)]


class TargetSpec(BaseModel):
    """A deployment target: what to measure and which budgets apply.

    ``None`` fields fall back to compval's defaults (batch sizes 1, 8, 32, 128; concurrency
    1, 2, 4, 8; the runtime's default thread count).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    threads: SpecInt | None = Field(default=None, ge=1, description="Intra-op thread count.")
    batch_sizes: _BatchSizes | None = None
    concurrency: _Counts | None = Field(
        default=None, description="Concurrent client counts; [] skips the load test."
    )
    concurrency_batch_size: BatchSize | None = Field(
        default=None, description="Rows per request in the load test (default 1)."
    )
    operators: str | None = Field(
        default=None,
        description="Operator set the target supports: 'ort_mobile' or a path to an ONNX "
        "Runtime reduced-build config file (relative to the spec's directory).",
    )
    budgets: _Budgets = Field(default_factory=list)
    device: Literal["cuda"] | None = Field(
        default=None,
        description="'cuda': every model must run on a GPU (torch 'device: cuda', or an ONNX "
        "Runtime CUDA/TensorRT provider active); a model on the CPU stops the run before "
        "anything is timed, as its latency would say nothing about the target.",
    )


class PerformanceSpec(BaseModel):
    """Performance settings and budgets (the spec's optional ``performance:`` section).

    Explicit fields override those of ``target``; ``None`` means "take the target's".
    Budgets are ordinary criteria on performance metrics (``latency_p95_ms[batch=1]``,
    ``speedup[batch=1]``, ``model_size_mb``, ...); the target's budgets are added to them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = Field(
        default=None,
        description="Deployment target: cloud, cloud-gpu, edge, mobile or one of 'targets'.",
    )
    targets: dict[Annotated[str, Field(pattern=_TARGET_NAME)], TargetSpec] = Field(
        default_factory=dict, description="User-defined targets by name."
    )
    batch_sizes: _BatchSizes | None = None
    concurrency: _Counts | None = None
    concurrency_batch_size: BatchSize | None = None
    threads: SpecInt | None = Field(default=None, ge=1)
    warmup: SpecInt = Field(default=5, ge=0, description="Untimed runs before timing.")
    min_iterations: SpecInt = Field(default=30, ge=1, description="Timed runs per model and batch.")
    min_duration_s: SpecFloat = Field(default=0.5, ge=0.0, le=3600.0)
    rounds: SpecInt = Field(
        default=10, ge=2, le=1000, description="Interleaved reference/candidate rounds."
    )
    concurrency_duration_s: SpecFloat = Field(default=2.0, gt=0.0, le=3600.0)
    measure_memory: SpecBool = True
    memory_timeout_s: SpecFloat = Field(default=300.0, gt=0.0)
    budgets: _Budgets = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_target(self) -> PerformanceSpec:
        known = {*BUILTIN_TARGETS, *self.targets}
        if self.target is not None and self.target not in known:
            raise ValueError(
                f"target: unknown target; got {echo(self.target)}, expected one of "
                f"{', '.join(sorted(known))}. Define it under 'targets:' or pick a known one"
            )
        return self


#: Settings used when no target is named.
DEFAULT_TARGET = TargetSpec(
    description="compval defaults",
    batch_sizes=[1, 8, 32, 128],
    concurrency=[1, 2, 4, 8],
    concurrency_batch_size=1,
)

#: Built-in deployment targets.
BUILTIN_TARGETS: Mapping[str, TargetSpec] = MappingProxyType(
    {
        "cloud": TargetSpec(
            description="Server CPU: runtime-default threads, batches up to 128, up to 8 clients",
            batch_sizes=[1, 8, 32, 128],
            concurrency=[1, 2, 4, 8],
            concurrency_batch_size=1,
        ),
        "cloud-gpu": TargetSpec(
            description="Cloud GPU: every model on a CUDA device, batches up to 1024, up to 4 "
            "clients; a candidate may not be slower than the reference at batch 256",
            batch_sizes=[1, 32, 256, 1024],
            concurrency=[1, 4],
            concurrency_batch_size=1,
            device="cuda",
            budgets=[CriterionSpec(id="not-slower", metric="speedup[batch=256]", min=1.0)],
        ),
        "edge": TargetSpec(
            description="Edge device: 2 intra-op threads, batch 1, up to 2 clients",
            threads=2,
            batch_sizes=[1],
            concurrency=[1, 2],
            concurrency_batch_size=1,
        ),
        "mobile": TargetSpec(
            description="Phone: 1 thread, batch 1, one client, ONNX Runtime mobile operators",
            threads=1,
            batch_sizes=[1],
            concurrency=[1],
            concurrency_batch_size=1,
            operators="ort_mobile",
            budgets=[
                CriterionSpec(id="unsupported-ops", metric="unsupported_op_count", max=0),
            ],
        ),
    }
)
