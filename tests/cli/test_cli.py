"""End-to-end tests of the ``compval`` command, run in-process on tiny real ONNX models.

Every model's prediction on every row is planned by ``cli_builders.Plan``, so the reported
metrics are checked against scikit-learn on the planned predictions, and verdicts are checked
exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from cli_builders import (
    SCHEMA_PATH,
    Plan,
    base_spec,
    checks_by,
    metric,
    read_report,
    reference_weights,
    write_classifier,
    write_models,
    write_regressor,
    write_yaml,
)
from scipy import stats as sstats
from sklearn.metrics import accuracy_score, mean_absolute_error, recall_score

from compval.checks import resolve_criteria
from compval.cli.main import ExitCode, main
from compval.spec import STARTER_SPEC, load_spec, spec_from_mapping

Run = Callable[..., tuple[ExitCode, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``compval ARGS`` in-process; return (exit code, stdout, stderr)."""

    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    return run


@pytest.fixture
def work(tmp_path: Path) -> Path:
    write_models(tmp_path)
    return tmp_path


def _write_data(work: Path, plan: Plan) -> Path:
    path = work / "data.parquet"
    plan.frame().to_parquet(path)
    return path


SEGMENT_CRITERIA = [
    {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.02},
    {"id": "accuracy-per-segment", "metric": "accuracy_score", "max_drop": 0.05, "segment": "*"},
    {"id": "agreement", "metric": "top1_agreement", "min": 0.9},
]


# -- validate: happy path and the report contract -------------------------------------------
def test_validate_yaml_identical_candidate_passes_and_writes_the_contract(
    work: Path, cli: Run
) -> None:
    plan = Plan(600, seed=1)
    _write_data(work, plan)
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            candidates=[{"name": "cand", "path": "same.onnx"}],
            statistics={"replicates": 200},
            criteria=SEGMENT_CRITERIA,
        ),
    )
    out_dir = work / "out"

    code, out, _ = cli("validate", spec, "--report-dir", out_dir)

    assert code == ExitCode.OK
    assert "PASSED" in out
    assert {p.name for p in out_dir.iterdir()} == {
        "report.json",
        "report.md",
        "junit.xml",
        "report.html",
    }
    report = read_report(out_dir)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(report)
    assert report["schema_version"] == 1
    assert report["passed"] is True
    assert report["candidates"] == [{"name": "cand", "passed": True}]
    run = report["run"]
    assert run["data_rows"] == 600
    assert run["task"] == "classification"
    assert run["batch_size"] == 256
    assert run["seed"] == 0
    assert run["spec_hash"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert run["spec_path"] == str(spec.resolve())
    assert run["segment_columns"] == ["region"]
    assert {name: m["role"] for name, m in run["models"].items()} == {
        "ref": "reference",
        "cand": "candidate",
    }
    assert run["models"]["cand"]["runtime"] == "onnxruntime"
    assert run["models"]["cand"]["output_kind"] == "probabilities"

    expected = accuracy_score(plan.y, plan.ref_pred)
    acc = metric(report, "accuracy_score")
    assert acc["reference_value"] == pytest.approx(expected, abs=1e-12)
    assert acc["candidate_value"] == pytest.approx(expected, abs=1e-12)
    assert acc["delta"] == 0.0
    # No flip is not certainty: Tango's score interval still allows about 3.8/n each way.
    assert acc["ci_low"] < 0.0 < acc["ci_high"] == pytest.approx(-acc["ci_low"])
    assert acc["ci_method"] == "tango_score"
    for region in ("north", "south"):
        rows = plan.region == region
        seg = metric(report, "accuracy_score", f"region={region}")
        assert seg["n"] == rows.sum()
        assert seg["candidate_value"] == pytest.approx(
            accuracy_score(plan.y[rows], plan.ref_pred[rows])
        )

    assert all(c["verdict"] == "pass" for c in report["checks"])
    overall = checks_by(report, "accuracy")[None]
    assert overall["criterion"] == {
        "metric": "accuracy_score",
        "compare": "delta",
        "statistic": "interval",
        "op": ">=",
        "threshold": -0.02,
        "segment": None,
        "severity": "error",
        "written_as": "max_drop: 0.02",
    }
    assert overall["name"] == "accuracy[cand][overall]"
    per_segment = checks_by(report, "accuracy-per-segment")
    assert set(per_segment) == {
        None,
        "label=0",
        "label=1",
        "label=2",
        "region=north",
        "region=south",
    }
    assert "nonfinite-outputs" in {c["id"] for c in report["checks"]}

    junit = ET.parse(out_dir / "junit.xml").getroot()
    assert int(junit.get("tests", "-1")) == len(report["checks"])
    assert int(junit.get("failures", "-1")) == 0
    names = {case.get("name") for case in junit.iter("testcase")}
    assert names == {c["name"] for c in report["checks"]}
    assert "PASSED" in (out_dir / "report.md").read_text()


TOML_SPEC = """\
version = 1
batch_size = 64

[reference]
name = "ref"
path = "ref.onnx"

[[candidates]]
name = "cand"
path = "same.onnx"

[data]
path = "data.parquet"
labels = "y"
segments = ["region"]

[statistics]
replicates = 200

[[criteria]]
id = "accuracy"
metric = "accuracy_score"
max_drop = 0.02

[[criteria]]
id = "accuracy-per-segment"
metric = "accuracy_score"
max_drop = 0.05
segment = "*"
"""


def test_validate_toml_spec_gives_the_same_report_as_yaml(work: Path, cli: Run) -> None:
    _write_data(work, Plan(400, seed=2))
    toml_path = work / "spec.toml"
    toml_path.write_text(TOML_SPEC)
    yaml_path = write_yaml(
        work / "spec.yaml",
        base_spec(
            candidates=[{"name": "cand", "path": "same.onnx"}],
            statistics={"replicates": 200},
            batch_size=64,
            criteria=SEGMENT_CRITERIA[:2],
        ),
    )
    assert load_spec(toml_path).spec == load_spec(yaml_path).spec

    code_toml, _, _ = cli("validate", toml_path, "--report-dir", work / "t", "--quiet")
    code_yaml, _, _ = cli("validate", yaml_path, "--report-dir", work / "y", "--quiet")

    assert code_toml == code_yaml == ExitCode.OK
    from_toml, from_yaml = read_report(work / "t"), read_report(work / "y")
    assert from_toml["metrics"] == from_yaml["metrics"]
    assert from_toml["checks"] == from_yaml["checks"]
    assert from_toml["run"]["spec_hash"] == hashlib.sha256(toml_path.read_bytes()).hexdigest()


def test_validate_regressed_candidate_exits_1_with_failures_in_junit(work: Path, cli: Run) -> None:
    plan = Plan(600, seed=3)
    plan.correct_to_wrong(60)
    _write_data(work, plan)
    spec = write_yaml(work / "spec.yaml", base_spec(criteria=SEGMENT_CRITERIA))

    code, out, _ = cli("validate", spec, "--report-dir", work / "out")

    assert code == ExitCode.CHECKS_FAILED
    assert "FAILED" in out
    report = read_report(work / "out")
    assert report["passed"] is False
    assert report["candidates"] == [{"name": "cand", "passed": False}]
    acc = metric(report, "accuracy_score")
    assert acc["reference_value"] == pytest.approx(accuracy_score(plan.y, plan.ref_pred))
    assert acc["candidate_value"] == pytest.approx(accuracy_score(plan.y, plan.cand_pred))
    assert acc["delta"] == pytest.approx(-0.1)
    assert metric(report, "top1_agreement")["candidate_value"] == pytest.approx(0.9)
    assert checks_by(report, "accuracy")[None]["verdict"] == "fail"
    assert checks_by(report, "agreement")[None]["verdict"] == "pass"
    failed = [c for c in report["checks"] if c["verdict"] != "pass"]
    assert failed and all(c["verdict"] == "fail" for c in failed)
    junit = ET.parse(work / "out" / "junit.xml").getroot()
    assert int(junit.get("tests", "-1")) == len(report["checks"])
    assert int(junit.get("failures", "-1")) == len(failed)
    assert len(list(junit.iter("failure"))) == len(failed)


def test_format_option_writes_only_the_formats_asked_for(work: Path, cli: Run) -> None:
    _write_data(work, Plan(200, seed=4))
    spec = write_yaml(work / "spec.yaml", base_spec())
    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--format", "json", "--quiet")
    assert code == ExitCode.CHECKS_FAILED or code == ExitCode.OK
    assert [p.name for p in (work / "out").iterdir()] == ["report.json"]


def test_allow_pickle_loads_a_trusted_joblib_model(work: Path, cli: Run) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    plan = Plan(300, seed=5)
    frame = plan.frame()
    frame.to_parquet(work / "data.parquet")
    features = frame[["f0", "f1", "f2", "f3"]].to_numpy()
    # Fitted on an array: a model fitted on a DataFrame warns about feature names per batch.
    model = LogisticRegression(max_iter=500).fit(features, plan.y)
    joblib.dump(model, work / "ref.joblib")
    joblib.dump(model, work / "cand.joblib")
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            reference={"name": "ref", "path": "ref.joblib"},
            candidates=[{"name": "cand", "path": "cand.joblib"}],
        ),
    )

    refused, _, err = cli("validate", spec, "--report-dir", work / "out", "--quiet")
    allowed, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet", "--allow-pickle")

    assert refused == ExitCode.USAGE_ERROR
    assert "--allow-pickle" in err
    assert allowed == ExitCode.OK
    acc = metric(read_report(work / "out"), "accuracy_score")
    assert acc["candidate_value"] == pytest.approx(accuracy_score(plan.y, model.predict(features)))


# -- the key scenario --------------------------------------------------------------
def test_recall_loss_on_one_class_fails_that_segment_while_overall_accuracy_holds(
    work: Path, cli: Run
) -> None:
    plan = Plan(6000, seed=3, ref_error_rate=0.05, label_weights=(0.45, 0.45, 0.10))
    plan.correct_to_wrong(70, label=2)
    _write_data(work, plan)
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            statistics={"replicates": 200},
            criteria=[
                {"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.02},
                {
                    "id": "accuracy-per-segment",
                    "metric": "accuracy_score",
                    "max_drop": 0.05,
                    "segment": "*",
                },
            ],
        ),
    )

    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet")

    assert code == ExitCode.CHECKS_FAILED
    report = read_report(work / "out")
    assert {s: c["verdict"] for s, c in checks_by(report, "accuracy").items()} == {None: "pass"}
    assert {s: c["verdict"] for s, c in checks_by(report, "accuracy-per-segment").items()} == {
        None: "pass",
        "label=0": "pass",
        "label=1": "pass",
        "label=2": "fail",
        "region=north": "pass",
        "region=south": "pass",
    }
    overall = metric(report, "accuracy_score")
    expected_delta = accuracy_score(plan.y, plan.cand_pred) - accuracy_score(plan.y, plan.ref_pred)
    assert overall["delta"] == pytest.approx(expected_delta)
    assert -0.02 < overall["ci_low"] < overall["delta"] < overall["ci_high"] < 0
    recall = metric(report, "recall_score[2]")
    assert recall["reference_value"] == pytest.approx(
        recall_score(plan.y, plan.ref_pred, labels=[2], average=None)[0]
    )
    assert recall["candidate_value"] == pytest.approx(
        recall_score(plan.y, plan.cand_pred, labels=[2], average=None)[0]
    )
    class2 = metric(report, "accuracy_score", "label=2")
    assert class2["delta"] == pytest.approx(recall["delta"])
    assert class2["delta"] < -0.05


# -- statistics through the CLI ------------------------------------------------------------
def _small_drop_plan() -> Plan:
    """250 rows, 3 rows lost and 2 gained: a 0.4-point accuracy drop."""
    plan = Plan(250, seed=4)
    plan.correct_to_wrong(3)
    plan.wrong_to_correct(2)
    return plan


def test_small_drop_on_small_data_is_inconclusive_with_a_sample_size(work: Path, cli: Run) -> None:
    plan = _small_drop_plan()
    _write_data(work, plan)
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            statistics={"replicates": 200},
            criteria=[{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.005}],
        ),
    )

    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet")

    assert code == ExitCode.CHECKS_FAILED
    check = checks_by(read_report(work / "out"), "accuracy")[None]
    assert check["verdict"] == "inconclusive"
    assert check["blocking"] is True
    assert check["observed"] == pytest.approx(-0.004)
    match = re.search(
        r"About ([\d,]+) rows would give a probability of 80% to pass if the candidate were "
        r"truly no worse than the reference \(have 250\)",
        check["message"],
    )
    assert match, check["message"]
    needed = int(match.group(1).replace(",", ""))
    # Independent normal-approximation estimate for a candidate truly no worse (delta 0): the
    # per-row sd of the paired difference is then sqrt(discordance rate).
    diff = (plan.cand_pred == plan.y).astype(float) - (plan.ref_pred == plan.y)
    sd = math.sqrt(float((diff != 0).mean()))
    z = sstats.norm.ppf(0.975) + sstats.norm.ppf(0.8)
    expected = (z * sd / 0.005) ** 2
    assert expected / 2 < needed < expected * 2
    assert check["details"]["rows_needed"] == needed


def test_inconclusive_warn_lets_an_inconclusive_check_pass_the_gate(work: Path, cli: Run) -> None:
    _write_data(work, _small_drop_plan())
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            statistics={"replicates": 200, "inconclusive": "warn"},
            criteria=[{"id": "accuracy", "metric": "accuracy_score", "max_drop": 0.005}],
        ),
    )

    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet")

    assert code == ExitCode.OK
    report = read_report(work / "out")
    check = checks_by(report, "accuracy")[None]
    assert check["verdict"] == "inconclusive"
    assert check["blocking"] is False
    junit = ET.parse(work / "out" / "junit.xml").getroot()
    assert int(junit.get("skipped", "-1")) == 1
    assert int(junit.get("failures", "-1")) == 0


@pytest.mark.parametrize("min_rows", [30, 5])
def test_segments_below_min_rows_are_too_small_to_decide(
    work: Path, cli: Run, min_rows: int
) -> None:
    plan = Plan(600, seed=6, regions={"north": 0.48, "south": 0.48, "island": 0.04})
    n_island = int((plan.region == "island").sum())
    assert 5 < n_island < 30
    _write_data(work, plan)
    spec = write_yaml(
        work / "spec.yaml",
        base_spec(
            candidates=[{"name": "cand", "path": "same.onnx"}],
            statistics={"replicates": 200, "min_rows": min_rows},
            criteria=[SEGMENT_CRITERIA[1]],
        ),
    )

    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet")

    # Either way the island cannot pass: an identical candidate on ~20 rows has no flip, but
    # no flip on 20 rows cannot show a drop under 5 points.
    assert code == ExitCode.CHECKS_FAILED
    island = checks_by(read_report(work / "out"), "accuracy-per-segment")["region=island"]
    assert island["verdict"] == "inconclusive"
    if min_rows == 30:
        assert f"on {n_island} rows: too small to decide (min_rows = 30)" in island["message"]
    else:
        assert "Tango score interval" in island["message"] and "straddles" in island["message"]


def test_replicates_zero_on_the_command_line_turns_intervals_off(work: Path, cli: Run) -> None:
    plan = Plan(300, seed=7)
    plan.correct_to_wrong(3)
    _write_data(work, plan)
    spec = write_yaml(
        work / "spec.yaml", base_spec(statistics={"replicates": 200}, criteria=SEGMENT_CRITERIA)
    )

    code, out, _ = cli("validate", spec, "--report-dir", work / "out", "--replicates", "0")

    assert code == ExitCode.OK
    report = read_report(work / "out")
    assert report["statistics"]["resampling"] is None
    # Nothing may look like a statistically guarded pass: every rendering says so.
    marker = "every verdict is a point comparison without statistical guarantee"
    assert any(marker in note for note in report["run"]["notes"])
    assert marker in (work / "out" / "report.md").read_text()
    assert marker in " ".join(out.split())
    assert all("no statistical guarantee" in c["message"] for c in report["checks"])
    # Discovered slices carry their own analytic (Tango) interval; every other metric has none.
    metrics = [m for m in report["metrics"] if not str(m["segment"]).startswith("slice:")]
    assert len(metrics) > 20
    assert all(m["ci_low"] is None and m["ci_high"] is None for m in metrics)
    assert all(m["ci_method"] is None for m in metrics)
    assert all(c["criterion"]["statistic"] == "point" for c in report["checks"])
    assert not any("CI [" in c["message"] for c in report["checks"])


def test_discovered_slice_intervals_are_not_labelled_as_bootstrap(work: Path, cli: Run) -> None:
    plan = Plan(300, seed=7)
    plan.correct_to_wrong(30)
    _write_data(work, plan)
    spec = write_yaml(work / "spec.yaml", base_spec(statistics={"replicates": 0}))

    cli("validate", spec, "--report-dir", work / "out", "--quiet")

    slices = [
        m for m in read_report(work / "out")["metrics"] if str(m["segment"]).startswith("slice:")
    ]
    with_ci = [m for m in slices if m["ci_low"] is not None]
    assert with_ci
    assert {m["ci_method"] for m in with_ci} == {"tango_score"}


def _run_report(work: Path, cli: Run, name: str, **overrides: Any) -> dict[str, Any]:
    spec = write_yaml(work / f"{name}.yaml", base_spec(**overrides))
    code, _, _ = cli("validate", spec, "--report-dir", work / name, "--quiet")
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    return read_report(work / name)


def _intervals(report: dict[str, Any]) -> dict[tuple[str, str | None], tuple[Any, Any]]:
    return {(m["metric"], m["segment"]): (m["ci_low"], m["ci_high"]) for m in report["metrics"]}


def test_same_inputs_and_seed_give_identical_metrics_and_checks(work: Path, cli: Run) -> None:
    plan = Plan(500, seed=8)
    plan.correct_to_wrong(15)
    plan.wrong_to_correct(5)
    _write_data(work, plan)
    settings = {"statistics": {"replicates": 200}, "criteria": SEGMENT_CRITERIA, "seed": 11}

    first = _run_report(work, cli, "first", **settings)
    second = _run_report(work, cli, "second", **settings)
    other_seed = _run_report(work, cli, "other", **{**settings, "seed": 12})

    assert first["metrics"] == second["metrics"]
    assert first["checks"] == second["checks"]
    # The seed matters: otherwise the comparison above could not fail.
    assert _intervals(first) != _intervals(other_seed)


def test_intervals_do_not_depend_on_the_batch_size(work: Path, cli: Run) -> None:
    plan = Plan(500, seed=9)
    plan.correct_to_wrong(20)
    plan.wrong_to_correct(6)
    _write_data(work, plan)
    settings = {"statistics": {"replicates": 200}, "criteria": SEGMENT_CRITERIA}

    small = _run_report(work, cli, "b16", batch_size=16, **settings)
    large = _run_report(work, cli, "b64", batch_size=64, **settings)

    table_small = [m for m in small["metrics"] if m["ci_method"] == "bayesian_table_bootstrap"]
    table_large = [m for m in large["metrics"] if m["ci_method"] == "bayesian_table_bootstrap"]
    assert len(table_small) > 20
    assert any(m["ci_low"] != m["ci_high"] for m in table_small)
    assert table_small == table_large
    assert small["checks"] == large["checks"]
    assert (small["run"]["batch_size"], large["run"]["batch_size"]) == (16, 64)


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_csv_and_npz_data_give_the_same_metrics_as_parquet(work: Path, cli: Run, fmt: str) -> None:
    plan = Plan(300, seed=16)
    plan.correct_to_wrong(10)
    _write_data(work, plan)
    if fmt == "csv":
        plan.frame().to_csv(work / "data.csv", index=False)
    else:
        np.savez(work / "data.npz", x=plan.features(), y=plan.y, region=plan.region.astype(str))
    settings = {"statistics": {"replicates": 200}, "criteria": SEGMENT_CRITERIA}
    data = {"labels": "y", "segments": ["region"]}

    parquet = _run_report(work, cli, "parquet", data={"path": "data.parquet", **data}, **settings)
    other = _run_report(work, cli, fmt, data={"path": f"data.{fmt}", **data}, **settings)

    def keyed(report: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
        # Slice names differ (npz columns have no names); everything else must agree.
        return {
            (m["metric"], m["segment"]): m
            for m in report["metrics"]
            if not str(m["segment"]).startswith("slice:")
        }

    assert keyed(parquet) == keyed(other)
    assert metric(other, "accuracy_score")["candidate_value"] == pytest.approx(
        accuracy_score(plan.y, plan.cand_pred)
    )
    assert parquet["run"]["data_hash"] != other["run"]["data_hash"]


# -- other tasks and outputs ---------------------------------------------------------------
def _regression_data(work: Path, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    w = np.array([1.5, -2.0, 0.5, 0.0], dtype=np.float32)
    target = x @ w + rng.normal(scale=0.3, size=n)
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
    frame["target"] = target
    frame.to_parquet(work / "reg.parquet")
    return x, w, target


@pytest.mark.parametrize(
    ("bias", "expected_code"), [(0.02, ExitCode.OK), (1.0, ExitCode.CHECKS_FAILED)]
)
def test_regression_model_metrics_match_scikit_learn(
    work: Path, cli: Run, bias: float, expected_code: ExitCode
) -> None:
    x, w, target = _regression_data(work)
    write_regressor(work / "reg_ref.onnx", w, 0.0)
    write_regressor(work / "reg_cand.onnx", w, bias)
    spec = write_yaml(
        work / "spec.yaml",
        {
            "version": 1,
            "task": "regression",
            "reference": {"name": "ref", "path": "reg_ref.onnx"},
            "candidates": [{"name": "cand", "path": "reg_cand.onnx"}],
            "data": {"path": "reg.parquet", "labels": "target"},
            "statistics": {"replicates": 0},
            "criteria": [
                {"id": "mae", "metric": "mean_absolute_error", "max_relative_increase": 0.1},
                {"id": "fidelity", "metric": "max_abs_diff", "max": 0.05},
            ],
        },
    )

    code, _, _ = cli("validate", spec, "--report-dir", work / "out", "--quiet")

    assert code == expected_code
    report = read_report(work / "out")
    ref_pred = x @ w
    cand_pred = ref_pred + np.float32(bias)
    mae = metric(report, "mean_absolute_error")
    assert mae["reference_value"] == pytest.approx(mean_absolute_error(target, ref_pred), rel=1e-5)
    assert mae["candidate_value"] == pytest.approx(mean_absolute_error(target, cand_pred), rel=1e-5)
    assert metric(report, "max_abs_diff")["candidate_value"] == pytest.approx(bias, rel=1e-4)
    ratio = mean_absolute_error(target, cand_pred) / mean_absolute_error(target, ref_pred)
    assert checks_by(report, "mae")[None]["observed"] == pytest.approx(ratio, rel=1e-5)


# -- compare -------------------------------------------------------------------------------
def test_compare_prints_default_criteria_and_passes_an_identical_candidate(
    work: Path, cli: Run
) -> None:
    data = _write_data(work, Plan(600, seed=12))

    code, _, err = cli(
        "compare",
        work / "ref.onnx",
        work / "same.onnx",
        "--data",
        data,
        "--labels",
        "y",
        "--segments",
        "region",
        "--replicates",
        "200",
        "--report-dir",
        work / "out",
    )

    assert code == ExitCode.OK
    assert "Default criteria" in err
    printed = yaml.safe_load(err[err.index("criteria:") :].split("\n\n")[0])
    assert printed["criteria"][0] == {
        "id": "accuracy",
        "metric": "accuracy_score",
        "max_drop": 0.01,
    }
    assert {c["id"] for c in printed["criteria"]} == {
        "accuracy",
        "accuracy-per-segment",
        "agreement",
    }
    report = read_report(work / "out")
    assert report["run"]["spec_hash"] is None
    assert report["candidates"] == [{"name": "same", "passed": True}]
    assert {c["id"] for c in report["checks"]} == {
        "accuracy",
        "accuracy-per-segment",
        "agreement",
        "nonfinite-outputs",
    }
    assert "region=north" in checks_by(report, "accuracy-per-segment")


def test_compare_fails_a_regressed_candidate(work: Path, cli: Run) -> None:
    plan = Plan(600, seed=13)
    plan.correct_to_wrong(30)
    data = _write_data(work, plan)

    code, _, _ = cli(
        "compare",
        work / "ref.onnx",
        work / "push.onnx",
        "--data",
        data,
        "--labels",
        "y",
        "--segments",
        "region",
        "--replicates",
        "0",
        "--report-dir",
        work / "out",
        "--quiet",
    )

    assert code == ExitCode.CHECKS_FAILED
    report = read_report(work / "out")
    assert checks_by(report, "accuracy")[None]["verdict"] == "fail"
    assert checks_by(report, "accuracy")[None]["observed"] == pytest.approx(-0.05)


def test_compare_names_models_after_their_files_and_keeps_names_unique(
    work: Path, cli: Run
) -> None:
    data = _write_data(work, Plan(200, seed=14))
    code, _, _ = cli(
        "compare",
        work / "ref.onnx",
        work / "ref.onnx",
        "--data",
        data,
        "--labels",
        "y",
        "--segments",
        "region",
        "--replicates",
        "0",
        "--report-dir",
        work / "out",
        "--quiet",
    )
    assert code == ExitCode.OK
    report = read_report(work / "out")
    assert report["candidates"] == [{"name": "ref_2", "passed": True}]
    assert set(report["run"]["models"]) == {"ref", "ref_2"}


def test_compare_without_labels_gates_on_agreement_only(work: Path, cli: Run) -> None:
    frame = Plan(200, seed=15).frame().drop(columns=["y", "region"])
    frame.to_parquet(work / "unlabelled.parquet")
    code, _, err = cli(
        "compare",
        work / "ref.onnx",
        work / "same.onnx",
        "--data",
        work / "unlabelled.parquet",
        "--task",
        "classification",
        "--replicates",
        "0",
        "--report-dir",
        work / "out",
    )
    assert code == ExitCode.OK
    assert "top1_agreement" in err
    assert {c["id"] for c in read_report(work / "out")["checks"]} == {
        "agreement",
        "nonfinite-outputs",
    }


# -- init ----------------------------------------------------------------------------------
def test_init_writes_a_starter_spec_that_loads_and_resolves(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "acceptance.yaml"

    code, out, _ = cli("init", path)

    assert code == ExitCode.OK
    assert f"compval validate {path}" in out
    assert path.read_text() == STARTER_SPEC
    spec = load_spec(path).spec
    assert spec == spec_from_mapping(yaml.safe_load(path.read_text()))
    assert spec.reference.path == "models/model_fp32.onnx"
    assert [c.name for c in spec.candidates] == ["int8"]
    criteria = resolve_criteria(
        spec.criteria, task=spec.task.type, resampling=True, segment_columns=spec.data.segments
    )
    assert [c.id for c in criteria] == [
        "accuracy",
        "accuracy-per-segment",
        "agreement",
        "macro-f1",
        "kl",
        "nonfinite-outputs",
    ]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "compval.yaml"
    path.write_text("mine\n")

    refused, _, err = cli("init", path)
    assert refused == ExitCode.USAGE_ERROR
    assert "already exists" in err and "--force" in err
    assert path.read_text() == "mine\n"

    forced, _, _ = cli("init", path, "--force")
    assert forced == ExitCode.OK
    assert path.read_text() == STARTER_SPEC


def test_init_defaults_to_compval_yaml_in_the_working_directory(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli("init")
    assert code == ExitCode.OK
    assert (tmp_path / "compval.yaml").read_text() == STARTER_SPEC


def test_init_creates_missing_parent_directories(tmp_path: Path, cli: Run) -> None:
    path = tmp_path / "new" / "dir" / "compval.yaml"
    code, _, _ = cli("init", path)
    assert code == ExitCode.OK
    assert path.read_text() == STARTER_SPEC


def test_init_onto_a_directory_is_a_usage_error(tmp_path: Path, cli: Run) -> None:
    code, _, err = cli("init", tmp_path, "--force")
    assert code == ExitCode.USAGE_ERROR
    assert "is a directory" in err and "compval.yaml" in err


# -- the command line itself ---------------------------------------------------------------
def test_no_command_prints_help_and_exits_4(cli: Run) -> None:
    code, _, err = cli()
    assert code == ExitCode.USAGE_ERROR
    assert "validate" in err and "Exit codes" in err


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["validate", "--help"]])
def test_help_and_version_return_ok_instead_of_raising(argv: list[str], cli: Run) -> None:
    code, out, _ = cli(*argv)  # main() returns in-process: argparse's SystemExit is caught
    assert code == ExitCode.OK
    assert "compval" in out


def test_exit_codes_are_the_documented_contract() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "CHECKS_FAILED": 1,
        "INTERRUPTED": 2,
        "INTERNAL_ERROR": 3,
        "USAGE_ERROR": 4,
        "RUN_ERROR": 5,
    }


def test_nan_marker_model_really_outputs_nan(tmp_path: Path) -> None:
    """Guards the NaN tests in test_errors.py: the graph gives NaN exactly where planned."""
    import onnxruntime as ort

    path = write_classifier(tmp_path / "nan.onnx", reference_weights(), nan_marker=True)
    x = np.zeros((4, 4), dtype=np.float32)
    x[:, 0] = 1
    x[1, 3] = -1
    probs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[
        0
    ]
    assert np.isnan(probs[1]).all()
    assert np.isfinite(probs[[0, 2, 3]]).all()
    assert not math.isnan(float(probs[0, 0]))
