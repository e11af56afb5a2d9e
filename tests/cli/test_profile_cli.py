"""End-to-end tests of ``compval profile``, run in-process on tiny real ONNX models.

The models are ``Gemm + Softmax`` graphs on 4 features written with ``onnx.helper``, so their
size on disk, parameter count, weight sparsity and operator list are known exactly; those, the
report's structure and its bookkeeping are what is asserted. Timings are never asserted: the
machine is shared and noisy.
"""

from __future__ import annotations

import io
import json
import math
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pytest

from compval.cli.main import ExitCode, main

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
N_FEATURES = 4
N_CLASSES = 3
_MIB = 1024 * 1024

PERF_METRICS_BATCH1_CLIENTS1 = [
    "latency_p50_ms[batch=1]",
    "latency_p90_ms[batch=1]",
    "latency_p95_ms[batch=1]",
    "latency_p99_ms[batch=1]",
    "latency_mean_ms[batch=1]",
    "throughput_sps[batch=1]",
    "speedup[batch=1]",
    "model_size_mb",
    "parameter_count",
    "weight_sparsity",
    "load_time_ms",
    "peak_memory_mb",
    "concurrent_throughput_sps[clients=1]",
    "concurrent_latency_p95_ms[clients=1]",
]


# -- builders ------------------------------------------------------------------------------
def dense_weights(seed: int = 0) -> np.ndarray:
    """(4, 3) float32 weights, every entry at least 0.5 away from zero."""
    rng = np.random.default_rng(seed)
    magnitude = 0.5 + rng.random((N_FEATURES, N_CLASSES))
    sign = np.where(rng.random((N_FEATURES, N_CLASSES)) < 0.5, -1.0, 1.0)
    return (magnitude * sign).astype(np.float32)


def half_pruned(w: np.ndarray, seed: int = 1) -> np.ndarray:
    """``w`` with exactly half of its entries set to 0.0 (still stored dense)."""
    out: np.ndarray = w.copy()
    rows = np.random.default_rng(seed).choice(out.size, size=out.size // 2, replace=False)
    out.flat[rows] = 0.0
    return out


def write_classifier(
    path: Path, w: np.ndarray, *, opset: int = 13, extra_op: str | None = None
) -> Path:
    """``softmax([extra_op](x @ w + b))`` as ONNX, input ``x`` float32[N, 4], output ``probs``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["logits"])]
    last = "logits"
    if extra_op is not None:
        nodes.append(helper.make_node(extra_op, [last], ["mid"]))
        last = "mid"
    nodes.append(helper.make_node("Softmax", [last], ["probs"], axis=-1))
    graph = helper.make_graph(
        nodes,
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
class Outcome:
    """One ``compval`` invocation: exit code, captured output and the report directory."""

    code: ExitCode
    out: str
    err: str
    report_dir: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / "report.json").read_text("utf-8"))
        return data


def run_cli(*argv: object, report_dir: Path) -> Outcome:
    """Run ``compval ARGV --report-dir report_dir`` in-process, capturing stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*(str(a) for a in argv), "--report-dir", str(report_dir)])
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return Outcome(code, out.getvalue(), err.getvalue(), report_dir)


def metric_of(report: dict[str, Any], name: str, candidate: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [m for m in report["metrics"] if m["metric"] == name and m["candidate"] == candidate]
    return found


def one_message(err: str) -> str:
    """The single ``compval: error:`` message a user error prints (never a traceback).

    The message may continue on indented lines (one line per invalid flag).
    """
    text = err.strip()
    assert text.startswith("compval: error: "), err
    assert text.count("compval: error:") == 1, err
    assert all(line.startswith("  ") for line in text.splitlines()[1:]), err
    return " ".join(text.split())


# -- the default target: reference vs a 50%-pruned candidate --------------------------------
@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, dict[str, Any]]:
    """``compval profile dense.onnx sparse.onnx --batch-sizes 1 --concurrency 1`` (one run)."""
    work = tmp_path_factory.mktemp("profile")
    w = dense_weights()
    w_sparse = half_pruned(w)
    write_classifier(work / "dense.onnx", w)
    write_classifier(work / "sparse.onnx", w_sparse)
    outcome = run_cli(
        "profile",
        work / "dense.onnx",
        work / "sparse.onnx",
        "--batch-sizes",
        "1",
        "--concurrency",
        "1",
        report_dir=work / "report",
    )
    facts = {
        "work": work,
        "ref_sparsity": float(np.mean(w == 0)),
        "cand_sparsity": float(np.mean(w_sparse == 0)),
    }
    return outcome, facts


def test_profile_passes_and_writes_every_report(pruned_run: tuple[Outcome, dict[str, Any]]) -> None:
    outcome, _ = pruned_run
    assert outcome.code == ExitCode.OK, outcome.err
    assert {p.name for p in outcome.report_dir.iterdir()} >= {
        "report.json",
        "report.md",
        "junit.xml",
    }
    report = outcome.report
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text("utf-8")))
    assert report["passed"] is True
    assert report["candidates"] == [{"name": "sparse", "passed": True}]
    assert report["checks"] == []
    assert report["run"]["task"] == "profile"
    assert report["run"]["spec_hash"] is None and report["run"]["spec_path"] is None
    assert report["run"]["data_hash"] == "synthetic"
    assert report["run"]["data_rows"] == 1
    assert set(report["run"]["models"]) == {"dense", "sparse"}
    assert any("No budgets" in note for note in report["run"]["notes"])
    assert outcome.out.strip().splitlines()[-1] == "compval: PASSED (1 candidate(s), 0 checks)"


def test_profile_section_has_the_documented_structure(
    pruned_run: tuple[Outcome, dict[str, Any]],
) -> None:
    profile = pruned_run[0].report["profile"]
    assert profile["target"] == {
        "name": "default",
        "threads": None,
        "batch_sizes": [1],
        "concurrency": [1],
    }
    # The command has no timing flags: PerformanceSpec's defaults apply.
    assert profile["settings"] == {"warmup": 5, "min_iterations": 30, "min_duration_s": 0.5}
    assert list(profile["models"]) == ["dense", "sparse"]
    for name, role in (("dense", "reference"), ("sparse", "candidate")):
        model = profile["models"][name]
        assert model["role"] == role
        assert model["unsupported_ops"] is None  # the default target has no operator set
        assert model["peak_memory_mb"] is not None and model["peak_memory_mb"] > 0
        (latency,) = model["latency"]
        assert latency["batch_size"] == 1
        assert latency["iterations"] >= 30
        quantiles = [latency[k] for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")]
        assert quantiles == sorted(quantiles) and quantiles[0] > 0
        assert math.isclose(latency["cv"], latency["std_ms"] / latency["mean_ms"], rel_tol=1e-9)
        assert math.isclose(latency["throughput_sps"], 1000.0 / latency["mean_ms"], rel_tol=1e-6)
        (load,) = model["concurrency"]
        assert (load["clients"], load["batch_size"], load["errors"]) == (1, 1, 0)
        assert load["requests"] > 0
        assert load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"]
    (speedup,) = profile["speedup"]
    assert (speedup["candidate"], speedup["batch_size"]) == ("sparse", 1)
    assert speedup["rounds"] == 10 and speedup["confidence"] == 0.95
    assert 0 < speedup["ci_low"] <= speedup["ratio"] <= speedup["ci_high"]


def test_profile_metrics_are_named_as_the_vocabulary_and_match_the_profile(
    pruned_run: tuple[Outcome, dict[str, Any]],
) -> None:
    report = pruned_run[0].report
    assert [m["metric"] for m in report["metrics"]] == PERF_METRICS_BATCH1_CLIENTS1
    assert {m["candidate"] for m in report["metrics"]} == {"sparse"}
    assert {m["segment"] for m in report["metrics"]} == {None}
    models = report["profile"]["models"]
    p95 = metric_of(report, "latency_p95_ms[batch=1]", "sparse")
    assert p95["reference_value"] == models["dense"]["latency"][0]["p95_ms"]
    assert p95["candidate_value"] == models["sparse"]["latency"][0]["p95_ms"]
    assert p95["delta"] == pytest.approx(p95["candidate_value"] - p95["reference_value"])
    assert p95["n"] == models["sparse"]["latency"][0]["iterations"]
    assert p95["higher_is_better"] is False
    (speedup_entry,) = report["profile"]["speedup"]
    speedup = metric_of(report, "speedup[batch=1]", "sparse")
    assert speedup["candidate_value"] == speedup_entry["ratio"]
    assert (speedup["ci_low"], speedup["ci_high"]) == (
        speedup_entry["ci_low"],
        speedup_entry["ci_high"],
    )
    assert speedup["reference_value"] is None and speedup["higher_is_better"] is True
    assert speedup["ci_method"] == "paired_t_log_ratio" and speedup["n"] == 10
    throughput = metric_of(report, "concurrent_throughput_sps[clients=1]", "sparse")
    load = models["sparse"]["concurrency"][0]
    assert throughput["candidate_value"] == load["throughput_sps"]
    assert throughput["n"] == load["requests"] - load["errors"]
    assert throughput["higher_is_better"] is True


def test_pruned_candidate_reports_its_sparsity_and_the_same_size(
    pruned_run: tuple[Outcome, dict[str, Any]],
) -> None:
    outcome, facts = pruned_run
    report, work = outcome.report, facts["work"]
    assert (facts["ref_sparsity"], facts["cand_sparsity"]) == (0.0, 0.5)

    sparsity = metric_of(report, "weight_sparsity", "sparse")
    assert sparsity["reference_value"] == facts["ref_sparsity"]
    assert sparsity["candidate_value"] == facts["cand_sparsity"]
    assert report["profile"]["models"]["sparse"]["weight_sparsity"] == 0.5

    size = metric_of(report, "model_size_mb", "sparse")
    assert size["reference_value"] == (work / "dense.onnx").stat().st_size / _MIB
    assert size["candidate_value"] == (work / "sparse.onnx").stat().st_size / _MIB
    # Zeros stored dense take as many bytes as any other float.
    assert abs(size["delta"]) * _MIB <= 8

    params = metric_of(report, "parameter_count", "sparse")
    expected = N_FEATURES * N_CLASSES + N_CLASSES  # W and B
    assert (params["reference_value"], params["candidate_value"]) == (expected, expected)


# -- the mobile target: onnxruntime's own CPU kernels, then NNAPI/CoreML fallback ----------
@pytest.fixture(scope="module")
def mobile_run(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """``--target mobile`` with a candidate using Softsign (a CPU kernel; not in NNAPI's table)."""
    work = tmp_path_factory.mktemp("mobile")
    w = dense_weights()
    write_classifier(work / "plain.onnx", w)
    write_classifier(work / "softsign.onnx", w, extra_op="Softsign", opset=17)
    rows = np.random.default_rng(7).normal(size=(5, N_FEATURES)).astype(np.float32)
    np.savez(work / "rows.npz", x=rows)
    return run_cli(
        "profile",
        work / "plain.onnx",
        work / "softsign.onnx",
        "--target",
        "mobile",
        "--batch-sizes",
        "1",
        "--concurrency",
        "1",
        "--data",
        work / "rows.npz",
        report_dir=work / "report",
    )


def test_mobile_target_passes_the_builtin_unsupported_ops_budget(mobile_run: Outcome) -> None:
    # ort_mobile is the installed onnxruntime's CPU kernel registry: Softsign at opset 17 runs.
    assert mobile_run.code == ExitCode.OK, mobile_run.err
    report = mobile_run.report
    (check,) = report["checks"]
    assert check["id"] == "target-mobile-unsupported-ops"
    assert (check["candidate"], check["metric"]) == ("softsign", "unsupported_op_count")
    assert (check["verdict"], check["observed"], check["threshold"]) == ("pass", 0.0, 0.0)
    count = metric_of(report, "unsupported_op_count", "softsign")
    assert count["candidate_value"] == 0.0 and count["reference_value"] is None
    profile = report["profile"]
    assert profile["target"] == {
        "name": "mobile",
        "threads": 1,
        "batch_sizes": [1],
        "concurrency": [1],
    }
    assert profile["models"]["plain"]["unsupported_ops"] == []
    assert profile["models"]["softsign"]["unsupported_ops"] == []
    suite = ET.parse(mobile_run.report_dir / "junit.xml").getroot()
    (case,) = suite.iter("testcase")
    assert case.get("name") == "target-mobile-unsupported-ops[softsign][overall]"
    assert case.find("failure") is None


def test_mobile_target_names_nodes_nnapi_would_leave_to_the_cpu(mobile_run: Outcome) -> None:
    providers = mobile_run.report["profile"]["models"]["softsign"]["execution_providers"]
    assert [ep["key"] for ep in providers] == [
        "cpu",
        "nnapi",
        "coreml_neuralnetwork",
        "coreml_mlprogram",
    ]
    nnapi = providers[1]
    softsign = next(n for n in nnapi["unsupported"] if n["op"] == "ai.onnx:Softsign")
    assert softsign["reasons"] == ["op_type", "dynamic_shape"]
    # Named where a reader looks: the console and report.md.
    named = "softsign: NNAPI: 3 of 3 nodes fall back to CPU (dynamic shape: 3, op type: 1)"
    assert named in " ".join(mobile_run.out.split())
    assert named in (mobile_run.report_dir / "report.md").read_text("utf-8")


def test_profile_data_flag_times_rows_from_the_file(mobile_run: Outcome) -> None:
    run = mobile_run.report["run"]
    # Only the largest batch size's rows are cut from the file.
    assert run["data_rows"] == 1
    assert run["data_hash"] != "synthetic"


def test_profile_data_hash_is_the_content_fingerprint(mobile_run: Outcome) -> None:
    from compval.data import load_dataset
    from compval.spec import DataRef

    path = mobile_run.report_dir.parent / "rows.npz"
    expected = load_dataset(DataRef(path=str(path)), base_dir=path.parent).fingerprint()
    assert mobile_run.report["run"]["data_hash"] == expected


# -- user errors: one message, no traceback, the right exit code ------------------------------
@pytest.fixture
def two_models(tmp_path: Path) -> tuple[Path, Path]:
    w = dense_weights()
    return (
        write_classifier(tmp_path / "ref.onnx", w),
        write_classifier(tmp_path / "cand.onnx", half_pruned(w)),
    )


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--batch-sizes", "0"], "argument --batch-sizes: expected positive integers; got '0'"),
        (
            ["--batch-sizes", "a,b"],
            "argument --batch-sizes: expected comma-separated integers like 1,8,32; got 'a,b'",
        ),
        (["--batch-sizes", ","], "argument --batch-sizes: expected positive integers; got ','"),
        (["--concurrency", "0"], "argument --concurrency: expected positive integers; got '0'"),
        (["--target", "mars"], "got 'mars', expected one of cloud, cloud-gpu, edge, mobile"),
        (["--batch-sizes", "1,1"], "--batch-sizes"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_flags_exit_4_with_one_message(
    two_models: tuple[Path, Path], tmp_path: Path, flags: list[str], needle: str
) -> None:
    ref, cand = two_models
    outcome = run_cli("profile", ref, cand, *flags, report_dir=tmp_path / "report")
    assert outcome.code == ExitCode.USAGE_ERROR
    assert needle in one_message(outcome.err)
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("flags", "name"),
    [(["--target", "mars"], "target"), (["--batch-sizes", "1,1"], "batch-sizes"),
     (["--threads", "0"], "threads")],
)  # fmt: skip
def test_flag_errors_from_the_performance_model_read_like_compval_messages(
    two_models: tuple[Path, Path], tmp_path: Path, flags: list[str], name: str
) -> None:
    ref, cand = two_models
    outcome = run_cli("profile", ref, cand, *flags, report_dir=tmp_path / "report")
    message = one_message(outcome.err)
    assert "Value error" not in message and "--flags" not in message
    assert name in message and "got " in message


def test_missing_candidate_argument_is_a_usage_error(
    two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    outcome = run_cli("profile", two_models[0], report_dir=tmp_path / "report")
    assert outcome.code == ExitCode.USAGE_ERROR
    assert "the following arguments are required: candidate" in one_message(outcome.err)


@pytest.mark.parametrize("which", ["reference", "candidate"])
def test_missing_model_file_exits_5(
    two_models: tuple[Path, Path], tmp_path: Path, which: str
) -> None:
    ref, cand = two_models
    missing = tmp_path / "nope.onnx"
    models = (missing, cand) if which == "reference" else (ref, missing)
    outcome = run_cli("profile", *models, "--batch-sizes", "1", report_dir=tmp_path / "report")
    assert outcome.code == ExitCode.RUN_ERROR
    line = one_message(outcome.err)
    assert str(missing) in line and "file not found" in line
    assert not (tmp_path / "report").exists()


def test_corrupt_model_file_exits_5(two_models: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    outcome = run_cli("profile", two_models[0], bad, report_dir=tmp_path / "report")
    assert outcome.code == ExitCode.RUN_ERROR
    assert str(bad) in one_message(outcome.err)


def test_bad_format_is_rejected_before_any_model_is_opened(tmp_path: Path) -> None:
    outcome = run_cli(
        "profile",
        tmp_path / "missing_ref.onnx",
        tmp_path / "missing_cand.onnx",
        "--format",
        "xml",
        report_dir=tmp_path / "report",
    )
    assert outcome.code == ExitCode.USAGE_ERROR
    assert "xml" in one_message(outcome.err)
