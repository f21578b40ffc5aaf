"""Benchmark: online features of a batch of visitors (``OnlineFeatureEvaluator.matrix``)
against one visitor at a time (``vector``, the baseline), in the same run.

    python -m benchmarks.online_batch [--events 15 100] [--batches 1 4 16 64] [--quick] [--json]

Histories are synthetic and reproducible: sessions of events a few minutes apart, a few
sessions over the 30-day lookback, every event type, prices, carts and purchases, stored as
the real-time path stores them (``event_time`` in microseconds). The shape of the API
benchmark is about 15 events per visitor. Each figure is the best of several repeats, in
microseconds per visitor; the ratio is against ``vector`` on the same histories. Last line:
``RESULT ratio_<batch>_at_<events>_events=…`` for every batch size above one.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from features.events.schema import EVENT_NAMES
from features.online import OnlineFeatureEvaluator
from features.rows import micros, to_micros

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)
VISITORS = 64


def history(rng: np.random.Generator, n_events: int) -> list[dict[str, Any]]:
    """One visitor's ``n_events`` events before ``AS_OF``, oldest first."""
    moment = to_micros(AS_OF) - micros(timedelta(days=int(rng.integers(1, 29))))
    session, events = f"s{rng.integers(10**6)}", []
    for _ in range(n_events):
        if rng.random() < 0.1:  # a new session hours or days later
            moment += micros(timedelta(seconds=int(rng.integers(3600, 3 * 86_400))))
            session = f"s{rng.integers(10**6)}"
        moment += micros(timedelta(seconds=int(rng.integers(1, 300))))
        events.append(
            {
                "event_time": min(moment, to_micros(AS_OF) - 1),
                "event_name": str(rng.choice(EVENT_NAMES)),
                "item_id": [None, "a", "b", "c", "d", "e"][rng.integers(6)],
                "item_category": [None, "x", "y"][rng.integers(3)],
                "price": [None, 0.5, 3.0, 10.25][rng.integers(4)],
                "quantity": [None, 1, 2][rng.integers(3)],
                "revenue": [None, 0.0, 2.5, 20.0][rng.integers(4)],
                "transaction_id": [None, "t1", "t2"][rng.integers(3)],
                "session_id": session,
                "user_id": [None, "u1"][rng.integers(2)],
            }
        )
    return events


def per_visitor_us(run: Callable[[], object], visitors: int, repeat: int) -> float:
    """Best of ``repeat`` timings of ``run`` (which evaluates ``visitors``), per visitor."""
    number = max(1, 1000 // visitors)
    best = min(timeit.repeat(run, number=number, repeat=repeat))
    return best / number / visitors * 1e6


def measure(n_events: int, batches: Sequence[int], repeat: int) -> dict[str, Any]:
    histories = [history(np.random.default_rng(i), n_events) for i in range(VISITORS)]
    evaluator = OnlineFeatureEvaluator()

    def one_by_one() -> None:
        for events in histories:
            evaluator.vector(events, AS_OF)

    result: dict[str, Any] = {"events": n_events, "vector_us": 0.0, "matrix_us": {}}
    result["vector_us"] = per_visitor_us(one_by_one, VISITORS, repeat)
    for size in batches:

        def batched(size: int = size) -> None:
            for start in range(0, VISITORS, size):
                evaluator.matrix(histories[start : start + size], AS_OF)

        result["matrix_us"][size] = per_visitor_us(batched, VISITORS, repeat)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[15, 100])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 7")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = [measure(n, args.batches, 2 if args.quick else 7) for n in args.events]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(f"{r['events']} events per visitor: vector {r['vector_us']:.0f} us/visitor")
        for size, us in r["matrix_us"].items():
            ratio = r["vector_us"] / us
            print(f"  matrix of {size:>3}: {us:6.0f} us/visitor ({ratio:.2f}x vector)")
    print(
        "RESULT "
        + " ".join(
            f"ratio_{size}_at_{r['events']}_events={r['vector_us'] / us:.2f}"
            for r in results
            for size, us in r["matrix_us"].items()
            if size > 1
        )
    )


if __name__ == "__main__":
    main()
