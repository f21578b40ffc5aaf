"""Properties of the batch (Polars) and online feature paths over random event histories."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.batch import build_features, collect
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from features.engines import load_events
from features.labels import build_labels
from features.online import OnlineFeatureEvaluator
from features.sharding import write_features_sharded
from features.testing import (
    AS_OF,
    assert_features_close,
    event_lists,
    events,
    feature_matrix,
    to_frame,
)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DAY_S = 86_400


def polars_features(
    rows: list[dict[str, Any]], config: FeatureConfig | None = None
) -> pl.DataFrame:
    return collect(build_features(to_frame(rows), AS_OF, engine="polars", config=config))


def online_features(
    rows: list[dict[str, Any]], config: FeatureConfig | None = None
) -> pl.DataFrame:
    """Online vectors of the visitors the batch path would output (active in the window)."""
    evaluator = OnlineFeatureEvaluator(config)
    by_visitor: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_visitor.setdefault(row["visitor_id"], []).append(row)
    records = []
    for visitor, history in sorted(by_visitor.items()):
        vector = evaluator.vector(history, AS_OF)
        if vector[FEATURE_COLUMNS.index("n_events")] > 0:
            records.append(
                {"visitor_id": visitor, **dict(zip(FEATURE_COLUMNS, vector, strict=True))}
            )
    frame = pl.DataFrame(
        records, schema={"visitor_id": pl.String, **dict.fromkeys(FEATURE_COLUMNS, pl.Float64)}
    )
    batch_dtypes = polars_features([]).schema
    return frame.with_columns(
        pl.col(c).fill_nan(None).cast(batch_dtypes[c]) for c in FEATURE_COLUMNS
    )


@SETTINGS
@given(history=event_lists(), later=event_lists(min_size=1, max_size=10, min_offset_s=0))
def test_events_at_or_after_as_of_never_change_features(
    history: list[dict[str, Any]], later: list[dict[str, Any]]
) -> None:
    assert_features_close(polars_features(history + later), polars_features(history))


@SETTINGS
@given(history=event_lists())
def test_online_path_equals_batch_path(history: list[dict[str, Any]]) -> None:
    assert_features_close(online_features(history), polars_features(history))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=event_lists(), shards=st.integers(2, 4))
def test_sharded_features_equal_the_single_plan(history: list[dict[str, Any]], shards: int) -> None:
    # The split stores some string columns as Categorical; no feature value may change.
    with tempfile.TemporaryDirectory() as folder:
        out = write_features_sharded(to_frame(history), AS_OF, Path(folder), shards=shards)
        sharded = pl.read_parquet(out / "*.parquet")
    whole = polars_features(history)
    assert sharded.sort("visitor_id").equals(whole.sort("visitor_id"))


@SETTINGS
@given(
    history=event_lists(min_offset_s=-400 * _DAY_S),
    lookback_h=st.none() | st.integers(1, 40 * 24),
    timeout_min=st.integers(1, 90),
    offset_q=st.integers(-48, 56),
)
def test_online_equals_batch_under_any_config(
    history: list[dict[str, Any]], lookback_h: int | None, timeout_min: int, offset_q: int
) -> None:
    """Any lookback (an hour to 40 days, across the activity buckets, or full history over
    events up to 400 days old), session timeout and local time offset (in quarter hours, as
    shops' zones are)."""
    config = FeatureConfig(
        lookback=None if lookback_h is None else timedelta(hours=lookback_h),
        session_timeout=timedelta(minutes=timeout_min),
        local_time_offset=timedelta(minutes=15 * offset_q),
    )
    assert_features_close(online_features(history, config), polars_features(history, config))


def _labels(rows: list[dict[str, Any]], gap: timedelta, horizon: timedelta) -> dict[str, int]:
    events_frame = load_events(to_frame(rows), engine="polars")
    labels = build_labels(events_frame, AS_OF, gap=gap, horizon=horizon).to_native().collect()
    return dict(zip(labels["visitor_id"], labels["label"], strict=True))


@SETTINGS
@given(
    inside=event_lists(min_offset_s=-2 * _DAY_S, max_offset_s=12 * _DAY_S),
    outside=st.lists(
        st.one_of(events(max_offset_s=_DAY_S), events(min_offset_s=_DAY_S + 3 * _DAY_S)),
        max_size=20,
    ),
)
def test_labels_use_only_events_inside_the_label_window(
    inside: list[dict[str, Any]], outside: list[dict[str, Any]]
) -> None:
    gap, horizon = timedelta(days=1), timedelta(days=3)
    lo, hi = AS_OF + gap, AS_OF + gap + horizon
    in_window = [e for e in inside if lo <= e["event_time"] < hi]
    out_window = [e for e in inside + outside if not lo <= e["event_time"] < hi]
    assert _labels(in_window + out_window, gap, horizon) == _labels(in_window, gap, horizon)


_LOOKBACK, _HORIZON = timedelta(days=30), timedelta(days=14)
_MICROS = timedelta(microseconds=1)
#: The windows' edges and a microsecond either side: where an event could fall in both or none.
_EDGES = [
    edge + nudge
    for edge in (-_LOOKBACK, timedelta(0), _HORIZON)
    for nudge in (-_MICROS, timedelta(0), _MICROS)
]


@SETTINGS
@given(
    offsets=st.lists(
        st.one_of(
            st.sampled_from(_EDGES),
            st.timedeltas(-_LOOKBACK - timedelta(days=2), _HORIZON + timedelta(days=2)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_feature_and_label_windows_partition_time(offsets: list[timedelta]) -> None:
    """Issue 22: features read ``[T - lookback, T)``, labels ``[T, T + horizon)``. A purchase
    inside their union is seen by exactly one of them, and none outside it: a day-stamped
    order on the cut day is a label, not lost to both (as with ``(T, T + h]``)."""
    rows = [
        {**_purchase(f"v{i}", AS_OF + offset), "transaction_id": f"t{i}"}
        for i, offset in enumerate(offsets)
    ]
    config = FeatureConfig(lookback=_LOOKBACK)
    featured = set(polars_features(rows, config)["visitor_id"])
    labelled = set(_labels(rows, timedelta(0), _HORIZON))
    for i, offset in enumerate(offsets):
        visitor = f"v{i}"
        assert (visitor in featured) == (-_LOOKBACK <= offset < timedelta(0)), offset
        assert (visitor in labelled) == (timedelta(0) <= offset < _HORIZON), offset
        assert not (visitor in featured and visitor in labelled)


def _purchase(visitor: str, at: datetime) -> dict[str, Any]:
    return {
        "visitor_id": visitor, "event_time": at, "event_name": "purchase", "item_id": "a",
        "item_category": None, "price": 10.0, "quantity": 1, "revenue": 10.0,
        "transaction_id": None, "session_id": None, "user_id": None, "source": None,
    }  # fmt: skip


@SETTINGS
@given(history=event_lists(max_size=25))
def test_feature_columns_and_dtypes_are_stable(history: list[dict[str, Any]]) -> None:
    features = polars_features(history)
    assert features.columns == ["visitor_id", "as_of", *FEATURE_COLUMNS]
    counts = {c: dtype for c, dtype in features.schema.items() if dtype == pl.Int64}
    assert all(features[c].null_count() == 0 for c in counts)
    assert (features["n_events"] > 0).all()
    assert np.isfinite(features.select(list(counts)).to_numpy()).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=event_lists(), picked=st.sets(st.sampled_from(FEATURE_COLUMNS), min_size=1))
def test_an_evaluator_for_some_features_gives_those_unchanged(
    history: list[dict[str, Any]], picked: set[str]
) -> None:
    """Evaluating a subset (and what it derives from) changes none of its values; features
    outside it are left NaN."""
    full = OnlineFeatureEvaluator().vector(history, AS_OF)
    some = OnlineFeatureEvaluator(only=picked).vector(history, AS_OF)
    chosen = np.array([name in picked for name in FEATURE_COLUMNS])
    np.testing.assert_array_equal(some[chosen], full[chosen])
    skipped = OnlineFeatureEvaluator(only={"n_events"}).vector(history, AS_OF)
    assert np.isnan(np.delete(skipped, FEATURE_COLUMNS.index("n_events"))).all()


@st.composite
def visitor_batches(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[datetime]]:
    """Histories of a few visitors with their own as_of (within two days of ``AS_OF``), in a
    random order that includes an empty history and one with every event after its as_of."""
    histories = draw(st.lists(event_lists(max_size=15), min_size=1, max_size=5))
    histories += [[], draw(event_lists(min_size=1, max_size=5, min_offset_s=2 * _DAY_S))]
    order = draw(st.permutations(range(len(histories))))
    shifts = draw(
        st.lists(
            st.sampled_from([-2 * _DAY_S, -1, 0, 1800, 2 * _DAY_S])
            | st.integers(-2 * _DAY_S, 2 * _DAY_S),
            min_size=len(histories),
            max_size=len(histories),
        )
    )
    return [histories[i] for i in order], [AS_OF + timedelta(seconds=s) for s in shifts]


def batch_row(history: list[dict[str, Any]], as_of: datetime) -> np.ndarray | None:
    """The batch (Polars) features of one visitor as a float row, None if not in the output."""
    frame = to_frame([{**event, "visitor_id": "v"} for event in history])
    features = collect(build_features(frame, as_of, engine="polars"))
    return feature_matrix(features)[0] if features.height else None


def assert_rows_close(actual: np.ndarray, expected: np.ndarray) -> None:
    for j, name in enumerate(FEATURE_COLUMNS):
        np.testing.assert_allclose(actual[j], expected[j], rtol=1e-9, atol=1e-9, err_msg=name)


@SETTINGS
@given(batch=visitor_batches())
def test_matrix_of_many_visitors_equals_each_visitor_alone(
    batch: tuple[list[list[dict[str, Any]]], list[datetime]],
) -> None:
    """Each row of ``matrix`` is its visitor's features as of its own time: equal to the
    batch path and to a batch of that visitor alone (no session, purchase or distinct value
    leaks from one visitor to the next)."""
    histories, as_of = batch
    evaluator = OnlineFeatureEvaluator()
    matrix = evaluator.matrix(histories, as_of)
    assert matrix.shape == (len(histories), len(FEATURE_COLUMNS))
    for row, history, moment in zip(matrix, histories, as_of, strict=True):
        assert_rows_close(row, evaluator.matrix([history], [moment])[0])
        expected = batch_row(history, moment)
        if expected is None:  # no event in the window
            assert row[FEATURE_COLUMNS.index("n_events")] == 0
            assert_rows_close(row, evaluator.vector([], moment))
        else:
            assert_rows_close(row, expected)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=visitor_batches(), picked=st.sets(st.sampled_from(FEATURE_COLUMNS), min_size=1))
def test_a_matrix_of_some_features_gives_those_unchanged(
    batch: tuple[list[list[dict[str, Any]]], list[datetime]], picked: set[str]
) -> None:
    histories, as_of = batch
    full = OnlineFeatureEvaluator().matrix(histories, as_of)
    some = OnlineFeatureEvaluator(only=picked).matrix(histories, as_of)
    chosen = np.array([name in picked for name in FEATURE_COLUMNS])
    np.testing.assert_array_equal(some[:, chosen], full[:, chosen])
    # A derived feature brings its public inputs along (here n_events); nothing else.
    ratio = OnlineFeatureEvaluator(only={"share_events_1d"}).matrix(histories, as_of)
    kept = [FEATURE_COLUMNS.index(n) for n in ("share_events_1d", "n_events")]
    np.testing.assert_array_equal(ratio[:, kept], full[:, kept])
    assert np.isnan(np.delete(ratio, kept, axis=1)).all()


def test_matrix_takes_one_as_of_for_all_or_one_each() -> None:
    evaluator = OnlineFeatureEvaluator()
    assert evaluator.matrix([], AS_OF).shape == (0, len(FEATURE_COLUMNS))
    with pytest.raises(ValueError, match="2 histories but 1 as_of"):
        evaluator.matrix([[], []], [AS_OF])
