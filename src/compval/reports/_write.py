"""Writing reports to disk: atomic file replacement of every registered format.

A report file is either the old one or the complete new one, never a half-written mix: CI
systems read ``junit.xml`` and ``report.json`` as soon as they appear, and a run killed while
writing must not leave a truncated contract behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from compval.errors import InvalidParameterError, OutputError
from compval.reports._registry import FILENAMES, RENDERERS
from compval.results import Report

__all__ = ["write_atomic", "write_reports"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    The text goes to a temporary file in the same directory, which is flushed, fsynced and then
    moved onto ``path`` with ``os.replace``. On any error the temporary file is removed and an
    existing ``path`` is left untouched. An existing file keeps its permission bits; a new one
    gets the usual ``0o666`` minus the umask.

    Args:
        path: The file to create or replace. Its directory must exist.
        text: The full new content.

    Raises:
        OSError: The directory is missing or not writable, the disk is full, or ``path`` is a
            directory. ``path`` is unchanged.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "report.md"
        >>> write_atomic(target, "# compval")
        >>> target.read_text()
        '# compval'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    data = text.encode("utf-8")
    # os.open with 0o666 lets the umask apply, unlike mkstemp's fixed 0o600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort, the file content already is."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems (network mounts, tmpfs variants) refuse fsync on a directory.
        pass
    finally:
        os.close(fd)


def write_reports(
    report: Report,
    directory: Path,
    *,
    formats: Sequence[str] = ("json", "markdown", "junit"),
) -> dict[str, Path]:
    """Render ``report`` in each format and write the files atomically into ``directory``.

    Every format is rendered before any file is written, so a rendering error leaves all
    existing files as they were. File names: ``report.json``, ``report.md``, ``junit.xml``.

    Args:
        report: The report to write.
        directory: Output folder; created (with parents) when missing.
        formats: Any of ``"json"``, ``"markdown"``, ``"junit"``; duplicates are written once.

    Returns:
        Format name -> path of the file written, in the order of ``formats``.

    Raises:
        InvalidParameterError: An unknown format, or ``formats`` given as a single string.
        OutputError: ``directory`` is not a folder, or a file could not be written (exit
            code 5: the run's output failed, not its arguments).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from compval.results import Report, RunInfo
        >>> run = RunInfo(compval_version="0.1.0", python_version="3.11", platform="linux",
        ...     runtimes={}, task="classification", spec_hash=None, spec_path=None,
        ...     data_hash="sha256:0", data_rows=0, seed=0, batch_size=1,
        ...     started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:01Z",
        ...     duration_s=1.0, models={})
        >>> report = Report(run=run, metrics=(), checks=(), candidates=())
        >>> paths = write_reports(report, Path(tempfile.mkdtemp()), formats=["json"])
        >>> paths["json"].name
        'report.json'
    """
    if isinstance(formats, str):
        raise InvalidParameterError(
            f"write_reports: 'formats' must be a sequence of format names; got the string "
            f"{formats!r}, expected e.g. [{formats!r}]. Wrap a single format in a list."
        )
    wanted = list(dict.fromkeys(formats))
    unknown = [name for name in wanted if name not in RENDERERS]
    if unknown:
        raise InvalidParameterError(
            f"write_reports: unknown report format; got {unknown[0]!r}, expected one of "
            f"{', '.join(repr(name) for name in RENDERERS)}. Fix the format name."
        )
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(
            f"write_reports: report directory is not a folder; got {str(directory)!r}, "
            "expected a folder path. Choose another output path."
        )
    texts = {name: RENDERERS[name](report) for name in wanted}
    written: dict[str, Path] = {}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = directory / FILENAMES[name]
            write_atomic(path, text)
            written[name] = path
    except OSError as exc:
        raise OutputError(
            f"write_reports: cannot write the {len(texts) - len(written)} remaining report "
            f"file(s) in {str(directory)!r}; got {type(exc).__name__}: {exc}, expected a "
            "writable folder. Check the path, its permissions and the free disk space."
        ) from exc
    return written
