from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from compval.errors import InvalidParameterError, SpecValidationError
from compval.profiling import ProfileSettings, resolve_settings
from compval.spec import (
    BUILTIN_TARGETS,
    PERF_METRIC_DIRECTIONS,
    AcceptanceSpec,
    CriterionSpec,
    PerformanceSpec,
    parse_perf_metric,
)


def test_defaults_without_target() -> None:
    s = resolve_settings(PerformanceSpec())
    assert s.target == "default"
    assert s.threads is None
    assert s.batch_sizes == (1, 8, 32, 128)
    assert s.concurrency == (1, 2, 4, 8)
    assert (s.warmup, s.min_iterations, s.min_duration_s, s.rounds) == (5, 30, 0.5, 10)
    assert s.operators is None
    assert s.budgets == ()


def test_builtin_targets() -> None:
    edge = resolve_settings(PerformanceSpec(target="edge"))
    assert (edge.threads, edge.batch_sizes, edge.concurrency) == (2, (1,), (1, 2))
    mobile = resolve_settings(PerformanceSpec(target="mobile"))
    assert (mobile.threads, mobile.batch_sizes, mobile.concurrency) == (1, (1,), (1,))
    assert mobile.operators is not None and mobile.operators.source == "ort_mobile"
    assert [b.id for b in mobile.budgets] == ["target-mobile-unsupported-ops"]
    assert mobile.budgets[0].metric == "unsupported_op_count"
    assert mobile.budgets[0].max == 0
    assert set(BUILTIN_TARGETS) == {"cloud", "cloud-gpu", "edge", "mobile"}


def test_explicit_fields_override_the_target() -> None:
    spec = PerformanceSpec(
        target="edge",
        threads=1,
        batch_sizes=[4, 1],
        concurrency=[],
        warmup=0,
        min_iterations=3,
        budgets=[CriterionSpec(id="p95", metric="latency_p95_ms[batch=4]", max=5)],
    )
    s = resolve_settings(spec, confidence=0.9)
    assert (s.target, s.threads, s.batch_sizes, s.concurrency) == ("edge", 1, (1, 4), ())
    assert (s.warmup, s.min_iterations, s.confidence) == (0, 3, 0.9)
    assert [b.id for b in s.budgets] == ["p95"]


def test_user_target_with_operator_file_and_budgets(tmp_path: Path) -> None:
    (tmp_path / "ops.config").write_text("ai.onnx;13;MatMul,Add\n")
    spec = PerformanceSpec.model_validate(
        {
            "target": "tiny",
            "targets": {
                "tiny": {
                    "threads": 1,
                    "batch_sizes": [2],
                    "operators": "ops.config",
                    "budgets": [
                        {"id": "ops", "metric": "unsupported_op_count", "max": 0},
                        {"id": "fast", "metric": "speedup[batch=2]", "min": 1.5},
                    ],
                }
            },
            "budgets": [{"id": "small", "metric": "model_size_mb", "max": 10}],
        }
    )
    s = resolve_settings(spec, base_dir=tmp_path)
    assert (s.target, s.threads, s.batch_sizes) == ("tiny", 1, (2,))
    assert s.concurrency == (1, 2, 4, 8)  # not set by the target: compval's default
    assert [b.id for b in s.budgets] == ["target-tiny-ops", "target-tiny-fast", "small"]
    assert s.operators is not None
    assert set(s.operators.entries) == {("ai.onnx", "MatMul"), ("ai.onnx", "Add")}


def test_user_target_replaces_a_builtin_of_the_same_name() -> None:
    spec = PerformanceSpec.model_validate({"target": "edge", "targets": {"edge": {"threads": 4}}})
    s = resolve_settings(spec)
    assert (s.threads, s.batch_sizes) == (4, (1, 8, 32, 128))


def test_acceptance_spec_takes_the_performance_section() -> None:
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"path": "a.onnx"},
            "candidate": {"path": "b.onnx"},
            "data": {"path": "d.npz"},
            "performance": {"target": "mobile", "rounds": 4},
        }
    )
    assert spec.performance is not None
    assert resolve_settings(spec.performance).rounds == 4


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"target": "edg"},
            r"unknown target; got 'edg', expected one of cloud, cloud-gpu, edge, mobile",
        ),
        (
            {"target": "x", "targets": {"y": {}}},
            r"expected one of cloud, cloud-gpu, edge, mobile, y",
        ),
        ({"batch_sizes": []}, r"batch_sizes\n  List should have at least 1 item"),
        ({"batch_sizes": [0]}, r"batch_sizes\.0\n  Input should be greater than or equal to 1"),
        ({"batch_sizes": [1, 1]}, r"batch_sizes\n  Value error, values must be distinct"),
        ({"concurrency": [2, 2]}, r"concurrency\n  Value error, values must be distinct"),
        ({"rounds": 1}, r"rounds\n  Input should be greater than or equal to 2"),
        ({"min_iterations": 0}, r"min_iterations\n  Input should be greater than or equal to 1"),
        ({"warmup": -1}, r"warmup\n  Input should be greater than or equal to 0"),
        ({"threads": 0}, r"threads\n  Input should be greater than or equal to 1"),
        ({"concurrency_duration_s": 0}, r"concurrency_duration_s\n  Input should be greater"),
        ({"wramup": 3}, r"wramup\n  Extra inputs are not permitted"),
        ({"targets": {"bad name": {}}}, r"targets\.bad name\.\[key\]\n  String should match"),
        ({"targets": {"t": {"thread": 1}}}, r"targets\.t\.thread\n  Extra inputs"),
        (
            {"budgets": [{"id": "a", "metric": "latency_p95_ms", "max": 1}]},
            r"budgets\.0\n  Value error, metric 'latency_p95_ms' needs a \[batch=N\] selector",
        ),
        (
            {"budgets": [{"id": "a", "metric": "lateny_p95_ms[batch=1]", "max": 1}]},
            r"budgets\.0\n  Value error, unknown performance metric; "
            r"got 'lateny_p95_ms\[batch=1\]'",
        ),
        (
            {"budgets": [{"id": "a", "metric": "model_size_mb[batch=1]", "max": 1}]},
            r"metric 'model_size_mb\[batch=1\]' needs no selector; got \[batch=1\]",
        ),
        (
            {"budgets": [{"id": "a", "metric": "model_size_mb", "max": 1}] * 2},
            r"budget ids must be unique; got \['a'\] more than once",
        ),
        (
            {
                "targets": {
                    "t": {"budgets": [{"id": "a", "metric": "speedup[clients=2]", "min": 1}]}
                }
            },
            r"targets\.t\.budgets\.0\n  Value error, metric "
            r"'speedup\[clients=2\]' needs a \[batch=N\] selector",
        ),
    ],
)
def test_spec_validation_errors_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        PerformanceSpec.model_validate(data)


@pytest.mark.parametrize(
    ("data", "match", "path"),
    [
        (
            {
                "target": "edge",
                "budgets": [{"id": "p", "metric": "latency_p95_ms[batch=8]", "max": 1}],
            },
            r"performance\.budgets\[0\]\.metric: 'latency_p95_ms\[batch=8\]' refers to batch 8, "
            r"which is not profiled; got batch sizes \[1\]",
            "performance.budgets[0].metric",
        ),
        (
            {"budgets": [{"id": "c", "metric": "concurrent_throughput_sps[clients=3]", "min": 1}]},
            r"refers to clients 3, which is not profiled; got concurrency levels \[1, 2, 4, 8\]",
            "performance.budgets[0].metric",
        ),
        (
            {"budgets": [{"id": "o", "metric": "unsupported_op_count", "max": 0}]},
            r"'unsupported_op_count' needs an operator set",
            "performance.budgets[0].metric",
        ),
        (
            {
                "target": "mobile",
                "budgets": [
                    {"id": "target-mobile-unsupported-ops", "metric": "model_size_mb", "max": 1}
                ],
            },
            r"budget id is used twice; got 'target-mobile-unsupported-ops'",
            "performance.budgets[0].id",
        ),
        (
            {"target": "t", "targets": {"t": {"operators": "missing.config"}}},
            r"performance\.targets\.t\.operators: Operator set: file not found",
            "performance.targets.t.operators",
        ),
    ],
)
def test_resolution_errors(data: dict[str, object], match: str, path: str, tmp_path: Path) -> None:
    spec = PerformanceSpec.model_validate(data)
    with pytest.raises(SpecValidationError, match=match) as info:
        resolve_settings(spec, base_dir=tmp_path)
    assert info.value.path == path


def test_bad_confidence_is_a_spec_error() -> None:
    with pytest.raises(SpecValidationError, match=r"'confidence' is invalid; got 1.0"):
        resolve_settings(PerformanceSpec(), confidence=1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_sizes": ()}, r"'batch_sizes' is invalid; got \(\), expected one or more distinct"),
        ({"batch_sizes": (1, 1)}, r"'batch_sizes' is invalid"),
        ({"concurrency": (0,)}, r"'concurrency' is invalid; got \(0,\), expected zero or more"),
        ({"rounds": 1}, r"'rounds' is invalid; got 1, expected an integer >= 2"),
        ({"threads": 0}, r"'threads' is invalid"),
        ({"min_duration_s": -1.0}, r"'min_duration_s' is invalid"),
    ],
)
def test_settings_validate_direct_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        ProfileSettings(**kwargs)  # type: ignore[arg-type]


def test_metric_names_and_directions() -> None:
    assert parse_perf_metric("concurrent_latency_p95_ms[clients=4]") == (
        "concurrent_latency_p95_ms",
        "clients",
        4,
    )
    assert parse_perf_metric("peak_memory_mb") == ("peak_memory_mb", None, None)
    # The shared vocabulary's suffix rule: throughput*/speedup* up; _ms/_mb/_count down.
    for name, higher in PERF_METRIC_DIRECTIONS.items():
        if name.startswith(("throughput", "speedup", "concurrent_throughput")):
            assert higher, name
        elif name.endswith(("_ms", "_mb", "_count")):
            assert not higher, name
    with pytest.raises(ValueError, match=r"needs a \[batch=N\] selector; got \[batch=0\]"):
        parse_perf_metric("speedup[batch=0]")


def test_fallback_count_budget_needs_an_operator_set_once_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The per-EP metric names are not in the vocabulary yet; the check is ready for them.
    from compval.spec import _perf_metrics

    name = "nnapi_fallback_node_count"
    monkeypatch.setattr(
        _perf_metrics, "PERF_METRIC_DIRECTIONS", {**PERF_METRIC_DIRECTIONS, name: False}
    )
    monkeypatch.setattr(
        _perf_metrics, "PERF_METRIC_SELECTORS", {**_perf_metrics.PERF_METRIC_SELECTORS, name: None}
    )
    budget = {"id": "nnapi", "metric": name, "max": 0}
    with pytest.raises(SpecValidationError, match=f"'{name}' needs an operator set") as info:
        resolve_settings(PerformanceSpec(target="edge", budgets=[budget]))  # type: ignore[list-item]
    assert info.value.path == "performance.budgets[0].metric"
    mobile = resolve_settings(PerformanceSpec(target="mobile", budgets=[budget]))  # type: ignore[list-item]
    assert [b.metric for b in mobile.budgets] == ["unsupported_op_count", name]
