"""The ``wandb`` run sink in W&B's offline mode, read back from the run's local files.

The run's record log (``run-<id>.wandb``: W&B's LevelDB-style log of protobuf records) is read
with W&B's own protobuf classes; the tables from their JSON files under ``files/media``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tracker_builders import Validation, closed_port, overall, read_report

from compval.cli.main import main
from compval.errors import ExitCode

wandb = pytest.importorskip("wandb")
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # W&B leaves a TemporaryDirectory to the garbage collector.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

_BLOCK = 32 * 1024
_HEADER = 7  # ':W&B', a 2-byte magic and a version byte


def _records(path: Path) -> list[Any]:
    """The protobuf records of a ``.wandb`` file (32 KiB blocks of LevelDB log records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, pos, pending = [], _HEADER, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            pos += left - 7
            continue
        pending += data[pos : pos + length]
        pos += length
        if kind in (1, 4):  # FULL or LAST: a record is complete
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def _finished_records(path: Path, *, timeout_s: float = 30.0) -> list[Any]:
    """The records once the run's ``exit`` record is on disk.

    ``run.finish()`` returns when W&B's service has the run's data; the service writes the
    file a moment later (the CLI's process exit waits for it).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        records = _records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record"
        time.sleep(0.2)


def _offline_run(home: Path) -> Path:
    (run_dir,) = (home / "wandb_dir" / "wandb").glob("offline-run-*")
    return run_dir


def _summary(records: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            for item in r.summary.update:
                key = item.key or "/".join(item.nested_key)
                out[key] = json.loads(item.value_json)
    return out


def test_validate_logs_config_summary_tables_and_the_report_artifact(
    validation: Validation, tmp_path: Path, isolated_trackers: Path
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
            "--wandb",
        ]
    )
    report = read_report(report_dir)
    assert code == (ExitCode.OK if report["passed"] else ExitCode.CHECKS_FAILED)

    run_dir = _offline_run(isolated_trackers)
    records = _finished_records(next(run_dir.glob("run-*.wandb")))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "compval"
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["spec_hash"] == report["run"]["spec_hash"]
    assert config["data_hash"] == report["run"]["data_hash"]
    assert config["batch_size"] == "128" and config["seed"] == "0"
    assert config["model_id.small"] == report["run"]["models"]["small"]["model_id"]
    assert sorted(run.tags) == sorted(["compval", "pass" if report["passed"] else "fail"])

    summary = _summary(records)
    accuracy = overall(report, "small", "accuracy_score")
    assert summary["small/accuracy_score"] == accuracy["candidate_value"]
    assert summary["small/accuracy_score_delta"] == accuracy["delta"]
    assert summary["small/accuracy_score_delta_ci_low"] == accuracy["ci_low"]
    assert summary["small/accuracy_score_delta_ci_high"] == accuracy["ci_high"]
    assert summary["reference/accuracy_score"] == accuracy["reference_value"]
    assert summary["verdict"] == ("pass" if report["passed"] else "fail")

    (checks_file,) = (run_dir / "files" / "media" / "table").glob("checks_*.table.json")
    checks = json.loads(checks_file.read_text(encoding="utf-8"))
    ids = checks["columns"].index("id")
    observed = checks["columns"].index("observed")
    assert [row[ids] for row in checks["data"]] == [c["id"] for c in report["checks"]]
    assert [row[observed] for row in checks["data"]] == [c["observed"] for c in report["checks"]]
    (segments_file,) = (run_dir / "files" / "media" / "table").glob("segments_*.table.json")
    segments = json.loads(segments_file.read_text(encoding="utf-8"))
    assert len(segments["data"]) == sum(m["segment"] is not None for m in report["metrics"])

    (artifact,) = [
        r.artifact
        for r in records
        if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "compval-report"
    ]
    digests = {entry.path: entry.digest for entry in artifact.manifest.contents}
    assert set(digests) == {"report.json", "report.md", "junit.xml"}
    # W&B's digest is the base64 MD5 of the content: the files it holds are the written ones.
    for name, digest in digests.items():
        md5 = hashlib.md5((report_dir / name).read_bytes()).digest()
        assert digest == base64.b64encode(md5).decode()


_UNREACHABLE = """
import sys, time
from compval.engine import run_validation
from compval.errors import OutputError
from compval.reports import get_sink, write_reports
report = run_validation(sys.argv[1])
paths = write_reports(report, sys.argv[2], formats=["json"])
start = time.monotonic()
try:
    get_sink("wandb").configured({"timeout_s": "5"}).send(report, paths)
except OutputError as exc:
    print(round(time.monotonic() - start, 1))
    print(exc)
"""


def test_unreachable_server_fails_with_one_message_within_bounded_time(
    validation: Validation, tmp_path: Path
) -> None:
    # A process of its own: W&B keeps process-wide settings from its first run (offline).
    env = {
        **os.environ,
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        "WANDB_API_KEY": "0123456789" * 4,
    }
    out = subprocess.run(
        [sys.executable, "-c", _UNREACHABLE, str(validation.spec), str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    elapsed, message = out.stdout.strip().split("\n", 1)
    assert float(elapsed) < 30  # init_timeout 5 s; W&B's default waits 90 s
    assert "Weights & Biases" in message and "WANDB_MODE=offline" in message


def test_a_missing_package_names_the_extra(
    validation: Validation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    code = main(
        [
            "validate",
            str(validation.spec),
            "--report-dir",
            str(tmp_path / "r"),
            "--quiet",
            "--wandb",
        ]
    )
    assert code == ExitCode.RUN_ERROR
    assert "pip install 'compval[wandb]'" in capsys.readouterr().err
