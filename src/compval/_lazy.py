"""Lazy imports of optional runtimes, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from compval.errors import MissingDependencyError

__all__ = ["DeferredModule", "lazy_import"]


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


class DeferredModule:
    """A module imported on first attribute access (for a hard dependency that is slow to import).

    ``scipy.stats`` takes about a second to import; modules that use it hold
    ``sps = DeferredModule("scipy.stats")`` so that importing compval (and ``compval --help``)
    does not pay for it.

    Example:
        >>> math = DeferredModule("math")
        >>> math.sqrt(4.0)
        2.0
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)
