"""Ctrl-C and SIGTERM: exit 2 with one line, the old report set intact, no temporary file.

SIGTERM is what CI runners and ``timeout`` send. By default it kills the process on the spot,
skipping every ``finally``; the CLI turns it into an interrupt while a command runs. The
SIGTERM case runs in a child process: the signal is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_builders import Plan, base_spec, write_models, write_yaml

import compval.cli.main as cli_main
from compval.cli.main import ExitCode, main

# Sends SIGTERM to itself on the second fsync, i.e. while the report files are written.
_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    real, calls = os.fsync, []
    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        real(fd)
    os.fsync = fsync
    from compval.cli.main import main
    sys.exit(int(main(sys.argv[1:])))
    """
)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    write_models(tmp_path)
    Plan(300, seed=5).frame().to_parquet(tmp_path / "data.parquet")
    return write_yaml(tmp_path / "spec.yaml", base_spec())


def test_sigterm_while_writing_reports_keeps_the_old_set(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["validate", str(spec), "--report-dir", str(out), "--quiet"]) in (0, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, "validate", str(spec), "--report-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )

    assert child.returncode == ExitCode.INTERRUPTED, child.stderr
    assert child.stderr.strip().splitlines() == ["compval: terminated (SIGTERM)"]
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # the old set, complete; no staging folder, no temp file


def test_ctrl_c_while_reporting_an_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(exc: BaseException) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_error", interrupted)
    code = main(["validate", "missing-spec.yaml"])
    _, err = capsys.readouterr()
    assert code == ExitCode.INTERRUPTED
    assert err.strip().splitlines() == ["compval: interrupted"]


def test_run_exits_2_on_ctrl_c_while_the_commands_import(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    monkeypatch.setattr(sys, "argv", ["compval", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.run()
    assert exit_info.value.code == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines() == ["compval: interrupted"]


def test_ctrl_c_while_the_package_imports_is_one_line() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                class Interrupt:
                    def find_spec(self, name, path=None, target=None):
                        if name == "compval.engine":
                            raise KeyboardInterrupt
                sys.meta_path.insert(0, Interrupt())
                sys.argv = ["compval", "validate", "missing.yaml"]
                from compval.cli.main import run
                run()
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == ExitCode.INTERRUPTED
    assert child.stderr.strip().splitlines() == ["compval: interrupted"]
