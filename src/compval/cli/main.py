"""The ``compval`` command: the only place where exceptions become exit codes.

Exit codes: 0 every blocking check passed; 1 a check failed or was inconclusive; 2
interrupted (Ctrl-C or SIGTERM); 3 internal error (a compval bug: the traceback is shown); 4
usage or spec error; 5 the run could not be done (model, data or output error). A user error
prints one message, never a traceback.

SIGTERM (what CI runners and ``timeout`` send) is turned into the same exception as Ctrl-C
while the command runs, so that every ``finally`` runs: report files are either all old or
all new, and no temporary file is left behind.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType, MappingProxyType

from compval._lazy import defer_imports
from compval.errors import CompvalError, ExitCode, UsageError, exit_code_for

__all__ = ["PROCESS_ENVIRONMENT", "ExitCode", "main", "run"]

# An error message is for reading: a value quoted from a huge file must not print megabytes.
_MAX_MESSAGE_LINE_CHARS = 2_000
_MAX_MESSAGE_LINES = 60
#: Allocations between collections of the youngest generation (Python's default: 700); run().
_GC_THRESHOLD = 20_000
#: Environment variables run() sets for its own process unless the user already set them.
#: Each library reads its variable once, when it loads, so run() sets them before any import
#: of numpy or pyarrow. They change speed and memory placement only, never a result
#: (report.json is the same); docs/architecture.md has the measurements.
#:
#: - ``OPENBLAS_THREAD_TIMEOUT=20``: OpenBLAS's idle workers wait 2**20 CPU cycles (about
#:   0.4 ms) for more work before they sleep, instead of 2**28 (about 0.1 s). numpy's and
#:   scipy's pools (scipy.special loads one, for no BLAS call) each spun on a core the run
#:   needed: 0.22-0.28 s of the 1.9 s of CPU of benchmarks/bench_validate.py (perf). The
#:   number of threads a model's BLAS calls use does not change.
#: - ``NUMPY_MADVISE_HUGEPAGE=0`` and ``ARROW_DEFAULT_MEMORY_POOL=system``: numpy asks for
#:   transparent huge pages for every array of 4 MB or more, and pyarrow's default allocator
#:   (mimalloc) for its segments. A run allocates and frees memory of that size per read and
#:   per chunk, so each chunk faulted in fresh 2 MB pages, which the kernel zeroes whole and,
#:   under the usual defrag setting ("madvise"), compacts memory to find: 27% of the perf
#:   samples of a bench_validate.py run were the kernel's clear_page, and the kernel time of
#:   identical runs ranged from 0.33 to 1.09 s. With 4 KiB pages and malloc: 0.29-0.41 s.
PROCESS_ENVIRONMENT: Mapping[str, str] = MappingProxyType(
    {
        "OPENBLAS_THREAD_TIMEOUT": "20",
        "NUMPY_MADVISE_HUGEPAGE": "0",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
    }
)
#: Modules run() lets load only when used (compval._lazy.defer_imports). scipy.special's import
#: (which every validation needs) goes through scipy's array-API layer, which copies numpy's
#: namespace and so imports every numpy submodule it lists, among them the Fortran wrapper
#: generator and numpy's test helpers: 0.04-0.05 s of the 0.11 s import, for modules that
#: neither compval nor its runtimes use. Anything that does use them gets them on first use.
_DEFERRED_IMPORTS = ("numpy.f2py", "numpy.testing")
_INVALID_CHOICE = re.compile(r"argument COMMAND: invalid choice: '?([^' ]*)'?")


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C (exit code 2), with its own message."""


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments; compval's contract says 4, with one message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # The CLI prints "compval: error: " before every message, so name only the
        # subcommand here ("compare: argument --batch-size: ...").
        command = self.prog.removeprefix("compval").strip()
        choice = _INVALID_CHOICE.match(message)
        if choice is not None:
            message = (
                f"unknown command {choice.group(1)!r}; expected one of validate, compare, "
                "profile, diagnose, init, demo"
            )
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message}. See '{self.prog} --help'.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from compval.cli import _commands, _diagnose

    parser = _Parser(
        prog="compval",
        description="Validate compressed models (quantized, pruned, distilled) against the model "
        "they came from: accuracy per segment with confidence intervals, prediction agreement, "
        "output fidelity, NaN/Inf, and an exit code for CI.",
        epilog=_commands.EXIT_CODES_HELP,
    )
    from compval._version import __version__

    parser.add_argument("--version", action="version", version=f"compval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _commands.add_validate(sub)
    _commands.add_compare(sub)
    _commands.add_profile(sub)
    _diagnose.add_diagnose(sub)
    _commands.add_init(sub)
    _commands.add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> ExitCode:
    """Run the CLI in-process and return its exit code (tests call this directly)."""
    try:
        with _sigterm_interrupts():
            return _main(argv)
    except KeyboardInterrupt as exc:
        # Also reached when the interrupt lands in an except clause of _main.
        _interrupted(exc)
        return ExitCode.INTERRUPTED


def _main(argv: Sequence[str] | None) -> ExitCode:
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version print and "exit"; stay in-process
            return ExitCode.OK if exc.code in (0, None) else ExitCode.USAGE_ERROR
        if args.command is None:
            parser.print_help(sys.stderr)
            return ExitCode.USAGE_ERROR
        code: ExitCode = args.handler(args)
        return code
    except KeyboardInterrupt as exc:
        _interrupted(exc)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        # One table (compval.errors.EXIT_CODES) says which code each error gives.
        code = exit_code_for(exc)
        if code == ExitCode.INTERNAL_ERROR:
            traceback.print_exc()
            print(
                "compval: internal error: this is a bug in compval; please report it with the "
                "traceback above.",
                file=sys.stderr,
            )
        elif isinstance(exc, CompvalError):
            _error(exc)
        return code


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Raise ``_Terminated`` on SIGTERM while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - a platform without SIGTERM handling
        yield
        return
    try:
        yield
    finally:
        # None: the previous handler was not set from Python; the default is the best match.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _interrupted(exc: BaseException) -> None:
    what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
    print(f"compval: {what}", file=sys.stderr)


def _error(exc: BaseException) -> None:
    print(f"compval: error: {_readable(str(exc))}", file=sys.stderr)


def _readable(message: str) -> str:
    """The message with control characters spelled out and its size bounded.

    Messages quote file names, column names and values from the user's files: an ESC in a
    column name must not recolour the terminal, and a megabyte value must not flood it.
    """
    from compval.reports import visible

    lines = [visible(line) for line in message.splitlines()]
    if len(lines) > _MAX_MESSAGE_LINES:
        more = len(lines) - _MAX_MESSAGE_LINES
        lines = [*lines[:_MAX_MESSAGE_LINES], f"... and {more} more lines"]
    return "\n".join(
        line if len(line) <= _MAX_MESSAGE_LINE_CHARS else line[:_MAX_MESSAGE_LINE_CHARS] + "…"
        for line in lines
    )


def run() -> None:
    """Console-script entry point: exits with the code, one line on Ctrl-C, never a trace.

    Everything, the import of the command modules included, runs inside the handler: a
    Ctrl-C while heavy libraries import must still exit 2 with one line.
    """
    # The run's main thread makes many short calls that release the GIL (a model's batch, a
    # file read) while the scoring, hashing and reading threads work: with Python's default
    # 5 ms switch interval it waits up to that long to get the GIL back after each. 0.5 ms
    # measured 3.10 -> 2.74 s on benchmarks/bench_validate.py (median of 5, report.json
    # identical). This is the command's own process: the library leaves the setting alone.
    sys.setswitchinterval(0.0005)
    # Before numpy or pyarrow loads; a value the user set wins (see PROCESS_ENVIRONMENT).
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # A run allocates few cycles but many objects (imports, spec models, report rows): at
    # Python's default threshold of 700 the cyclic collector ran ~180 times per run of
    # bench_validate.py, each one walking every object alive. Large arrays are not tracked.
    gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])
    defer_imports(_DEFERRED_IMPORTS)
    try:
        code = main()
    except KeyboardInterrupt as exc:
        _interrupted(exc)
        code = ExitCode.INTERRUPTED
    # The reports are written and closed; what is left is freed by the interpreter's teardown,
    # which collects again after clearing each module. Frozen objects are not walked by those
    # collections (0.17 -> 0.04 s of exit on bench_validate.py); they are still freed.
    gc.freeze()
    sys.exit(int(code))
