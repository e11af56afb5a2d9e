"""Regression and generic outputs of a real skl2onnx model: default checks and targets.

A scikit-learn ``MLPRegressor`` exported by skl2onnx with its default options is the reference.
Candidates: its dynamic INT8 version (``quantize_dynamic``, a good compression), the same graph
with its output multiplied by 3 (what a wrong dequantization scale gives) and the reference
itself. Without targets, ``compval compare`` used to check only the per-row cosine, which
passed the x3 output (cosine 1 on every row) and, for one value per row, saw only its sign.
Targets that are not one number per row (text, a parquet list column) gave a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compval.cli.main import ExitCode, main
from compval.tasks import get_task

FEATURES = [f"f{i}" for i in range(6)]


def test_default_criteria_bound_the_sqnr() -> None:
    regression = get_task("regression").default_criteria(has_labels=False)
    generic = get_task("generic").default_criteria(has_labels=False)
    assert regression == [{"id": "sqnr", "metric": "sqnr_db", "min": 20.0}]
    assert generic == [
        {"id": "cosine", "metric": "cosine_similarity", "min": 0.99},
        {"id": "sqnr", "metric": "sqnr_db", "min": 20.0},
    ]
    # Each call is a fresh list: a caller editing it changes no later default.
    regression[0]["min"] = 0.0
    assert get_task("regression").default_criteria(has_labels=False)[0]["min"] == 20.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("skl2onnx")
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    work = tmp_path_factory.mktemp("fidelity")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, len(FEATURES))).astype(np.float32)
    y = x @ rng.normal(size=len(FEATURES)) + 0.5 * np.sin(3 * x[:, 0])
    reg = MLPRegressor(hidden_layer_sizes=(64, 64), random_state=0, max_iter=300)
    reg.fit(x[:2000], y[:2000])
    ref = work / "ref.onnx"
    ref.write_bytes(to_onnx(reg, x[:1]).SerializeToString())
    int8 = work / "int8.onnx"
    quantize_dynamic(str(ref), str(int8), weight_type=QuantType.QInt8)
    # The same graph with its output times 3.
    scaled = onnx.load(str(ref))
    out = scaled.graph.output[0].name
    for node in scaled.graph.node:
        node.output[:] = ["unscaled" if o == out else o for o in node.output]
    scaled.graph.initializer.append(numpy_helper.from_array(np.array([3.0], np.float32), "k"))
    scaled.graph.node.append(helper.make_node("Mul", ["unscaled", "k"], [out]))
    x3 = work / "x3.onnx"
    onnx.save(scaled, str(x3))
    data = work / "val.parquet"
    pd.DataFrame(x[2000:], columns=FEATURES).to_parquet(data)
    return {"ref": ref, "int8": int8, "x3": x3, "data": data}


def _run_compare(models: dict[str, Path], candidate: str, task: str, out: Path, *extra: str) -> int:
    """``compval compare`` of the reference and ``candidate`` on the model's six features."""
    return main(
        [
            "compare",
            str(models["ref"]),
            str(models[candidate]),
            "--task",
            task,
            *(extra or ("--data", str(models["data"]))),
            "--features",
            ",".join(FEATURES),
            "--report-dir",
            str(out),
        ]
    )


def _compare(
    models: dict[str, Path], candidate: str, task: str, tmp_path: Path
) -> tuple[int, dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    out = tmp_path / candidate
    code = _run_compare(models, candidate, task, out)
    report = json.loads((out / "report.json").read_text())
    checks = {c["id"]: c for c in report["checks"]}
    overall = {m["metric"]: m for m in report["metrics"] if m["segment"] is None}
    return code, checks, overall


def _sqnr(models: dict[str, Path], candidate: str) -> float:
    """10 log10(sum ref^2 / sum (ref - cand)^2), computed here with onnxruntime at batch 256."""
    import onnxruntime as ort

    x = pd.read_parquet(models["data"])[FEATURES].to_numpy(np.float32)
    outs = []
    for name in ("ref", candidate):
        session = ort.InferenceSession(str(models[name]), providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0].name
        rows = [session.run(None, {feed: x[lo : lo + 256]})[0] for lo in range(0, len(x), 256)]
        outs.append(np.concatenate(rows).astype(np.float64).reshape(len(x), -1))
    ref, cand = outs
    return float(10 * np.log10((ref**2).sum() / ((ref - cand) ** 2).sum()))


@pytest.mark.parametrize("task", ["regression", "generic"])
def test_an_output_scaled_by_three_fails(
    models: dict[str, Path], task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks, overall = _compare(models, "x3", task, tmp_path)
    assert code == ExitCode.CHECKS_FAILED
    assert checks["sqnr"]["verdict"] == "fail"
    assert overall["sqnr_db"]["candidate_value"] == pytest.approx(-20 * math.log10(2), abs=1e-4)
    if task == "generic":
        # What the cosine alone said about the same candidate.
        assert checks["cosine"]["verdict"] == "pass"


def test_the_int8_model_passes_with_the_sqnr_of_an_independent_computation(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks, overall = _compare(models, "int8", "regression", tmp_path)
    assert code == ExitCode.OK, checks
    assert checks["sqnr"]["verdict"] == "pass"
    expected = _sqnr(models, "int8")
    assert expected > 20
    assert overall["sqnr_db"]["candidate_value"] == pytest.approx(expected, rel=1e-6)
    low, high = overall["sqnr_db"]["ci_low"], overall["sqnr_db"]["ci_high"]
    assert isinstance(low, float) and isinstance(high, float) and low < expected < high


def test_identical_outputs_pass_with_an_exact_infinite_sqnr(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks, _ = _compare(models, "ref", "regression", tmp_path)
    assert code == ExitCode.OK, checks
    # No error on any row: SQNR is +inf in every replicate, an exact value, not an unknown one.
    assert checks["sqnr"]["verdict"] == "pass"


def _with_targets(models: dict[str, Path], path: Path, targets: list[object]) -> Path:
    frame = pd.read_parquet(models["data"])
    frame["y"] = targets
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("name", "bad", "expected"),
    [
        ("text.csv", "abc", "got 'abc' (str)"),
        ("lists.parquet", [0.5, 1.5], "got a list of 2 values per row ([0.5, 1.5])"),
    ],
)
def test_targets_that_are_not_one_number_per_row_are_a_data_error(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    bad: object,
    expected: str,
) -> None:
    n = len(pd.read_parquet(models["data"]))
    # Text: numbers everywhere but one row (the CSV's numbers read as text once 'abc' is
    # there). Lists: every row holds one (a parquet list column).
    targets: list[object] = [bad if isinstance(bad, list) else 0.1] * n
    targets[n // 2] = bad
    data = _with_targets(models, tmp_path / name, targets)
    code = _run_compare(
        models, "int8", "regression", tmp_path / "out", "--data", str(data), "--labels", "y"
    )
    err = capsys.readouterr().err
    assert code == ExitCode.RUN_ERROR
    assert "data.labels: regression targets must be one number per row" in err
    assert expected in err
    assert "Traceback" not in err


def test_numeric_text_targets_read_as_numbers(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.metrics import mean_absolute_error

    frame = pd.read_parquet(models["data"])
    y = np.round(frame["f0"].to_numpy(np.float64) * 2, 3)
    data = _with_targets(models, tmp_path / "text_numbers.parquet", [f"{v:.3f}" for v in y])
    out = tmp_path / "out"
    code = _run_compare(
        models, "int8", "regression", out, "--data", str(data), "--labels", "y", "--replicates", "0"
    )
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    report = json.loads((out / "report.json").read_text())
    mae = next(
        m
        for m in report["metrics"]
        if m["metric"] == "mean_absolute_error" and m["segment"] is None
    )
    import onnxruntime as ort

    session = ort.InferenceSession(str(models["ref"]), providers=["CPUExecutionProvider"])
    x = frame[FEATURES].to_numpy(np.float32)
    pred = session.run(None, {session.get_inputs()[0].name: x})[0].reshape(-1)
    assert mae["reference_value"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-6)
