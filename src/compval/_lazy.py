"""Lazy imports of optional runtimes, with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from compval.errors import MissingDependencyError

__all__ = ["DeferredModule", "defer_imports", "lazy_import"]


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


class _DeferredImports(importlib.abc.MetaPathFinder):
    """Finds the named modules where Python would, and loads them on first attribute access."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # not a plain file module: imported as usual
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def defer_imports(names: Iterable[str]) -> None:
    """Make an import of any of ``names`` (full dotted names) run the module on first use.

    The import binds the module (``sys.modules``, the parent package's attribute) without
    running it; its code runs when one of its attributes is first read, which is then as if
    it had been imported there (``importlib.util.LazyLoader``). For modules that a library
    imports and never uses. Process-wide: only the ``compval`` command calls it, for its own
    process (``cli.main.run``). A module already imported stays as it is.
    """
    finder = next((f for f in sys.meta_path if isinstance(f, _DeferredImports)), None)
    if finder is None:
        finder = _DeferredImports()
        sys.meta_path.insert(0, finder)
    finder.names.update(names)
