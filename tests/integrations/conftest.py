"""Isolation for the tracker tests: no network, nothing written outside the test's folder.

Every tracker's environment is reset, its home and cache folders point into ``tmp_path``,
MLflow's telemetry is off and W&B runs offline. Tests run in ``tmp_path`` (MLflow's local
artifact store is ``./mlruns`` of the working directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tracker_builders import Validation, onnx_models, write_spec

from compval.engine import run_validation
from compval.reports import write_reports
from compval.results import Report

_TRACKER_PREFIXES = ("MLFLOW_", "WANDB_", "CLEARML_", "TRAINS_")


@pytest.fixture(scope="session", autouse=True)
def no_tracker_telemetry() -> Iterator[None]:
    """MLflow's usage telemetry off for the module-scoped fixtures too (they run first)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("DO_NOT_TRACK", "1")
        yield


@pytest.fixture(autouse=True)
def isolated_trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(_TRACKER_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(home / "clearml-cache"))
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(home / "clearml.conf"))  # none: defaults
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def validation(tmp_path: Path) -> Validation:
    folder = tmp_path / "run"
    folder.mkdir()
    reference, candidate, data = onnx_models()
    (folder / "fp32.onnx").write_bytes(reference)
    (folder / "small.onnx").write_bytes(candidate)
    data.to_parquet(folder / "data.parquet")
    spec = write_spec(folder, "fp32.onnx", "small.onnx")
    return Validation(folder, folder / "fp32.onnx", folder / "small.onnx", spec)


@pytest.fixture
def finished(validation: Validation, tmp_path: Path) -> tuple[Report, dict[str, Path]]:
    """The validation's report and its written files, for calling a sink directly."""
    report = run_validation(validation.spec)
    paths = write_reports(report, tmp_path / "finished", formats=["json", "markdown"])
    return report, dict(paths)
