"""The ``compval`` command: the only place where exceptions become exit codes.

Exit codes: 0 every blocking check passed; 1 a check failed or was inconclusive; 2
interrupted; 3 internal error (a compval bug: the traceback is shown); 4 usage or spec error;
5 the run could not be done (model or data error). A user error prints one message, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from compval.errors import CompvalError, ExitCode, UsageError, exit_code_for

__all__ = ["ExitCode", "main", "run"]


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments; compval's contract says 4, with one message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from compval.cli import _commands

    parser = _Parser(
        prog="compval",
        description="Validate compressed models (quantized, pruned, distilled) against the model "
        "they came from: accuracy per segment with confidence intervals, prediction agreement, "
        "output fidelity, NaN/Inf, and an exit code for CI.",
        epilog="Exit codes: 0 pass, 1 a check failed or was inconclusive, 2 interrupted, "
        "3 internal error, 4 usage or spec error, 5 model, data or output error.",
    )
    from compval._version import __version__

    parser.add_argument("--version", action="version", version=f"compval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _commands.add_validate(sub)
    _commands.add_compare(sub)
    _commands.add_profile(sub)
    _commands.add_init(sub)
    _commands.add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> ExitCode:
    """Run the CLI in-process and return its exit code (tests call this directly)."""
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
    except KeyboardInterrupt:
        print("compval: interrupted", file=sys.stderr)
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


def _error(exc: BaseException) -> None:
    print(f"compval: error: {exc}", file=sys.stderr)


def run() -> None:
    """Console-script entry point."""
    sys.exit(int(main()))
