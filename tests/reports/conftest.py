"""Hand-built reports for the renderer tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from compval.results import (
    CheckResult,
    DecisionInfo,
    LatencyStats,
    LoadStats,
    MetricValue,
    ModelProfile,
    ProfileSection,
    Report,
    ResamplingInfo,
    RunInfo,
    SpeedupResult,
    StatisticsSection,
)

NASTY_SEGMENT = "lang=a|b"
SCRIPT_SEGMENT = "name=<script>alert(1)</script>"
MARKUP_SEGMENT = "tag=[bold red]boom[/]"


def make_run(**overrides: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "compval_version": "0.1.0",
        "python_version": "3.11.7",
        "platform": "Linux-x86_64",
        "runtimes": {"onnxruntime": "1.17.0"},
        "task": "classification",
        "spec_hash": "sha256:0123456789abcdef0123456789abcdef",
        "spec_path": "acceptance.yaml",
        "data_hash": "sha256:feedface",
        "data_rows": 1000,
        "seed": 1234,
        "batch_size": 64,
        "started_at": "2024-05-01T12:00:00+00:00",
        "finished_at": "2024-05-01T12:00:05+00:00",
        "duration_s": 5.25,
        "models": {
            "fp32": {"role": "reference", "adapter": "onnxruntime"},
            "int8": {"role": "candidate", "adapter": "onnxruntime"},
            "pruned": {"role": "candidate", "adapter": "onnxruntime"},
        },
        "segment_columns": ("lang",),
        "notes": ("hand-built for tests",),
    }
    fields.update(overrides)
    return RunInfo(**fields)


def make_check(
    id: str,
    candidate: str,
    verdict: str,
    *,
    segment: str | None = None,
    metric: str = "accuracy_score",
    observed: float | None = 0.5,
    threshold: float = -0.01,
    severity: str = "error",
    blocking: bool = True,
    message: str | None = None,
    compare: str = "delta",
    op: str = ">=",
) -> CheckResult:
    return CheckResult(
        id=id,
        candidate=candidate,
        metric=metric,
        segment=segment,
        verdict=verdict,  # type: ignore[arg-type]
        observed=observed,
        threshold=threshold,
        message=message if message is not None else f"{metric} {verdict}",
        severity=severity,  # type: ignore[arg-type]
        blocking=blocking,
        criterion={
            "metric": metric,
            "compare": compare,
            "statistic": "point",
            "op": op,
            "threshold": threshold,
            "segment": segment,
        },
    )


def make_metric(
    candidate: str,
    metric: str,
    *,
    segment: str | None = None,
    reference: float | None = 0.9,
    value: float | None = 0.9,
    delta: float | None = 0.0,
    n: int = 1000,
    ci: tuple[float, float] | None = None,
) -> MetricValue:
    return MetricValue(
        candidate=candidate,
        metric=metric,
        segment=segment,
        reference_value=reference,
        candidate_value=value,
        delta=delta,
        n=n,
        higher_is_better=True,
        ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1],
        confidence=None if ci is None else 0.95,
        ci_method=None if ci is None else "poisson_bootstrap",
    )


PROFILE: dict[str, Any] = {
    "target": {"name": "edge", "threads": 1, "batch_sizes": [1, 8], "concurrency": [1, 2]},
    "settings": {"warmup": 10, "min_iterations": 50, "min_duration_s": 1.0},
    "models": {
        "fp32": {
            "role": "reference",
            "size_mb": 44.71,
            "parameter_count": 11_689_512,
            "weight_sparsity": 0.0,
            "load_time_ms": 120.5,
            "peak_memory_mb": 310.25,
            "latency": [
                {
                    "batch_size": 1,
                    "iterations": 200,
                    "p50_ms": 4.1234,
                    "p90_ms": 4.5,
                    "p95_ms": 4.8765,
                    "p99_ms": 5.5,
                    "mean_ms": 4.2,
                    "std_ms": 0.3,
                    "cv": 0.071,
                    "throughput_sps": 242.5,
                }
            ],
            "concurrency": [
                {
                    "clients": 2,
                    "batch_size": 1,
                    "duration_s": 2.0,
                    "requests": 900,
                    "errors": 0,
                    "throughput_sps": 450.0,
                    "p50_ms": 4.3,
                    "p95_ms": 5.1,
                    "p99_ms": 6.2,
                }
            ],
            "unsupported_ops": None,
        },
        "int8": {
            "role": "candidate",
            "size_mb": 11.2,
            "parameter_count": None,
            "weight_sparsity": None,
            "load_time_ms": None,
            "peak_memory_mb": None,
            "latency": [
                {
                    "batch_size": 1,
                    "iterations": 300,
                    "p50_ms": 2.25,
                    "p95_ms": 2.6,
                    "throughput_sps": 444.4,
                }
            ],
            "unsupported_ops": ["QLinearSoftmax"],
        },
    },
    "speedup": [
        {
            "candidate": "int8",
            "batch_size": 1,
            "ratio": 1.8326,
            "ci_low": 1.7101,
            "ci_high": 1.9512,
            "confidence": 0.95,
            "rounds": 30,
        }
    ],
}


def profile_section(data: dict[str, Any]) -> ProfileSection:
    """The typed profile of a report.json-shaped dict (missing latency fields filled in)."""
    latency_defaults = {"p90_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "std_ms": 0.0, "cv": 0.0}
    models = {
        name: ModelProfile(
            name=name,
            role=m["role"],
            size_mb=m["size_mb"],
            parameter_count=m["parameter_count"],
            weight_sparsity=m["weight_sparsity"],
            load_time_ms=m["load_time_ms"],
            peak_memory_mb=m["peak_memory_mb"],
            latency=tuple(LatencyStats(**{**latency_defaults, **e}) for e in m["latency"]),
            concurrency=tuple(LoadStats(**e) for e in m.get("concurrency", [])),
            unsupported_ops=None if m["unsupported_ops"] is None else tuple(m["unsupported_ops"]),
        )
        for name, m in data["models"].items()
    }
    target, settings = data["target"], data["settings"]
    return ProfileSection(
        target=target["name"],
        threads=target["threads"],
        batch_sizes=tuple(target["batch_sizes"]),
        concurrency=tuple(target["concurrency"]),
        reference=next(n for n, m in models.items() if m.role == "reference"),
        models=models,
        speedups=tuple(SpeedupResult(**e) for e in data["speedup"]),
        **settings,
    )


STATISTICS = StatisticsSection(
    resampling=ResamplingInfo(method="poisson bootstrap", replicates=2000, confidence=0.95, seed=0),
    decision=DecisionInfo(
        rule="non-inferiority", min_rows=30, correction="holm", inconclusive="block"
    ),
)


def build_report(*, profile: dict[str, Any] | None = None) -> Report:
    """int8 passes (with one non-blocking warning); pruned fails."""
    checks = (
        # Listed first, but non-blocking: must sort after the blocking ones.
        make_check(
            "p95-latency",
            "int8",
            "fail",
            metric="latency_p95_ms[batch=1]",
            observed=2.6,
            threshold=2.0,
            severity="warn",
            blocking=False,
            compare="candidate",
            op="<=",
            message="latency_p95_ms[batch=1] = 2.6 > 2",
        ),
        make_check(
            "top1-min",
            "int8",
            "pass",
            metric="top1_agreement",
            observed=0.995,
            threshold=0.99,
            compare="candidate",
        ),
        make_check("acc-drop", "int8", "pass", observed=-0.002),
        make_check("agreement", "int8", "pass", segment=NASTY_SEGMENT, observed=0.99),
        make_check(
            "agreement",
            "pruned",
            "inconclusive",
            segment=SCRIPT_SEGMENT,
            metric="top1_agreement",
            observed=0.985,
            threshold=0.99,
            compare="candidate",
            message="top1_agreement[<script>] interval straddles 0.99\nsecond line",
        ),
        make_check(
            "acc-drop",
            "pruned",
            "fail",
            observed=-0.031234,
            message="accuracy_score delta = -0.0312 < -0.01 | bad `code`",
        ),
        make_check("nan-check", "pruned", "pass", segment=MARKUP_SEGMENT, observed=math.nan),
    )
    metrics = (
        make_metric(
            "int8",
            "accuracy_score",
            reference=0.912345,
            value=0.910345,
            delta=-0.002,
            ci=(-0.0061, 0.0021),
        ),
        make_metric("int8", "top1_agreement", reference=None, value=0.995, delta=None),
        make_metric(
            "int8",
            "accuracy_score",
            segment=NASTY_SEGMENT,
            reference=0.9,
            value=0.8,
            delta=-0.1,
            n=40,
        ),
        make_metric(
            "pruned",
            "accuracy_score",
            reference=0.912345,
            value=0.881111,
            delta=-0.031234,
            ci=(-0.0412, -0.0203),
        ),
        make_metric("pruned", "mean_kl_divergence", reference=None, value=math.nan, delta=None),
        make_metric(
            "pruned",
            "accuracy_score",
            segment=SCRIPT_SEGMENT,
            reference=math.inf,
            value=0.5,
            delta=math.nan,
            n=12,
        ),
    )
    return Report(
        run=make_run(),
        metrics=metrics,
        checks=checks,
        candidates=("int8", "pruned"),
        statistics=STATISTICS,
        profile=None if profile is None else profile_section(profile),
    )


@pytest.fixture
def report() -> Report:
    return build_report(profile=PROFILE)


@pytest.fixture
def passing_report() -> Report:
    return Report(
        run=make_run(),
        metrics=(make_metric("int8", "accuracy_score", delta=0.001, value=0.901),),
        checks=(make_check("acc-drop", "int8", "pass", observed=0.001),),
        candidates=("int8",),
    )


@pytest.fixture
def check_factory() -> Callable[..., CheckResult]:
    return make_check


@pytest.fixture
def metric_factory() -> Callable[..., MetricValue]:
    return make_metric


@pytest.fixture
def run_factory() -> Callable[..., RunInfo]:
    return make_run
