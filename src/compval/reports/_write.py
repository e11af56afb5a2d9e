"""Writing reports to disk: atomic files, and a report folder that holds one run's set.

A report file is either the old one or the complete new one, never a half-written mix: CI
systems read ``junit.xml`` and ``report.json`` as soon as they appear, and a run killed while
writing must not leave a truncated contract behind.

The files of one folder also belong together. ``write_reports`` writes the new set into a
hidden staging folder inside the report folder, moves the old report files out (``report.json``
first), moves the new ones in (``report.json`` last) and removes the staging folder; on an
error or an interrupt it puts the old set back. ``report.json`` is the commit marker: whenever
it exists, every other report file beside it comes from the same run (each also names the run
by its start time: ``run.started_at`` in JSON, the ``timestamp`` of junit.xml, ``run ...`` in
report.md). A report file of a format the new run does not write is removed with the old set,
since it would describe another run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
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
    """Render ``report`` in each format and replace the folder's report set with them.

    Every format is rendered before any file is written, so a rendering error leaves all
    existing files as they were. File names: ``report.json``, ``report.md``, ``junit.xml``.
    The set is replaced as a whole (see the module docstring): after an error or an interrupt
    the folder holds the old set, after success the new one, and report files of formats
    not written this time are removed. ``report.json`` is moved in last, as the commit
    marker. Other files in the folder are never touched.

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
    targets = {name: directory / FILENAMES[name] for name in texts}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".compval-staging-", dir=directory))
        try:
            for name, text in texts.items():
                _write_new(staging / FILENAMES[name], text, keep_mode_of=targets[name])
            _swap(directory, staging, targets)
        except BaseException:
            old = staging / "old"
            if old.is_dir() and any(old.iterdir()):
                # An old report could not be put back: keep it where it is, never delete it.
                raise
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        # Nothing of the new set stays in the folder on failure: all files remain to write.
        raise OutputError(
            f"write_reports: cannot write the {len(texts)} remaining report file(s) in "
            f"{str(directory)!r}; got {type(exc).__name__}: {exc}, expected a writable "
            "folder. Check the path, its permissions and the free disk space."
        ) from exc
    return targets


def _write_new(path: Path, text: str, *, keep_mode_of: Path) -> None:
    """Write a new file durably, with the permission bits of the file it will replace."""
    # os.open with 0o666 lets the umask apply, unlike mkstemp's fixed 0o600.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, stat.S_IMODE(os.stat(keep_mode_of).st_mode))


def _commit_last(paths: Mapping[str, Path]) -> list[Path]:
    """``paths`` with report.json (the commit marker) last."""
    marker = [p for p in paths.values() if p.name == FILENAMES.get("json")]
    return [p for p in paths.values() if p not in marker] + marker


def _swap(directory: Path, staging: Path, targets: Mapping[str, Path]) -> None:
    """Replace the folder's report set by the staged one; on any failure restore the old set.

    Old files leave report.json first and come back (on failure) report.json last; new files
    arrive report.json last. So at every instant, a report.json in the folder has only files
    of its own run beside it.
    """
    old_dir = staging / "old"
    old_dir.mkdir()
    current = {name: directory / filename for name, filename in FILENAMES.items()}
    present = [p for p in reversed(_commit_last(current)) if p.exists()]
    moved_out: list[Path] = []
    moved_in: list[Path] = []
    try:
        for path in present:
            os.replace(path, old_dir / path.name)
            moved_out.append(path)
        for path in _commit_last(targets):
            os.replace(staging / path.name, path)
            moved_in.append(path)
    except BaseException:
        # An error or Ctrl-C/SIGTERM mid-swap: back to the old set (it is still complete).
        for path in moved_in:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for path in reversed(moved_out):
            with contextlib.suppress(OSError):
                os.replace(old_dir / path.name, path)
        raise
    _fsync_directory(directory)
