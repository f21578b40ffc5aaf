from __future__ import annotations

from collections.abc import Iterator

import pytest

from features.ingest.prefetch import prefetched


def test_keeps_order_and_items() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))


def test_reraises_the_producers_error_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 3 is broken")

    seen: list[int] = []
    with pytest.raises(ValueError, match="line 3 is broken"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_consumer_stopping_early_does_not_hang() -> None:
    for item in prefetched(iter(range(1_000_000))):
        if item == 5:
            break
