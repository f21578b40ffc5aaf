"""Stored histories: posted events encode like batch histories; reading merges, drops exact
duplicates, orders by time and keeps the latest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from features.definitions import FeatureConfig
from features.events.schema import conform_events
from serving.store.base import RunInfo
from serving.store.history import (
    EARLIEST,
    HISTORY_FIELDS,
    StoredHistory,
    batch_histories,
    encode_events,
    read_history,
)

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)
_NONE = dict.fromkeys(HISTORY_FIELDS[1:])


def _events() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "visitor_id": ["a", "a", "a", "b"],
            "event_time": [AS_OF - timedelta(days=d) for d in (2, 1, 40, 1)],
            "event_name": ["view_item", "purchase", "page_view", "add_to_cart"],
            "item_id": ["i1", None, None, "i2"],
            "price": [9.99, None, None, 0.1 + 0.2],
            "quantity": [1, None, None, 3],
            "revenue": [None, 12.5, None, None],
            "transaction_id": [None, "t1", None, None],
            "session_id": ["s1", "s1", None, None],
        }
    ).pipe(conform_events)


def test_posted_events_encode_like_batch_histories() -> None:
    events = _events()
    batch = batch_histories(events.lazy(), AS_OF, timedelta(days=30), keep=10).collect()
    a = orjson.loads(batch.filter(pl.col("visitor_id") == "a")["history"][0])
    posted = [orjson.loads(e) for e in encode_events(events.filter(pl.col("visitor_id") == "a"))]
    assert a == sorted(posted[:2], key=lambda e: e["event_time"])  # the 40-day-old one is out


def test_read_history_merges_dedupes_and_bounds() -> None:
    events = _events().filter(pl.col("visitor_id") == "a")
    encoded = encode_events(events)
    batch = b"[" + b",".join(encoded[:2]) + b"]"
    merged = read_history(batch, [encoded[0], encoded[2]], keep=10)
    assert len(merged) == 3
    assert [e["event_time"] for e in merged] == sorted(e["event_time"] for e in merged)
    assert len(read_history(batch, [encoded[2]], keep=2)) == 2
    assert read_history(None, [], keep=5) == []


def _reference_read(batch: bytes | None, posted: list[bytes], keep: int) -> list[dict[str, Any]]:
    """Every event keyed, the first of equal ones kept, ordered by time: what reading means."""
    events = (orjson.loads(batch) if batch else []) + [orjson.loads(e) for e in posted]
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    for event in events:
        first.setdefault(tuple(event.get(f) for f in HISTORY_FIELDS), event)
    return sorted(first.values(), key=lambda e: e["event_time"])[-keep:]


_EVENT = st.fixed_dictionaries(
    {
        "event_time": st.integers(0, 3),
        "event_name": st.sampled_from(["page_view", "add_to_cart"]),
        "item_id": st.sampled_from([None, "i1"]),
        "price": st.sampled_from([None, 1.5, 0.0]),
    }
)


@given(
    batch=st.lists(_EVENT, max_size=6, unique_by=lambda e: tuple(sorted(e.items()))),
    posted=st.lists(_EVENT, max_size=6),
    repeated=st.lists(st.integers(0, 20), max_size=4),
    keep=st.integers(1, 12),
)
def test_reading_keys_the_batch_only_where_needed_and_means_the_same(
    batch: list[dict[str, Any]],
    posted: list[dict[str, Any]],
    repeated: list[int],
    keep: int,
) -> None:
    """Posted events repeating one of the batch (the lake's, no two equal) or one posted
    before are dropped, however few events are keyed on the way."""
    full = [{f: e.get(f) for f in HISTORY_FIELDS} for e in batch]
    stored = batch and b"[" + b",".join(orjson.dumps(e) for e in full) + b"]"
    again = [full[i % len(full)] for i in repeated] if full else []
    posts = encode_events([{f: e.get(f) for f in HISTORY_FIELDS} for e in posted + again])
    assert read_history(stored or None, posts, keep) == _reference_read(stored or None, posts, keep)


def test_a_full_history_model_stores_every_past_event_up_to_the_cap() -> None:
    batch = batch_histories(_events().lazy(), AS_OF, None, keep=10).collect()
    a = orjson.loads(batch.filter(pl.col("visitor_id") == "a")["history"][0])
    assert len(a) == 3  # the 40-day-old event is kept
    capped = batch_histories(_events().lazy(), AS_OF, None, keep=2).collect()
    a = orjson.loads(capped.filter(pl.col("visitor_id") == "a")["history"][0])
    assert len(a) == 2  # SERVING__MAX_HISTORY_EVENTS still bounds it


def test_a_full_history_is_complete_only_when_stored_whole_and_uncut() -> None:
    events = [{"event_time": 0}]
    whole = StoredHistory(events, truncated=False)
    assert whole.complete(AS_OF, None, EARLIEST)
    assert not whole.complete(AS_OF, None, AS_OF - timedelta(days=30))  # a 30-day run's
    assert not whole.complete(AS_OF, None, None)
    assert not StoredHistory(events, truncated=True).complete(AS_OF, None, EARLIEST)


def test_a_full_history_run_keeps_every_posted_event_it_carries() -> None:
    config = FeatureConfig(lookback=None)
    assert config.reads_within(None) and not config.reads_within(timedelta(days=400))
    assert FeatureConfig().reads_within(None)
    run = RunInfo("r", "1", AS_OF, AS_OF, 0, (), None, feature_config=config)
    assert run.history_start() == EARLIEST
    assert RunInfo.from_json(run.to_json()).feature_config == config
    kept, _ = run.carry_window().carried(encode_events([{"event_time": 0, **_NONE}]))
    assert len(kept) == 1
