"""Dynamic batching (``serving.api.batching``) and the rounds of a re-score batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.api.batching import MicroBatcher


class _Recorder:
    """Doubles each job; the first batch waits for a gate, so that jobs queue behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.running = threading.Event()

    def __call__(self, jobs: Sequence[int]) -> list[int | BaseException]:
        self.running.set()
        self.gate.wait(10)
        self.batches.append(list(jobs))
        return [ValueError(f"bad {j}") if j < 0 else 2 * j for j in jobs]


def test_jobs_waiting_together_run_as_one_batch_and_each_gets_its_own_result() -> None:
    recorder = _Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher("test", recorder, max_batch=4)
    batcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(batcher.call, 0)
            assert recorder.running.wait(10)
            rest = [pool.submit(batcher.call, j) for j in (1, 2, 3, 4, 5, -6)]
            while batcher._queue.qsize() < len(rest):
                time.sleep(0.001)
            recorder.gate.set()
            assert first.result() == 0
            assert [f.result() for f in rest[:5]] == [2, 4, 6, 8, 10]
            with pytest.raises(ValueError, match="bad -6"):
                rest[5].result()
    finally:
        batcher.stop()
    # The first ran alone; the six that queued behind it went in batches of at most four.
    assert recorder.batches[0] == [0]
    assert sorted(j for b in recorder.batches[1:] for j in b) == [-6, 1, 2, 3, 4, 5]
    assert [len(b) for b in recorder.batches[1:]] == [4, 2]


def test_submit_awaits_without_blocking_the_loop_and_a_failed_batch_fails_every_job() -> None:
    def explode(jobs: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("store down")

    async def scenario() -> None:
        doubled: MicroBatcher[int, int] = MicroBatcher("ok", lambda jobs: [2 * j for j in jobs])
        failing: MicroBatcher[int, int] = MicroBatcher("failing", explode)
        doubled.start()
        failing.start()
        try:
            assert await asyncio.gather(*(doubled.submit(j) for j in range(20))) == [
                2 * j for j in range(20)
            ]
            outcomes = await asyncio.gather(
                *(failing.submit(j) for j in range(3)), return_exceptions=True
            )
            assert all(isinstance(o, RuntimeError) for o in outcomes)
        finally:
            doubled.stop()
            failing.stop()

    asyncio.run(scenario())


def test_not_started_runs_inline() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher("inline", lambda jobs: [j + 1 for j in jobs])
    assert batcher.call(1) == 2
    assert asyncio.run(batcher.submit(2)) == 3
