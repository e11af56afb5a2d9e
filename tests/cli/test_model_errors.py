"""Bad model and data files: one message that does not contradict itself, nothing else printed.

Also the Python API's spec argument: a mapping is a spec, anything else is a usage error.
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_builders import Plan, base_spec, write_models, write_yaml

from compval import InvalidParameterError, Report, run_validation
from compval.cli.main import ExitCode, main

Run = Callable[..., tuple[ExitCode, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[ExitCode, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("models")
    write_models(work)
    frame = Plan(300, seed=8).frame()
    frame.to_parquet(work / "data.parquet")
    frame.to_csv(work / "data.csv", index=False)
    (work / "packed.csv").write_bytes(gzip.compress((work / "data.csv").read_bytes()))
    with zipfile.ZipFile(work / "crafted.pt", "w") as archive:
        # Looks like a TorchScript archive (constants.pkl) but is not a loadable one.
        archive.writestr("archive/constants.pkl", b"not a pickle")
        archive.writestr("archive/data.pkl", b"not a pickle")
    with zipfile.ZipFile(work / "crafted.pt2", "w") as archive:
        archive.writestr("archive/archive_format", b"pt2")
        archive.writestr("archive/version", b"0")
    return work


def _validate(cli: Run, work: Path, tmp_path: Path, **spec: Any) -> tuple[ExitCode, str, str]:
    raw = base_spec(**spec)
    raw["reference"] = {**raw["reference"], "path": str(work / raw["reference"]["path"])}
    raw["candidates"] = [{**c, "path": str(work / c["path"])} for c in raw["candidates"]]
    raw["data"] = {**raw["data"], "path": str(work / raw["data"]["path"])}
    path = write_yaml(tmp_path / "spec.yaml", raw)
    return cli("validate", path, "--report-dir", tmp_path / "out", "--quiet")


@pytest.mark.torch
def test_crafted_torchscript_file_gets_a_consistent_message(
    work: Path, tmp_path: Path, cli: Run
) -> None:
    pytest.importorskip("torch")
    code, _, err = _validate(cli, work, tmp_path, candidates=[{"name": "c", "path": "crafted.pt"}])
    assert code == ExitCode.RUN_ERROR
    assert "crafted.pt" in err and "cannot be loaded" in err and "TorchScript archive" in err
    assert "not a TorchScript archive" not in err  # it is one, only a broken one
    assert len(err.strip().splitlines()) == 1


@pytest.mark.torch
def test_bad_pt2_prints_only_compvals_message(work: Path, tmp_path: Path, cli: Run) -> None:
    pytest.importorskip("torch")
    code, out, err = _validate(
        cli, work, tmp_path, candidates=[{"name": "c", "path": "crafted.pt2"}]
    )
    assert code == ExitCode.RUN_ERROR
    assert err.startswith("compval: error: ")
    assert len(err.strip().splitlines()) == 1, err  # no torch log, no traceback
    assert "Traceback" not in out + err
    assert "crafted.pt2" in err and "cannot be loaded" in err
    assert "version" in err  # the cause torch logged, not "check the warnings above"


def test_refused_pickle_is_a_usage_decision(work: Path, tmp_path: Path, cli: Run) -> None:
    with (work / "model.pkl").open("wb") as handle:
        pickle.dump({"weights": [1, 2, 3]}, handle)
    code, _, err = _validate(cli, work, tmp_path, candidates=[{"name": "c", "path": "model.pkl"}])
    assert code == ExitCode.USAGE_ERROR
    assert "loading refused" in err and "--allow-pickle" in err


def test_gzip_data_named_csv_is_named_as_such(work: Path, tmp_path: Path, cli: Run) -> None:
    code, _, err = _validate(
        cli, work, tmp_path, data={"path": "packed.csv", "labels": "y", "segments": ["region"]}
    )
    assert code == ExitCode.RUN_ERROR
    assert "gzip" in err and ".csv.gz" in err
    assert "\ufffd" not in err and "\x8b" not in err  # no binary garbage
    assert len(err.strip().splitlines()) == 1


def test_run_validation_takes_a_spec_mapping(work: Path) -> None:
    raw = base_spec()
    raw["reference"]["path"] = str(work / "ref.onnx")
    raw["candidates"] = [{"name": "cand", "path": str(work / "same.onnx")}]
    raw["data"]["path"] = str(work / "data.parquet")
    report = run_validation(raw)
    assert isinstance(report, Report) and report.passed


def test_run_validation_refuses_a_spec_of_the_wrong_type() -> None:
    with pytest.raises(InvalidParameterError, match="spec file path, a mapping"):
        run_validation(42)  # type: ignore[arg-type]
