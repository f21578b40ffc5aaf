"""Hypothesis strategies for random event histories, shared by the feature tests.

Imported only by tests (hypothesis is a dev dependency). Histories are small and dense
around ``AS_OF`` and the window edges so that boundaries, ties, session changes and
refunds occur often.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import strategies as st

from features.events.schema import EVENT_NAMES, EVENT_SCHEMA, conform_events

AS_OF = datetime(2024, 3, 1, tzinfo=UTC)
_DAY_S = 86_400
#: Offsets from AS_OF (seconds) at the edges of the buckets and windows.
EDGE_OFFSETS_S = (
    0,
    -1,
    -30 * 60,
    -31 * 60,
    -_DAY_S,
    -7 * _DAY_S,
    -14 * _DAY_S,
    -30 * _DAY_S,
    -30 * _DAY_S - 1,
    1,
    14 * _DAY_S,
)


def _moment(offset_s: int, micros: int) -> datetime:
    return AS_OF + timedelta(seconds=offset_s, microseconds=micros)


@st.composite
def events(
    draw: st.DrawFn,
    visitors: tuple[str, ...] = ("v1", "v2", "v3"),
    min_offset_s: int = -32 * _DAY_S,
    max_offset_s: int = 16 * _DAY_S,
) -> dict[str, Any]:
    """One canonical event row (a dict) near ``AS_OF``."""
    offset = draw(
        st.one_of(
            st.integers(min_offset_s, max_offset_s),
            st.sampled_from([o for o in EDGE_OFFSETS_S if min_offset_s <= o <= max_offset_s]),
            st.integers(max(-2 * 3600, min_offset_s), max(0, min_offset_s)),
        )
    )
    small = st.sampled_from
    return {
        "visitor_id": draw(small(visitors)),
        "event_time": _moment(offset, draw(small([0, 0, 1, 999_999]))),
        "event_name": draw(small(EVENT_NAMES)),
        "item_id": draw(small([None, "a", "b", "c"])),
        "item_category": draw(small([None, "x", "y"])),
        "price": draw(small([None, 0.5, 3.0, 10.25])),
        "quantity": draw(small([None, 1, 2])),
        "revenue": draw(small([None, 0.0, 2.5, 20.0])),
        "transaction_id": draw(small([None, "t1", "t2"])),
        "session_id": draw(small([None, None, "s1", "s2"])),
        "user_id": draw(small([None, "u1"])),
        "source": None,
    }


def event_lists(
    min_size: int = 0, max_size: int = 40, **kwargs: Any
) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(events(**kwargs), min_size=min_size, max_size=max_size)


def to_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Canonical events frame of event dicts (empty rows give an empty canonical frame)."""
    return conform_events(pl.DataFrame(rows, schema=EVENT_SCHEMA))


def feature_matrix(features: pl.DataFrame) -> Any:
    """Features sorted by visitor as a float matrix (null -> NaN), columns FEATURE_COLUMNS."""
    from features.definitions import FEATURE_COLUMNS

    ordered = features.sort("visitor_id").select(FEATURE_COLUMNS)
    return ordered.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def assert_features_close(actual: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same visitors, dtypes and values (``assert_allclose``, NaN == NaN) for every feature."""
    import numpy as np

    from features.definitions import FEATURE_COLUMNS

    assert sorted(actual["visitor_id"].to_list()) == sorted(expected["visitor_id"].to_list())
    assert actual.select(FEATURE_COLUMNS).schema == expected.select(FEATURE_COLUMNS).schema
    a, e = feature_matrix(actual), feature_matrix(expected)
    for j, name in enumerate(FEATURE_COLUMNS):
        np.testing.assert_allclose(a[:, j], e[:, j], rtol=1e-9, atol=1e-9, err_msg=name)


def random_events(n: int, seed: int, visitors: int = 8) -> list[dict[str, Any]]:
    """``n`` reproducible random event dicts around ``AS_OF`` (for tests outside ``@given``)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        offset = rng.choice([rng.randint(-32 * _DAY_S, 16 * _DAY_S), rng.choice(EDGE_OFFSETS_S)])
        rows.append(
            {
                "visitor_id": f"v{rng.randrange(visitors)}",
                "event_time": _moment(offset, rng.choice([0, 1, 999_999])),
                "event_name": rng.choice(EVENT_NAMES),
                "item_id": rng.choice([None, "a", "b", "c"]),
                "item_category": rng.choice([None, "x", "y"]),
                "price": rng.choice([None, 0.5, 3.0, 10.25]),
                "quantity": rng.choice([None, 1, 2]),
                "revenue": rng.choice([None, 0.0, 2.5, 20.0]),
                "transaction_id": rng.choice([None, "t1", "t2"]),
                "session_id": rng.choice([None, "s1", "s2"]),
                "user_id": rng.choice([None, "u1"]),
                "source": None,
            }
        )
    return rows
