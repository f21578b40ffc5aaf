"""Read the next batch while the current one is validated.

Arrow's CSV parser and Polars release the GIL, so on two cores reading and validating
overlap instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` ahead on a background thread.

    An exception raised by ``items`` is re-raised in the consumer at the same position.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
        except BaseException as error:  # handed to the consumer, not lost in the thread
            slots.put(_Failure(error))
            return
        slots.put(_DONE)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
