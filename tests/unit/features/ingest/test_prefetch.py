from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from features.ingest.prefetch import prefetched


def _producers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "prefetch"}


def _assert_producer_ends(before: set[threading.Thread]) -> None:
    """The generator's close joins its producer: no new prefetch thread is left running."""
    assert _producers() - before == set()


def test_keeps_order_and_items() -> None:
    before = _producers()
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))
    _assert_producer_ends(before)


def test_reraises_the_producers_error_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 3 is broken")

    before = _producers()
    seen: list[int] = []
    with pytest.raises(ValueError, match="line 3 is broken"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]
    _assert_producer_ends(before)


def test_consumer_stopping_early_ends_the_producer() -> None:
    """The producer is blocked on a full queue when the consumer stops: closing the
    generator must unblock it and join it, with a million items still unread."""
    before = _producers()
    with closing(prefetched(iter(range(1_000_000)))) as items:
        for item in items:
            if item == 5:
                break
        assert len(_producers() - before) == 1  # still running until the generator closes
    _assert_producer_ends(before)
