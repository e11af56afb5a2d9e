"""The ``clearml`` run sink in ClearML's offline mode, read back from its offline folder.

The offline session folder holds ``task.json`` (the task, its artifacts with their SHA-256),
``metrics.jsonl`` (scalar and table-plot events) and the artifact files.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tracker_builders import Validation, closed_port, overall, read_report, sha256

from compval.cli.main import main
from compval.errors import ExitCode

clearml = pytest.importorskip("clearml")
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from clearml.backend_api.session.defs import MissingConfigError

    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "0")  # set_offline writes it; restored after
    clearml.Task.set_offline(True)
    yield
    # Going back online rebuilds the sessions, which fails without a server configuration
    # (the tests have none) after the offline flags are reset.
    with contextlib.suppress(MissingConfigError):
        clearml.Task.set_offline(False)


def _events(folder: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            events.extend(json.loads(line))
    return events


def test_validate_logs_scalars_tables_and_report_artifacts_offline(
    offline: None, validation: Validation, tmp_path: Path, isolated_trackers: Path
) -> None:
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
            "--clearml",
        ]
    )
    report = read_report(report_dir)
    assert code == (ExitCode.OK if report["passed"] else ExitCode.CHECKS_FAILED)

    (folder,) = [
        p for p in (isolated_trackers / "clearml-cache" / "offline").iterdir() if p.is_dir()
    ]
    task = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    assert task["project_name"] == "compval"
    assert task["name"] == "compval spec"
    assert task["type"] == "qc"

    events = _events(folder)
    scalars = {
        (e["metric"], e["variant"]): e["value"]
        for e in events
        if e["type"] == "training_stats_scalar"
    }
    accuracy = overall(report, "small", "accuracy_score")
    assert scalars[("accuracy_score", "small")] == accuracy["candidate_value"]
    assert scalars[("accuracy_score", "reference")] == accuracy["reference_value"]
    assert scalars[("accuracy_score_delta", "small")] == accuracy["delta"]
    assert scalars[("accuracy_score_delta_ci_low", "small")] == accuracy["ci_low"]
    assert scalars[("accuracy_score_delta_ci_high", "small")] == accuracy["ci_high"]

    (checks,) = [e for e in events if e["type"] == "plot" and e["metric"] == "checks"]
    cells = json.loads(checks["plot_str"])["data"][0]["cells"]["values"]  # column-major
    header = json.loads(checks["plot_str"])["data"][0]["header"]["values"]
    column = {name[0] if isinstance(name, list) else name: i for i, name in enumerate(header)}
    assert cells[column["id"]] == [c["id"] for c in report["checks"]]
    assert cells[column["verdict"]] == [c["verdict"] for c in report["checks"]]

    artifacts = {a["key"]: a for a in task["execution"]["artifacts"]}
    assert set(artifacts) == {"report.json", "report.md", "junit.xml"}
    for name, artifact in artifacts.items():
        assert artifact["hash"] == sha256(report_dir / name)  # the files it holds are ours
        stored = folder / Path(artifact["uri"]).relative_to(folder)
        assert stored.read_bytes() == (report_dir / name).read_bytes()


_UNREACHABLE = """
import sys, time
from compval.engine import run_validation
from compval.errors import OutputError
from compval.reports import get_sink, write_reports
report = run_validation(sys.argv[1])
paths = write_reports(report, sys.argv[2], formats=["json"])
start = time.monotonic()
try:
    get_sink("clearml").send(report, paths)
except OutputError as exc:
    print(round(time.monotonic() - start, 1))
    print(exc)
"""


def test_unreachable_server_fails_with_one_message_within_bounded_time(
    validation: Validation, tmp_path: Path
) -> None:
    # A process of its own: ClearML keeps one session per process.
    server = f"http://127.0.0.1:{closed_port()}"
    env = {
        **os.environ,
        "CLEARML_API_HOST": server,
        "CLEARML_WEB_HOST": server,
        "CLEARML_FILES_HOST": server,
        "CLEARML_API_ACCESS_KEY": "compval-test",
        "CLEARML_API_SECRET_KEY": "compval-test",
    }
    out = subprocess.run(
        [sys.executable, "-c", _UNREACHABLE, str(validation.spec), str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=True,
    )
    elapsed, message = out.stdout.strip().splitlines()[-2:]
    assert float(elapsed) < 30  # ClearML's default: 240 retries
    assert "ClearML" in message and "CLEARML_OFFLINE_MODE=1" in message


def test_a_missing_package_names_the_extra(
    validation: Validation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "clearml", None)
    code = main(
        [
            "validate",
            str(validation.spec),
            "--report-dir",
            str(tmp_path / "r"),
            "--quiet",
            "--clearml",
        ]
    )
    assert code == ExitCode.RUN_ERROR
    assert "pip install 'compval[clearml]'" in capsys.readouterr().err
