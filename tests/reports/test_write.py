"""write_atomic and write_reports: all or nothing, no temp files left behind."""

from __future__ import annotations

import json
import os
import stat
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import compval.reports._write as write_module
from compval.errors import InvalidParameterError, OutputError
from compval.reports import (
    RENDERERS,
    render_json,
    render_markdown,
    write_atomic,
    write_reports,
)
from compval.results import Report


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_atomic(target, "first ✅\n")
    assert target.read_text(encoding="utf-8") == "first ✅\n"
    write_atomic(target, "second\n")
    assert target.read_bytes() == b"second\n"
    assert os.listdir(tmp_path) == ["report.md"]


def test_failed_replace_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match="denied"):
        write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "junit.xml"
    target.write_text("old", encoding="utf-8")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["junit.xml"]


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "report.json", "x")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    fresh = tmp_path / "fresh.txt"
    write_atomic(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    write_atomic(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_write_reports_writes_every_format(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "reports"
    paths = write_reports(report, out)
    assert paths == {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "junit": out / "junit.xml",
    }
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == json.loads(render_json(report))
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(report)
    assert ET.parse(paths["junit"]).getroot().tag == "testsuites"
    assert sorted(os.listdir(out)) == ["junit.xml", "report.json", "report.md"]


def test_write_reports_subset_and_duplicates(report: Report, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path, formats=["junit", "junit"])
    assert list(paths) == ["junit"]
    assert os.listdir(tmp_path) == ["junit.xml"]


def test_rendering_error_writes_nothing(report: Report, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "report.json").write_text("old json", encoding="utf-8")

    def broken(report: Report) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(write_module, "RENDERERS", {**RENDERERS, "markdown": broken})
    with pytest.raises(RuntimeError, match="renderer bug"):
        write_reports(report, tmp_path)
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == "old json"
    assert os.listdir(tmp_path) == ["report.json"]


def test_os_error_becomes_an_output_error(report: Report, tmp_path: Path, monkeypatch):
    (tmp_path / "report.json").write_text("old json", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(
        OutputError,
        match=r"write_reports: cannot write the 3 remaining report file\(s\) in .*; got "
        r"PermissionError: .*Permission denied.*expected a writable folder\. Check the path",
    ):
        write_reports(report, tmp_path)
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == "old json"
    assert os.listdir(tmp_path) == ["report.json"]


def test_unknown_format(report: Report, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidParameterError,
        match=r"unknown report format; got 'pdf', expected one of 'json', .*'html'",
    ):
        write_reports(report, tmp_path / "out", formats=["json", "pdf"])
    assert not (tmp_path / "out").exists()


def test_formats_as_a_string(report: Report, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidParameterError,
        match=r"'formats' must be a sequence of format names; got the string 'json', "
        r"expected e\.g\. \['json'\]",
    ):
        write_reports(report, tmp_path, formats="json")


def test_directory_is_a_file(report: Report, tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(
        OutputError,
        match=r"write_reports: report directory is not a folder; got '.*reports', expected a "
        r"folder path\. Choose another output path\.",
    ):
        write_reports(report, blocker)


def test_public_api() -> None:
    import compval.reports as reports

    assert set(RENDERERS) == {"json", "markdown", "junit", "html"}
    for name in reports.__all__:
        assert hasattr(reports, name)
    assert reports.write_reports.__module__ == "compval.reports"
    import compval.results as results

    for cls in (results.Report, results.RunInfo, results.CheckResult, results.MetricValue):
        typing.get_type_hints(cls)  # string annotations still resolve
