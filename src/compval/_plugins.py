"""Plugins: objects that other packages register through entry points (runtimes, sinks)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from compval.errors import InvalidParameterError

__all__ = ["load_entry_points"]

T = TypeVar("T")


def load_entry_points(group: str, kind: type[T], register: Callable[[T], None]) -> None:
    """Load every entry point of ``group`` and ``register`` each object.

    Raises:
        InvalidParameterError: An entry point's object is not a ``kind``.
    """
    for ep in entry_points(group=group):
        obj = ep.load()
        if not isinstance(obj, kind):
            raise InvalidParameterError(
                f"Entry point {ep.name!r} in group {group!r}: got {type(obj).__qualname__}, "
                f"expected a {kind.__name__}."
            )
        register(obj)
