"""Strict scalar types for spec fields, and a bounded echo of values for error messages.

pydantic's lax mode reads ``"on"`` and ``"false"`` as booleans, ``true`` as the integer 1 and
``"0.5"`` as a float. In a CI gate that is a silent wrong answer (a quoted ``"off"`` that
allows pickles), so every boolean, integer and float field of the spec goes through these
types instead: booleans must be booleans, integers must be integers (``8``, not ``8.0``,
``"8"`` or ``true``), floats may be written as integers (``min: 1``) but never as text or
booleans.

Every value a spec error quotes goes through :func:`echo`, which never expands more than a
few hundred characters of it: the value may be a huge string, or a structure built from
YAML aliases whose full ``repr`` would take gigabytes.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

__all__ = [
    "ECHO_CHARS",
    "MAX_BATCH_SIZE",
    "MAX_CLIENTS",
    "BatchSize",
    "ClientCount",
    "SpecBool",
    "SpecFloat",
    "SpecInt",
    "echo",
    "strict_int",
]

#: The longest echo of a value in an error message, in characters.
ECHO_CHARS = 200
#: The largest batch size any spec field or flag accepts (the accuracy run's ``batch_size``,
#: ``performance.batch_sizes``, ``concurrency_batch_size``). A larger one cannot be a real
#: setting: 100,000,000 rows used to be accepted and end in a MemoryError after the whole run.
MAX_BATCH_SIZE = 1_000_000
#: The most concurrent clients of the load test: each client is a thread.
MAX_CLIENTS = 1024

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = ECHO_CHARS
_REPR.maxother = ECHO_CHARS
for _name in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_REPR, _name, 8)


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A ``repr`` of ``value`` for an error message, at most ``limit`` characters.

    reprlib bounds the work (nesting depth, items per container, string length), so this is
    fast whatever ``value`` holds; the result is then cut to ``limit``.

    Example:
        >>> echo("x" * 1000)[:5], len(echo("x" * 1000)) <= 200
        ("'xxxx", True)
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # a user type whose __repr__ raises: name it instead
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _is_numpy_bool(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "kind", None) == "b" and getattr(value, "ndim", None) == 0


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if _is_numpy_bool(value):
        return bool(value)  # e.g. a config built with numpy
    raise ValueError(
        f"expected true or false (unquoted); got the {_kind(value)} {echo(value)}. Quoted "
        'text such as "on" or "false" is not a boolean'
    )


def strict_int(value: Any) -> Any:
    """An integer (numpy integers too) as ``int``; anything else is a ValueError."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(
        f"expected a whole number such as 8; got the {_kind(value)} {echo(value)}. "
        "Write the number without quotes or decimals"
    )


def _strict_float(value: Any) -> Any:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(
        f"expected a number such as 0.01; got the {_kind(value)} {echo(value)}. Write the "
        "number without quotes"
    )


#: A boolean field: only ``true``/``false`` (YAML booleans), never text or numbers.
SpecBool = Annotated[bool, BeforeValidator(_strict_bool)]
#: An integer field: integers only (numpy integers too), never booleans, floats or text.
SpecInt = Annotated[int, BeforeValidator(strict_int)]
#: A float field: any real number (integers included), never booleans or text.
SpecFloat = Annotated[float, BeforeValidator(_strict_float)]
#: A batch size: an integer from 1 to ``MAX_BATCH_SIZE``.
BatchSize = Annotated[SpecInt, Field(ge=1, le=MAX_BATCH_SIZE)]
#: A concurrent client count: an integer from 1 to ``MAX_CLIENTS``.
ClientCount = Annotated[SpecInt, Field(ge=1, le=MAX_CLIENTS)]
