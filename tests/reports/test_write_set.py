"""write_reports replaces the folder's report set as a whole: never files of two runs together.

report.json is the commit marker: it leaves first and arrives last, so whenever it exists,
the other report files beside it are from its run; an error or an interrupt mid-way puts the
old set back; no staging or temporary file is left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from compval.errors import OutputError
from compval.reports import write_reports
from compval.results import Report

FILES = ["junit.xml", "report.json", "report.md"]


def _old_set(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    contents = {name: f"old {name}\n" for name in FILES}
    for name, text in contents.items():
        (directory / name).write_text(text, encoding="utf-8")
    return contents


def _read(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.iterdir())}


def test_every_file_names_the_same_run(report: Report, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path)
    started = json.loads(paths["json"].read_text(encoding="utf-8"))["run"]["started_at"]
    assert f"run {started}" in paths["markdown"].read_text(encoding="utf-8")
    suites = ET.parse(paths["junit"]).getroot().iter("testsuite")
    assert {s.get("timestamp") for s in suites} == {started}


def test_report_json_leaves_first_and_arrives_last(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_set(tmp_path)
    moves: list[tuple[str, str]] = []
    real = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        moves.append((Path(src).parent.name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_reports(report, tmp_path)
    into_folder = [dst for _, dst in moves if dst in FILES]
    assert into_folder[0] == "report.json"  # the old marker is the first file to go
    assert into_folder[-1] == "report.json"  # the new marker is the last file to come
    assert sorted(os.listdir(tmp_path)) == FILES


@pytest.mark.parametrize("failing_move", [1, 3, 4, 5])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, PermissionError])
def test_interrupt_or_error_mid_swap_keeps_the_old_set(
    report: Report,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_move: int,
    exc: type[BaseException],
) -> None:
    old = _old_set(tmp_path)
    real = os.replace
    calls = 0

    def flaky(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == failing_move:
            raise exc("stop here")
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OutputError if exc is PermissionError else KeyboardInterrupt):
        write_reports(report, tmp_path)
    assert _read(tmp_path) == old  # no staging folder, no temp file, nothing new


def test_interrupt_while_staging_leaves_no_temp_file(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _old_set(tmp_path)
    real = os.fsync
    calls = 0

    def interrupted(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        real(fd)

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_reports(report, tmp_path)
    assert _read(tmp_path) == old


def test_report_files_of_an_older_run_are_removed(report: Report, tmp_path: Path) -> None:
    write_reports(report, tmp_path)
    later = dataclasses.replace(
        report, run=dataclasses.replace(report.run, started_at="2024-05-02T08:00:00+00:00")
    )
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    write_reports(later, tmp_path, formats=["json"])
    # A report.md of the earlier run beside the new report.json would describe another run.
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "report.json"]
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["run"]["started_at"] == "2024-05-02T08:00:00+00:00"
