"""Produce the next item of an iterator on a worker thread while the caller uses this one."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar, cast

__all__ = ["read_ahead"]

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """Yield ``items`` in order, computing each next one on a worker thread meanwhile.

    Worth it when producing an item mostly runs outside the GIL (decoding a file, copying
    arrays) and the caller's work does too (model inference). Exceptions from ``items`` are
    raised here, at the item they replace. At most one item is produced ahead. Closing this
    generator early waits for that item, then closes ``items`` (which may hold a file open).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="compval-read") as worker:
        pending: Future[object] = worker.submit(next, items, _DONE)
        try:
            while True:
                item = pending.result()
                if item is _DONE:
                    return
                pending = worker.submit(next, items, _DONE)
                yield cast(T, item)
        finally:
            # A generator cannot be closed while another thread runs it: wait for the item
            # in flight (its result or error no longer matters), then close the source.
            wait([pending])
            close = getattr(items, "close", None)
            if close is not None:
                close()
