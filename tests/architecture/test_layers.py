"""The floor plan holds: no private module is imported across packages, the CLI starts
without heavy imports, and every exception has exactly one exit code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import compval
import compval.errors as errors
from compval.errors import EXIT_CODES, ExitCode, exit_code_for

SRC = Path(compval.__file__).parent


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def test_no_private_module_is_imported_from_another_package() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "compval" or len(parts) < 3:
                continue  # compval.<ground module> (errors, types, _lazy, _version) is fine
            private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
            if private is None or private < 2:
                continue
            owner = ".".join(parts[:private])
            if not (here == owner or here.startswith(owner + ".")):
                offenders.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_cli_help_and_version_import_no_heavy_library(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from compval.cli.main import main\n"
        f"main({argv!r})\n"
        "heavy = ('scipy', 'pandas', 'pyarrow', 'onnxruntime', 'onnx', 'torch', 'sklearn',\n"
        "         'mlflow', 'wandb', 'clearml')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _leaf_exceptions() -> list[type[BaseException]]:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and not issubclass(obj, Warning)
        and obj.__module__ == errors.__name__
    ]
    return [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]


def test_every_leaf_exception_has_its_own_entry_in_the_exit_code_table() -> None:
    leaves = _leaf_exceptions()
    assert len(leaves) >= 10
    missing = [c.__name__ for c in leaves if c not in EXIT_CODES]
    assert missing == []


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.UsageError("x"), ExitCode.USAGE_ERROR),
        (errors.SpecValidationError("x", path="a"), ExitCode.USAGE_ERROR),
        (errors.SpecParseError("x"), ExitCode.USAGE_ERROR),
        (errors.InvalidParameterError("x"), ExitCode.USAGE_ERROR),
        (errors.MissingDependencyError("x"), ExitCode.RUN_ERROR),
        (errors.ModelLoadError("x"), ExitCode.RUN_ERROR),
        (errors.InputMismatchError("x"), ExitCode.RUN_ERROR),
        (errors.InferenceError("x"), ExitCode.RUN_ERROR),
        (errors.DataError("x"), ExitCode.RUN_ERROR),
        (errors.ProfilingError("x"), ExitCode.RUN_ERROR),
        (errors.OutputError("x"), ExitCode.RUN_ERROR),
        (errors.EmptyAccumulatorError("x"), ExitCode.INTERNAL_ERROR),
        (errors.IncompatibleMergeError("x"), ExitCode.INTERNAL_ERROR),
        (errors.InternalError("x"), ExitCode.INTERNAL_ERROR),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (ValueError("a bug"), ExitCode.INTERNAL_ERROR),
    ],
)
def test_exit_code_of_each_error(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) is code


def test_exceptions_are_exported_from_the_package() -> None:
    for name in ("CompvalError", "SpecError", "DataError", "AdapterError", "ExitCode"):
        assert getattr(compval, name) is getattr(errors, name)
