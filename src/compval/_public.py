"""What a package's public objects say their module is: one rule for every package face."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import FunctionType

__all__ = ["name_public_functions"]


def name_public_functions(
    package: str, namespace: Mapping[str, object], names: Iterable[str]
) -> None:
    """Give the functions among ``names`` the module ``package`` if its private modules define them.

    Tracebacks, reprs and the API docs then show ``compval.stats.bca_intervals`` rather than
    the private module it lives in, and pickles of a function find it through the package.

    Classes keep the module that defines them: ``typing.get_type_hints`` (which pydantic,
    dataclass serializers and Sphinx call) resolves a class's string annotations in that
    module, and compval's modules postpone annotations, so a renamed class's hints named
    things its new module does not hold. (A function's hints are resolved in its own
    globals, whatever its ``__module__`` says.) Objects the package re-exports from another
    package (``compval.results`` classes, typing aliases) are never touched: before this rule,
    the module of ``compval.results.ModelProfile`` depended on which package was imported last.

    Args:
        package: The package's ``__name__``.
        namespace: Its ``globals()``.
        names: Its ``__all__``.
    """
    private = package + "._"
    for name in names:
        obj = namespace.get(name)  # absent: loaded on first use by the package's __getattr__
        if isinstance(obj, FunctionType) and obj.__module__.startswith(private):
            obj.__module__ = package
