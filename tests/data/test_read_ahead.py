"""read_ahead: the same items in order, errors where they happened, sources closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from compval.data._read_ahead import read_ahead


def test_items_come_in_order_and_are_made_on_another_thread() -> None:
    makers: list[str] = []

    def source() -> Iterator[int]:
        for i in range(50):
            makers.append(threading.current_thread().name)
            yield i

    assert list(read_ahead(source())) == list(range(50))
    assert makers and all(name.startswith("compval-read") for name in makers)


def test_an_error_of_the_source_is_raised_at_its_item() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad read at item 3")

    got = []
    with pytest.raises(ValueError, match="item 3"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_closes_the_source_and_reads_at_most_one_ahead() -> None:
    produced: list[int] = []
    closed: list[bool] = []

    def source() -> Iterator[int]:
        try:
            for i in range(100):
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    stream = read_ahead(source())
    assert next(stream) == 0
    assert next(stream) == 1
    stream.close()
    assert closed == [True]
    assert produced == [0, 1, 2]  # the item in flight when it was closed, no more


def test_empty_source() -> None:
    assert list(read_ahead(iter(()))) == []
