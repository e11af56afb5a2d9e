"""The ``mlflow`` run sink against a real MLflow tracking store (sqlite) in a temporary folder.

What MLflow stores is read back with ``MlflowClient`` and compared with report.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tracker_builders import Validation, closed_port, overall, read_report, write_spec

from compval.cli.main import main
from compval.errors import ExitCode

mlflow = pytest.importorskip("mlflow")
pytestmark = [
    # MLflow's sqlite store uses SQLAlchemy options that SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:sqlalchemy.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*"),
]


def _runs(uri: str, experiment: str = "compval") -> tuple[Any, list[Any]]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} at {uri}"
    return client, client.search_runs([found.experiment_id])


def _table(client: Any, run_id: str, name: str, dst: Path) -> dict[str, list[object]]:
    local = client.download_artifacts(run_id, f"compval/{name}", str(dst))
    data = json.loads(Path(local).read_text(encoding="utf-8"))
    return {c: [row[i] for row in data["data"]] for i, c in enumerate(data["columns"])}


def test_validate_logs_a_run_with_a_nested_run_per_candidate(
    validation: Validation, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report_dir = tmp_path / "report"
    code = main(
        [
            "validate",
            str(validation.spec),
            "--report-dir",
            str(report_dir),
            "--quiet",
            "--format",
            "json,markdown,junit",
            f"--mlflow={uri}",
        ]
    )
    report = read_report(report_dir)
    assert code == (ExitCode.OK if report["passed"] else ExitCode.CHECKS_FAILED)

    client, runs = _runs(uri)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 1
    parent, child = parents[0], children[0]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == child.info.status == "FINISHED"

    # Params: what makes two runs comparable, equal to report.json's.
    run = report["run"]
    params = parent.data.params
    assert params["spec_hash"] == run["spec_hash"]
    assert params["data_hash"] == run["data_hash"]
    assert params["batch_size"] == str(run["batch_size"]) == "128"
    assert params["seed"] == str(run["seed"])
    assert params["model_id.fp32"] == run["models"]["fp32"]["model_id"]
    assert params["model_id.small"] == run["models"]["small"]["model_id"]

    # The verdicts as tags: the run's, and the candidate's.
    assert parent.data.tags["verdict"] == ("pass" if report["passed"] else "fail")
    (cand,) = report["candidates"]
    assert child.info.run_name == cand["name"] == "small"
    assert child.data.tags["verdict"] == ("pass" if cand["passed"] else "fail")

    # Metrics: exactly report.json's values (MLflow stores float64).
    accuracy = overall(report, "small", "accuracy_score")
    metrics = child.data.metrics
    assert metrics["accuracy_score"] == accuracy["candidate_value"]
    assert metrics["accuracy_score_delta"] == accuracy["delta"]
    assert metrics["accuracy_score_delta_ci_low"] == accuracy["ci_low"]
    assert metrics["accuracy_score_delta_ci_high"] == accuracy["ci_high"]
    assert parent.data.metrics["reference.accuracy_score"] == accuracy["reference_value"]
    agreement = overall(report, "small", "top1_agreement")  # paired: no delta
    assert metrics["top1_agreement"] == agreement["candidate_value"]
    assert metrics["top1_agreement_ci_low"] == agreement["ci_low"]
    assert "top1_agreement_delta" not in metrics
    assert not any("[" in key for key in metrics)  # per-class entries stay in the tables

    # The check table, row for row.
    checks = _table(client, parent.info.run_id, "checks.json", tmp_path / "dl")
    assert checks["id"] == [c["id"] for c in report["checks"]]
    assert checks["verdict"] == [c["verdict"] for c in report["checks"]]
    # mlflow.log_table writes JSON through pandas, which keeps 10 decimals.
    assert checks["observed"] == pytest.approx([c["observed"] for c in report["checks"]], abs=1e-10)
    segments = _table(client, parent.info.run_id, "segments.json", tmp_path / "dl")
    in_report = [m for m in report["metrics"] if m["segment"] is not None]
    assert len(segments["segment"]) == len(in_report)
    assert segments["delta"] == pytest.approx([m["delta"] for m in in_report], abs=1e-10)

    # The report files, byte for byte.
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "compval")}
    assert {"compval/report.json", "compval/report.md", "compval/junit.xml"} <= names
    local = client.download_artifacts(parent.info.run_id, "compval/report.json", str(tmp_path))
    assert Path(local).read_bytes() == (report_dir / "report.json").read_bytes()


def test_the_spec_names_the_server_and_the_experiment(
    tmp_path: Path, validation: Validation
) -> None:
    uri = f"sqlite:///{tmp_path / 'from-spec.db'}"
    spec = write_spec(
        validation.folder, "fp32.onnx", "small.onnx", tracking={"mlflow": uri, "project": "qa"}
    )
    code = main(["validate", str(spec), "--report-dir", str(tmp_path / "r"), "--quiet", "--mlflow"])
    assert code in (ExitCode.OK, ExitCode.CHECKS_FAILED)
    _, runs = _runs(uri, experiment="qa")
    assert len(runs) == 2


@pytest.mark.parametrize(
    ("flag", "env", "spec", "expected"),
    [
        ("flag-uri", "env-uri", "spec-uri", "flag-uri"),
        ("", "env-uri", "spec-uri", "env-uri"),
        ("", None, "spec-uri", "spec-uri"),
        (None, None, None, None),
    ],
)
def test_tracking_uri_precedence_flag_then_environment_then_spec(
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    spec: str | None,
    expected: str | None,
) -> None:
    from compval.cli._commands import _tracking
    from compval.spec import TrackingSpec

    if env is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    resolved = _tracking(argparse.Namespace(mlflow=flag), TrackingSpec(mlflow=spec))
    assert resolved.mlflow == expected


def test_unreachable_server_fails_with_one_message_within_seconds(
    validation: Validation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    report_dir = tmp_path / "report"
    start = time.monotonic()
    code = main(
        [
            "validate",
            str(validation.spec),
            "--report-dir",
            str(report_dir),
            "--quiet",
            f"--mlflow={uri}",
        ]
    )
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == ExitCode.RUN_ERROR
    assert elapsed < 60  # 3 attempts with 1-2 s of backoff; MLflow's defaults take minutes
    assert "mlflow" in err and uri in err and "reachable" in err
    assert "Traceback" not in err
    assert (report_dir / "report.json").is_file()  # the reports are written first


def test_a_missing_package_names_the_extra(
    validation: Validation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    code = main(
        [
            "validate",
            str(validation.spec),
            "--report-dir",
            str(tmp_path / "r"),
            "--quiet",
            "--sink",
            "mlflow",
        ]
    )
    assert code == ExitCode.RUN_ERROR
    assert "pip install 'compval[mlflow]'" in capsys.readouterr().err


def test_a_file_given_as_the_tracking_uri_is_refused(
    validation: Validation, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'compare --mlflow ref.onnx cand.onnx ...' would take the reference for the URI.
    code = main(
        [
            "compare",
            "--mlflow",
            str(validation.reference),
            str(validation.candidate),
            str(validation.candidate),
            "--data",
            str(validation.folder / "data.parquet"),
        ]
    )
    assert code == ExitCode.USAGE_ERROR
    assert "--mlflow=URI" in capsys.readouterr().err
