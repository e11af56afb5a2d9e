"""Resolve a spec's ``performance:`` section over its deployment target into ProfileSettings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compval.errors import InvalidParameterError, SpecValidationError
from compval.profiling._operators import OperatorSupport
from compval.profiling.targets import load_operator_set
from compval.spec import (
    BUILTIN_TARGETS,
    DEFAULT_TARGET,
    CriterionSpec,
    PerformanceSpec,
    parse_perf_metric,
)

__all__ = ["ProfileSettings", "resolve_settings"]


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
        operators: What the target's runtime can run (``OrtCpuKernels`` for ``ort_mobile``,
            an ``OperatorSet`` for a config file), or None for no operator check. With one,
            the profiler also reports which nodes NNAPI and CoreML would leave to the CPU.
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
    operators: OperatorSupport | None = None
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
            ``unsupported_op_count`` (or an EP's fallback count) without an operator set.

    Example:
        >>> from compval.spec import PerformanceSpec
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
    # Per-EP fallback counts (e.g. nnapi_fallback_node_count) come from the same check.
    if (base == "unsupported_op_count" or base.endswith("_fallback_node_count")) and not (
        has_operators
    ):
        raise SpecValidationError(
            f"{path}.metric: {base!r} needs an operator set; got a target "
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
