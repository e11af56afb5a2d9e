"""End-to-end tests of a validation spec's ``performance:`` section through ``compval validate``.

Tiny ``Gemm + Softmax`` ONNX models on 4 features and a 60-row Parquet file are built in each
test, so sizes, parameter counts, sparsity, operator lists and accuracies are known exactly
(accuracy is checked against scikit-learn on the models' own outputs computed with numpy).
Budgets become checks next to the accuracy checks; timings are never asserted.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score

from compval.cli.main import ExitCode, main
from compval.errors import SpecValidationError
from compval.profiling import resolve_settings
from compval.spec import PerformanceSpec, load_spec

N_FEATURES = 4
N_CLASSES = 3
N_ROWS = 60
_MIB = 1024 * 1024

# The fastest settings that still exercise every stage (memory is measured in one test only).
FAST: dict[str, Any] = {
    "batch_sizes": [1],
    "concurrency": [1],
    "warmup": 1,
    "min_iterations": 5,
    "min_duration_s": 0.01,
    "rounds": 2,
    "concurrency_duration_s": 0.1,
    "measure_memory": False,
}


# -- builders ------------------------------------------------------------------------------
def dense_weights(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    magnitude = 0.5 + rng.random((N_FEATURES, N_CLASSES))
    sign = np.where(rng.random((N_FEATURES, N_CLASSES)) < 0.5, -1.0, 1.0)
    return (magnitude * sign).astype(np.float32)


def half_pruned(w: np.ndarray, seed: int = 1) -> np.ndarray:
    out: np.ndarray = w.copy()
    rows = np.random.default_rng(seed).choice(out.size, size=out.size // 2, replace=False)
    out.flat[rows] = 0.0
    return out


def write_classifier(path: Path, w: np.ndarray, *, opset: int = 13) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", N_CLASSES])],
        [
            numpy_helper.from_array(w.astype(np.float32), "W"),
            numpy_helper.from_array(np.zeros(N_CLASSES, dtype=np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@dataclass
class Workspace:
    """Models and data of one test, and the weights they were written from."""

    root: Path
    w_ref: np.ndarray
    w_cand: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def spec(self, performance: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "version": 1,
            "reference": {"name": "ref", "path": "ref.onnx"},
            "candidates": [{"name": "cand", "path": "cand.onnx"}],
            "data": {"path": "data.parquet", "labels": "y", "segments": ["region"]},
            "statistics": {"replicates": 0},
            "criteria": [{"id": "accuracy", "metric": "accuracy_score", "max_drop": 1.0}],
        }
        if performance is not None:
            spec["performance"] = performance
        spec.update(overrides)
        return spec


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w_ref = dense_weights()
    w_cand = half_pruned(w_ref)
    write_classifier(tmp_path / "ref.onnx", w_ref)
    write_classifier(tmp_path / "cand.onnx", w_cand)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=N_ROWS)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["y"] = y
    frame["region"] = np.where(rng.random(N_ROWS) < 0.5, "north", "south")
    frame.to_parquet(tmp_path / "data.parquet")
    return Workspace(tmp_path, w_ref, w_cand, x, y)


@dataclass
class Outcome:
    code: ExitCode
    out: str
    err: str
    report_dir: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / "report.json").read_text("utf-8"))
        return data

    def check(self, check_id: str) -> dict[str, Any]:
        found: dict[str, Any]
        (found,) = [c for c in self.report["checks"] if c["id"] == check_id]
        return found


def validate(spec_path: Path, *flags: str) -> Outcome:
    """``compval validate SPEC --quiet [FLAGS]`` in-process; the report goes next to the spec."""
    report_dir = spec_path.parent / "report"
    out, err = io.StringIO(), io.StringIO()
    argv = ["validate", str(spec_path), "--report-dir", str(report_dir), "--quiet", *flags]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return Outcome(code, out.getvalue(), err.getvalue(), report_dir)


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def one_message(err: str) -> str:
    """The single ``compval: error:`` message of a user error, whitespace-normalized."""
    text = err.strip()
    assert text.startswith("compval: error: "), err
    assert text.count("compval: error:") == 1, err
    assert all(line.startswith("  ") for line in text.splitlines()[1:]), err
    return " ".join(text.split())


def predictions(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Softmax is monotonic and the bias is zero: the argmax of the logits is the prediction.
    return np.asarray((x @ w.astype(np.float64)).argmax(axis=1))


def overall(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        m
        for m in report["metrics"]
        if m["metric"] == name and m["segment"] is None and m["candidate"] == "cand"
    ]
    return found


# -- budgets become checks -------------------------------------------------------------------
def test_budgets_become_checks_next_to_the_accuracy_checks(ws: Workspace) -> None:
    budgets = [
        {"id": "tiny", "metric": "model_size_mb", "max": 0.000001},
        {"id": "sparse", "metric": "weight_sparsity", "min": 0.4},
        {"id": "few-params", "metric": "parameter_count", "max": 1, "severity": "warn"},
        {"id": "any-speed", "metric": "speedup[batch=1]", "min": 0.0},
    ]
    spec = write_spec(ws.root / "spec.yaml", ws.spec({**FAST, "budgets": budgets}))
    outcome = validate(spec)
    assert outcome.code == ExitCode.CHECKS_FAILED, outcome.err
    report = outcome.report
    assert [c["id"] for c in report["checks"]] == [
        "accuracy",
        "tiny",
        "sparse",
        "few-params",
        "any-speed",
        "nonfinite-outputs",
    ]

    # The accuracy side is untouched by profiling: scikit-learn on the models' own predictions.
    accuracy = overall(report, "accuracy_score")
    assert accuracy["reference_value"] == pytest.approx(
        accuracy_score(ws.y, predictions(ws.x, ws.w_ref))
    )
    assert accuracy["candidate_value"] == pytest.approx(
        accuracy_score(ws.y, predictions(ws.x, ws.w_cand))
    )
    assert outcome.check("accuracy")["verdict"] == "pass"

    size_mb = (ws.root / "cand.onnx").stat().st_size / _MIB
    tiny = outcome.check("tiny")
    assert (tiny["verdict"], tiny["blocking"], tiny["severity"]) == ("fail", True, "error")
    assert tiny["observed"] == size_mb and tiny["threshold"] == 0.000001
    assert f"model_size_mb = {size_mb:.4g} violates <= 1e-06" in tiny["message"]

    sparse = outcome.check("sparse")
    assert (sparse["verdict"], sparse["observed"]) == ("pass", 0.5)

    few = outcome.check("few-params")
    assert (few["verdict"], few["blocking"], few["severity"]) == ("fail", False, "warn")
    assert few["observed"] == N_FEATURES * N_CLASSES + N_CLASSES
    assert "parameter_count = 15 violates <= 1" in few["message"]

    speed = outcome.check("any-speed")
    assert speed["verdict"] == "pass"
    assert speed["observed"] == report["profile"]["speedup"][0]["ratio"]

    assert report["candidates"] == [{"name": "cand", "passed": False}]
    profile = report["profile"]
    assert profile["settings"] == {"warmup": 1, "min_iterations": 5, "min_duration_s": 0.01}
    assert profile["target"] == {
        "name": "default",
        "threads": None,
        "batch_sizes": [1],
        "concurrency": [1],
    }
    # measure_memory: false -> no memory metric, and null in the profile.
    names = {m["metric"] for m in report["metrics"]}
    assert "peak_memory_mb" not in names
    assert {"model_size_mb", "speedup[batch=1]", "concurrent_throughput_sps[clients=1]"} <= names
    assert all(m["peak_memory_mb"] is None for m in profile["models"].values())
    assert profile["models"]["cand"]["weight_sparsity"] == 0.5
    assert profile["models"]["ref"]["weight_sparsity"] == 0.0


def test_met_budgets_pass_and_the_target_threads_are_recorded(ws: Workspace) -> None:
    perf = {
        **FAST,
        "threads": 1,
        "batch_sizes": [1, 2],
        "budgets": [
            {"id": "size", "metric": "model_size_mb", "max": 1.0},
            {"id": "p95", "metric": "latency_p95_ms[batch=2]", "max": 1.0e9},
            {"id": "same-params", "metric": "parameter_count", "max_increase": 0},
        ],
    }
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.OK, outcome.err
    report = outcome.report
    assert report["passed"] is True
    assert {c["id"]: c["verdict"] for c in report["checks"]} == {
        "accuracy": "pass",
        "size": "pass",
        "p95": "pass",
        "same-params": "pass",
        "nonfinite-outputs": "pass",
    }
    assert outcome.check("same-params")["observed"] == 0.0  # delta of equal counts
    profile = report["profile"]
    assert profile["target"]["threads"] == 1
    assert profile["target"]["batch_sizes"] == [1, 2]
    for model in profile["models"].values():
        assert [e["batch_size"] for e in model["latency"]] == [1, 2]
    assert [(s["candidate"], s["batch_size"]) for s in profile["speedup"]] == [
        ("cand", 1),
        ("cand", 2),
    ]
    assert (
        overall(report, "latency_p95_ms[batch=2]")["candidate_value"]
        == (profile["models"]["cand"]["latency"][1]["p95_ms"])
    )


def test_measure_memory_reports_peak_memory_as_a_metric(ws: Workspace) -> None:
    perf = {
        **FAST,
        "concurrency": [],
        "measure_memory": True,
        "budgets": [{"id": "memory", "metric": "peak_memory_mb", "max": 1.0e6}],
    }
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.OK, outcome.err
    report = outcome.report
    memory = overall(report, "peak_memory_mb")
    profile = report["profile"]["models"]
    assert memory["reference_value"] == profile["ref"]["peak_memory_mb"]
    assert memory["candidate_value"] == profile["cand"]["peak_memory_mb"]
    assert memory["reference_value"] > 0 and memory["candidate_value"] > 0
    assert outcome.check("memory")["observed"] == memory["candidate_value"]
    # concurrency: [] skips the load test.
    assert report["profile"]["target"]["concurrency"] == []
    assert all(m["concurrency"] == [] for m in profile.values())
    assert not any(m["metric"].startswith("concurrent_") for m in report["metrics"])


def test_no_profile_skips_the_performance_section(ws: Workspace) -> None:
    perf = {**FAST, "budgets": [{"id": "tiny", "metric": "model_size_mb", "max": 0.000001}]}
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)), "--no-profile")
    assert outcome.code == ExitCode.OK, outcome.err
    report = outcome.report
    assert "profile" not in report
    assert [c["id"] for c in report["checks"]] == ["accuracy", "nonfinite-outputs"]
    assert not any(m["metric"] == "model_size_mb" for m in report["metrics"])


# -- targets -------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [17, 21])
def test_mobile_target_accepts_a_model_exported_at_a_recent_opset(
    ws: Workspace, opset: int
) -> None:
    # The issue: a hand-written list stopped at opset 15 and failed every operator of an
    # opset-17 model ('ai.onnx:Gemm (opset 17; supported at opsets 12, 13, 14, 15)').
    write_classifier(ws.root / "cand.onnx", ws.w_cand, opset=opset)
    perf = {**FAST, "target": "mobile"}
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.OK, outcome.err
    check = outcome.check("target-mobile-unsupported-ops")
    assert (check["verdict"], check["observed"]) == ("pass", 0.0)
    profile = outcome.report["profile"]
    assert profile["target"]["name"] == "mobile" and profile["target"]["threads"] == 1
    assert profile["models"]["ref"]["unsupported_ops"] == []
    assert profile["models"]["cand"]["unsupported_ops"] == []
    # Per execution provider: the CPU EP runs both nodes; NNAPI and CoreML would leave them
    # to the CPU because the batch axis is dynamic (informational: no budget names them).
    providers = profile["models"]["cand"]["execution_providers"]
    assert [ep["key"] for ep in providers] == [
        "cpu", "nnapi", "coreml_neuralnetwork", "coreml_mlprogram",
    ]  # fmt: skip
    assert providers[0]["nodes"] == 2 and providers[0]["unsupported"] == []
    nnapi = providers[1]
    assert [(n["node"], n["reasons"]) for n in nnapi["unsupported"]] == [
        ("<Gemm #0>", ["dynamic_shape"]),
        ("<Softmax #1>", ["dynamic_shape"]),
    ]
    markdown = (outcome.report_dir / "report.md").read_text("utf-8")
    assert "cand: NNAPI: 2 of 2 nodes fall back to CPU (dynamic shape: 2)" in markdown


def test_mobile_target_with_fixed_shapes_keeps_nnapi(ws: Workspace) -> None:
    import onnx

    path = write_classifier(ws.root / "cand.onnx", ws.w_cand, opset=17)
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # batch 1, as the target profiles
    onnx.save(model, str(path))
    spec = ws.spec({**FAST, "target": "mobile"}, batch_size=1)
    outcome = validate(write_spec(ws.root / "spec.yaml", spec))
    assert outcome.code == ExitCode.OK, outcome.err
    providers = outcome.report["profile"]["models"]["cand"]["execution_providers"]
    nnapi = next(ep for ep in providers if ep["key"] == "nnapi")
    assert (nnapi["supported_nodes"], nnapi["partitions"], nnapi["recommendation"]) == (2, 1, "yes")
    assert "ai.onnx:Gemm: If input B is not constant, transB should be 1." in nnapi["caveats"]


def test_user_target_with_an_operator_file_next_to_the_spec(
    ws: Workspace, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spec lives in a sub-directory and the command runs elsewhere: the operator file's
    # relative path must be resolved against the spec's directory.
    suite = ws.root / "suite"
    (suite / "ops").mkdir(parents=True)
    (suite / "ops" / "pi.config").write_text("# Raspberry Pi build\nai.onnx;13;Gemm\n")
    spec = ws.spec(
        {
            **FAST,
            "target": "pi",
            "targets": {
                "pi": {
                    "threads": 1,
                    "batch_sizes": [1, 4],
                    "concurrency": [1],
                    "operators": "ops/pi.config",
                    "budgets": [{"id": "ops", "metric": "unsupported_op_count", "max": 0}],
                }
            },
            "batch_sizes": [1],
        },
        reference={"name": "ref", "path": "../ref.onnx"},
        candidates=[{"name": "cand", "path": "../cand.onnx"}],
        data={"path": "../data.parquet", "labels": "y", "segments": ["region"]},
    )
    spec_path = write_spec(suite / "spec.yaml", spec)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    outcome = validate(spec_path)
    assert outcome.code == ExitCode.CHECKS_FAILED, outcome.err
    check = outcome.check("target-pi-ops")
    assert (check["verdict"], check["observed"]) == ("fail", 1.0)
    profile = outcome.report["profile"]
    # The spec's batch_sizes override the target's; the rest comes from the target.
    assert profile["target"] == {
        "name": "pi",
        "threads": 1,
        "batch_sizes": [1],
        "concurrency": [1],
    }
    config = suite / "ops" / "pi.config"
    assert profile["models"]["cand"]["unsupported_ops"] == [
        f"ai.onnx:Softmax (opset 13) at node '<Softmax #1>': not in {config}"
    ]
    cpu = profile["models"]["cand"]["execution_providers"][0]
    assert (cpu["provider"], cpu["source"]) == ("CPU", f"operator set {config}")


# -- spec errors: exit 4, one message naming the field ----------------------------------------
@pytest.mark.parametrize(
    ("budget", "needles"),
    [
        (
            {"id": "p95", "metric": "latency_p95_ms[batch=8]", "max": 5},
            ["performance.budgets[1].metric", "'latency_p95_ms[batch=8]'", "batch sizes [1]"],
        ),
        (
            {"id": "load", "metric": "concurrent_latency_p95_ms[clients=4]", "max": 5},
            ["performance.budgets[1].metric", "clients 4", "concurrency levels [1]"],
        ),
        (
            {"id": "ops", "metric": "unsupported_op_count", "max": 0},
            ["performance.budgets[1].metric", "needs an operator set"],
        ),
    ],
)
def test_budget_outside_what_is_profiled_is_a_spec_error(
    ws: Workspace, budget: dict[str, Any], needles: list[str]
) -> None:
    budgets = [{"id": "size", "metric": "model_size_mb", "max": 1.0}, budget]
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec({**FAST, "budgets": budgets})))
    assert outcome.code == ExitCode.USAGE_ERROR
    line = one_message(outcome.err)
    for needle in needles:
        assert needle in line
    assert not outcome.report_dir.exists()


def test_resolve_settings_names_the_budget_field() -> None:
    spec = PerformanceSpec(
        batch_sizes=[1, 4],
        budgets=[{"id": "p99", "metric": "latency_p99_ms[batch=32]", "max": 1.0}],  # type: ignore[list-item]
    )
    with pytest.raises(
        SpecValidationError, match=r"refers to batch 32, which is not profiled"
    ) as info:
        resolve_settings(spec)
    assert info.value.path == "performance.budgets[0].metric"


@pytest.mark.parametrize(
    ("targets", "known"),
    [
        ({}, "cloud, cloud-gpu, edge, mobile"),
        ({"phone": {"threads": 1}}, "cloud, cloud-gpu, edge, mobile, phone"),
    ],
)
def test_unknown_target_lists_the_known_targets(
    ws: Workspace, targets: dict[str, Any], known: str
) -> None:
    perf = {**FAST, "target": "mars", "targets": targets}
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.USAGE_ERROR
    message = outcome.err.strip()
    assert message.startswith("compval: error: ")
    assert "performance: target: unknown target; got 'mars'" in message
    assert f"expected one of {known}." in message
    assert not outcome.report_dir.exists()


def test_budget_id_colliding_with_the_target_budget_is_a_spec_error(ws: Workspace) -> None:
    perf = {
        **FAST,
        "target": "mobile",
        "budgets": [{"id": "target-mobile-unsupported-ops", "metric": "model_size_mb", "max": 1}],
    }
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.USAGE_ERROR
    line = one_message(outcome.err)
    assert "performance.budgets[0].id: budget id is used twice" in line
    assert "'target-mobile-unsupported-ops'" in line


def test_missing_operator_file_is_a_spec_error(ws: Workspace) -> None:
    perf = {**FAST, "target": "t", "targets": {"t": {"operators": "missing.config"}}}
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec(perf)))
    assert outcome.code == ExitCode.USAGE_ERROR
    line = one_message(outcome.err)
    assert "performance.targets.t.operators" in line
    assert str(ws.root / "missing.config") in line


@pytest.mark.parametrize(
    "budgets",
    [
        [{"id": "x", "metric": "accuracy_score", "max": 1}],
        [
            {"id": "x", "metric": "model_size_mb", "max": 1},
            {"id": "x", "metric": "model_size_mb", "max": 2},
        ],
    ],
    ids=["unknown-metric", "duplicate-id"],
)
def test_bad_budget_is_a_spec_error(ws: Workspace, budgets: list[dict[str, Any]]) -> None:
    outcome = validate(write_spec(ws.root / "spec.yaml", ws.spec({**FAST, "budgets": budgets})))
    assert outcome.code == ExitCode.USAGE_ERROR
    message = one_message(outcome.err)
    assert "performance.budgets" in message
    assert "got [{" not in message  # the whole budget list is not dumped


def test_unknown_budget_metric_error_names_the_item(ws: Workspace) -> None:
    budgets = [
        {"id": "size", "metric": "model_size_mb", "max": 1},
        {"id": "acc", "metric": "accuracy_score", "max": 1},
    ]
    path = write_spec(ws.root / "spec.yaml", ws.spec({**FAST, "budgets": budgets}))
    with pytest.raises(SpecValidationError, match=r"unknown performance metric") as info:
        load_spec(path)
    assert info.value.path in ("performance.budgets[1]", "performance.budgets[1].metric")
    assert "got [{" not in str(info.value)


# -- the thread count the models are timed with ----------------------------------------------
def _record_timed_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap profile_models to record each timed ONNX session's intra-op thread setting."""
    import compval.engine._profile as engine_profile

    seen: dict[str, int] = {}
    original = engine_profile.profile_models

    def recording(reference: Any, candidates: Any, *args: Any, **kwargs: Any) -> Any:
        for adapter in [reference, *candidates.values()]:
            options = adapter.session.get_session_options()
            seen[adapter.name] = int(options.intra_op_num_threads)
            # Timed as deployed: ONNX Runtime's spinning threads (the scoring session's
            # threads sleep instead); the entry is unset, which onnxruntime reports by raising.
            with pytest.raises(Exception, match="does not have configuration"):
                options.get_session_config_entry("session.intra_op.allow_spinning")
        return original(reference, candidates, *args, **kwargs)

    monkeypatch.setattr(engine_profile, "profile_models", recording)
    return seen


def test_target_threads_replace_the_models_own_thread_setting(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _record_timed_threads(monkeypatch)
    spec = ws.spec(
        {**FAST, "threads": 1},
        reference={"name": "ref", "path": "ref.onnx", "threads": 2},
        candidates=[{"name": "cand", "path": "cand.onnx", "threads": 2}],
    )
    outcome = validate(write_spec(ws.root / "spec.yaml", spec))
    assert outcome.code == ExitCode.OK, outcome.err
    assert seen == {"ref": 1, "cand": 1}
    assert outcome.report["profile"]["target"]["threads"] == 1


def test_models_are_timed_with_one_thread_setting_when_the_target_sets_none(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _record_timed_threads(monkeypatch)
    spec = ws.spec(
        dict(FAST),
        reference={"name": "ref", "path": "ref.onnx", "threads": 1},
        candidates=[{"name": "cand", "path": "cand.onnx", "threads": 2}],
    )
    outcome = validate(write_spec(ws.root / "spec.yaml", spec))
    assert outcome.code == ExitCode.OK, outcome.err
    assert outcome.report["profile"]["target"]["threads"] is None
    assert seen["ref"] == seen["cand"], seen
