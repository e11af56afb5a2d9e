"""The ``performance:`` section of the acceptance spec, deployment targets, and resolution.

A deployment target fixes the thread count, batch sizes, concurrency levels, an optional
operator set and budgets. Three are built in (``cloud``, ``edge``, ``mobile``); a spec may
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
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from compval.errors import InvalidParameterError, SpecValidationError
from compval.profiling._metrics import parse_perf_metric
from compval.profiling._operators import OperatorSet, load_operator_set
from compval.spec._criterion import CriterionSpec

__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_TARGET",
    "PerformanceSpec",
    "ProfileSettings",
    "TargetSpec",
    "resolve_settings",
]

_PositiveInt = Annotated[int, Field(ge=1)]
_TARGET_NAME = r"^[A-Za-z0-9_.\-]+$"


def _check_unique(values: list[int] | None) -> list[int] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"values must be distinct; got {values}, expected no repeats")
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
        raise ValueError(f"budget ids must be unique; got {duplicated} more than once")
    return budgets


class TargetSpec(BaseModel):
    """A deployment target: what to measure and which budgets apply.

    ``None`` fields fall back to compval's defaults (batch sizes 1, 8, 32, 128; concurrency
    1, 2, 4, 8; the runtime's default thread count).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    threads: int | None = Field(default=None, ge=1, description="Intra-op thread count.")
    batch_sizes: list[_PositiveInt] | None = Field(default=None, min_length=1)
    concurrency: list[_PositiveInt] | None = Field(
        default=None, description="Concurrent client counts; [] skips the load test."
    )
    concurrency_batch_size: int | None = Field(
        default=None, ge=1, description="Rows per request in the load test (default 1)."
    )
    operators: str | None = Field(
        default=None,
        description="Operator set the target supports: 'ort_mobile' or a path to an ONNX "
        "Runtime reduced-build config file (relative to the spec's directory).",
    )
    budgets: list[Budget] = Field(default_factory=list)

    @field_validator("batch_sizes", "concurrency")
    @classmethod
    def _unique(cls, values: list[int] | None) -> list[int] | None:
        return _check_unique(values)

    @field_validator("budgets")
    @classmethod
    def _budget_metrics(cls, budgets: list[CriterionSpec]) -> list[CriterionSpec]:
        return _check_budgets(budgets)


class PerformanceSpec(BaseModel):
    """Performance settings and budgets (the spec's optional ``performance:`` section).

    Explicit fields override those of ``target``; ``None`` means "take the target's".
    Budgets are ordinary criteria on performance metrics (``latency_p95_ms[batch=1]``,
    ``speedup[batch=1]``, ``model_size_mb``, ...); the target's budgets are added to them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = Field(
        default=None, description="Deployment target: cloud, edge, mobile or one of 'targets'."
    )
    targets: dict[Annotated[str, Field(pattern=_TARGET_NAME)], TargetSpec] = Field(
        default_factory=dict, description="User-defined targets by name."
    )
    batch_sizes: list[_PositiveInt] | None = Field(default=None, min_length=1)
    concurrency: list[_PositiveInt] | None = None
    concurrency_batch_size: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    warmup: int = Field(default=5, ge=0, description="Untimed runs before timing.")
    min_iterations: int = Field(default=30, ge=1, description="Timed runs per model and batch.")
    min_duration_s: float = Field(default=0.5, ge=0.0, le=3600.0)
    rounds: int = Field(
        default=10, ge=2, le=1000, description="Interleaved reference/candidate rounds."
    )
    concurrency_duration_s: float = Field(default=2.0, gt=0.0, le=3600.0)
    measure_memory: bool = True
    memory_timeout_s: float = Field(default=300.0, gt=0.0)
    budgets: list[Budget] = Field(default_factory=list)

    @field_validator("batch_sizes", "concurrency")
    @classmethod
    def _unique(cls, values: list[int] | None) -> list[int] | None:
        return _check_unique(values)

    @field_validator("budgets")
    @classmethod
    def _budget_metrics(cls, budgets: list[CriterionSpec]) -> list[CriterionSpec]:
        return _check_budgets(budgets)

    @model_validator(mode="after")
    def _known_target(self) -> PerformanceSpec:
        known = {*BUILTIN_TARGETS, *self.targets}
        if self.target is not None and self.target not in known:
            raise ValueError(
                f"target: unknown target; got {self.target!r}, expected one of "
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSettings:
    """Everything the profiler needs, resolved from a ``PerformanceSpec`` and its target.

    Attributes:
        target: Target name (``"default"`` when the spec names none).
        threads: Intra-op thread count the adapters were opened with; None = runtime default.
        batch_sizes: Batch sizes to time, ascending.
        concurrency: Client counts for the load test; empty skips it.
        concurrency_batch_size: Rows per request in the load test.
        warmup: Untimed runs per model and batch size before timing.
        min_iterations: Timed runs per model and batch size, at least.
        min_duration_s: Timed seconds per model and batch size, at least.
        rounds: Interleaved rounds the timing is split into (for the speedup interval).
        concurrency_duration_s: Length of each load test.
        measure_memory: Whether to measure peak memory in a child process.
        memory_timeout_s: Time limit for that child process.
        confidence: Confidence level of the speedup interval.
        operators: Operator set the target supports, or None.
        budgets: Target budgets (ids prefixed ``target-<name>-``) then the spec's budgets.
    """

    target: str = "default"
    threads: int | None = None
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128)
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    concurrency_batch_size: int = 1
    warmup: int = 5
    min_iterations: int = 30
    min_duration_s: float = 0.5
    rounds: int = 10
    concurrency_duration_s: float = 2.0
    measure_memory: bool = True
    memory_timeout_s: float = 300.0
    confidence: float = 0.95
    operators: OperatorSet | None = None
    budgets: tuple[CriterionSpec, ...] = ()

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, bool, str]] = [
            ("batch_sizes", self.batch_sizes, _positive_ints(self.batch_sizes, 1), "one or more"),
            ("concurrency", self.concurrency, _positive_ints(self.concurrency, 0), "zero or more"),
            ("concurrency_batch_size", self.concurrency_batch_size,
             self.concurrency_batch_size >= 1, "an integer >= 1"),
            ("threads", self.threads, self.threads is None or self.threads >= 1, "None or >= 1"),
            ("warmup", self.warmup, self.warmup >= 0, "an integer >= 0"),
            ("min_iterations", self.min_iterations, self.min_iterations >= 1, "an integer >= 1"),
            ("min_duration_s", self.min_duration_s, self.min_duration_s >= 0, "a float >= 0"),
            ("rounds", self.rounds, self.rounds >= 2, "an integer >= 2"),
            ("concurrency_duration_s", self.concurrency_duration_s,
             self.concurrency_duration_s > 0, "a float > 0"),
            ("memory_timeout_s", self.memory_timeout_s, self.memory_timeout_s > 0, "a float > 0"),
            ("confidence", self.confidence, 0.5 < self.confidence < 1, "in (0.5, 1)"),
        ]  # fmt: skip
        for name, value, ok, expected in checks:
            if not ok:
                if name in ("batch_sizes", "concurrency"):
                    expected = f"{expected} distinct positive integers"
                raise InvalidParameterError(
                    f"ProfileSettings: {name!r} is invalid; got {value!r}, expected {expected}."
                )


def resolve_settings(
    spec: PerformanceSpec, *, base_dir: str | Path | None = None, confidence: float = 0.95
) -> ProfileSettings:
    """Merge the spec's explicit fields over its target's and load the target's operator set.

    Args:
        spec: The ``performance:`` section.
        base_dir: Directory that relative operator-set paths are resolved against (the spec
            file's directory); default: the working directory.
        confidence: Confidence level of the speedup interval (the spec's
            ``statistics.confidence``).

    Returns:
        The resolved settings; ``budgets`` holds the target's budgets, ids prefixed
        ``target-<name>-``, followed by the spec's own.

    Raises:
        SpecValidationError: The operator set cannot be loaded, budget ids collide, or a
            budget names a batch size / client count that is not profiled, or
            ``unsupported_op_count`` without an operator set.

    Example:
        >>> s = resolve_settings(PerformanceSpec(target="edge", batch_sizes=[1, 4]))
        >>> (s.target, s.threads, s.batch_sizes, s.concurrency)
        ('edge', 2, (1, 4), (1, 2))
    """
    name = spec.target or "default"
    target = spec.targets.get(name) or BUILTIN_TARGETS.get(name) or DEFAULT_TARGET
    where = f"performance.targets.{name}" if name in spec.targets else f"target {name!r}"

    batch_sizes = _first(spec.batch_sizes, target.batch_sizes, DEFAULT_TARGET.batch_sizes)
    concurrency = _first(spec.concurrency, target.concurrency, DEFAULT_TARGET.concurrency)
    operators = None
    if target.operators is not None:
        try:
            operators = load_operator_set(target.operators, base_dir=base_dir)
        except InvalidParameterError as exc:
            raise SpecValidationError(
                f"{where}.operators: {exc}", path=f"{where}.operators"
            ) from exc

    budgets = [
        (f"{where}.budgets[{i}]", b.model_copy(update={"id": f"target-{name}-{b.id}"}))
        for i, b in enumerate(target.budgets)
    ] + [(f"performance.budgets[{i}]", b) for i, b in enumerate(spec.budgets)]
    seen: set[str] = set()
    for path, budget in budgets:
        if budget.id in seen:
            raise SpecValidationError(
                f"{path}.id: budget id is used twice; got {budget.id!r}, expected unique ids. "
                "Rename one of the budgets.",
                path=f"{path}.id",
            )
        seen.add(budget.id)
        _check_budget_scope(path, budget, batch_sizes, concurrency, operators is not None)

    try:
        return ProfileSettings(
            target=name,
            threads=spec.threads if spec.threads is not None else target.threads,
            batch_sizes=tuple(sorted(batch_sizes)),
            concurrency=tuple(sorted(concurrency)),
            concurrency_batch_size=spec.concurrency_batch_size
            or target.concurrency_batch_size
            or 1,
            warmup=spec.warmup,
            min_iterations=spec.min_iterations,
            min_duration_s=spec.min_duration_s,
            rounds=spec.rounds,
            concurrency_duration_s=spec.concurrency_duration_s,
            measure_memory=spec.measure_memory,
            memory_timeout_s=spec.memory_timeout_s,
            confidence=confidence,
            operators=operators,
            budgets=tuple(b for _, b in budgets),
        )
    except InvalidParameterError as exc:
        raise SpecValidationError(f"performance: {exc}", path="performance") from exc


def _first(*values: list[int] | None) -> list[int]:
    for value in values:
        if value is not None:
            return value
    return []  # pragma: no cover - DEFAULT_TARGET always has values


def _check_budget_scope(
    path: str,
    budget: CriterionSpec,
    batch_sizes: list[int],
    concurrency: list[int],
    has_operators: bool,
) -> None:
    base, key, value = parse_perf_metric(budget.metric)
    profiled = {"batch": batch_sizes, "clients": concurrency}
    if key is not None and value not in profiled[key]:
        what = "batch sizes" if key == "batch" else "concurrency levels"
        raise SpecValidationError(
            f"{path}.metric: {budget.metric!r} refers to {key} {value}, which is not profiled; "
            f"got {what} {sorted(profiled[key])}, expected one of them. Add {value} to "
            f"'{'batch_sizes' if key == 'batch' else 'concurrency'}' or fix the budget.",
            path=f"{path}.metric",
        )
    if base == "unsupported_op_count" and not has_operators:
        raise SpecValidationError(
            f"{path}.metric: 'unsupported_op_count' needs an operator set; got a target "
            "without 'operators', expected one. Set the target's 'operators' "
            "(e.g. 'ort_mobile' or a config file) or drop the budget.",
            path=f"{path}.metric",
        )


def _positive_ints(values: tuple[int, ...], minimum_length: int) -> bool:
    return (
        len(values) >= minimum_length
        and all(isinstance(v, int) and v >= 1 for v in values)
        and len(set(values)) == len(values)
    )
