"""Lazy imports of optional runtimes, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from compval.errors import MissingDependencyError

__all__ = ["lazy_import"]


def lazy_import(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'compval[extra]'``.

    Args:
        module: Dotted module name, e.g. ``"onnxruntime"``.
        extra: The compval extra that installs it, e.g. ``"onnx"``.

    Raises:
        MissingDependencyError: The module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is not installed; it is needed here. "
            f"Install it with: pip install 'compval[{extra}]'"
        ) from exc
