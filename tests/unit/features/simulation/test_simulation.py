"""The simulator: determinism, the canonical contract, plausible behaviour, and exact truth."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.events.schema import (
    ADS_CONSENTS,
    CONTACT_SCHEMA,
    EMAIL_STATUSES,
    EVENT_NAMES,
    EVENT_SCHEMA,
)
from features.ingest.identifiers import normalise_identifiers
from features.simulation import (
    SimulatedData,
    SimulationConfig,
    as_of_purchase_probability,
    events_for_target,
    last_seen,
    simulate,
    true_purchase_probability,
)
from features.simulation.writer import write_simulation

CONFIG = SimulationConfig(visitors=20_000, days=90, seed=7)
PURCHASE = pl.col("event_name") == "purchase"


@pytest.fixture(scope="module")
def data() -> SimulatedData:
    return simulate(CONFIG)


def _purchasers(events: pl.DataFrame, after: datetime, until: datetime) -> pl.Series:
    """Visitors with a purchase in ``(after, until]``."""
    window = (pl.col("event_time") > after) & (pl.col("event_time") <= until)
    return events.filter(PURCHASE & window).get_column("visitor_id").unique()


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank-based ROC AUC (Mann-Whitney), ties counted half."""
    ranks = pl.Series(scores).rank("average").to_numpy()
    positives = int(labels.sum())
    negatives = labels.size - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def test_same_seed_gives_same_data_and_another_seed_does_not() -> None:
    small = SimulationConfig(visitors=2_000, seed=3)
    first, second = simulate(small), simulate(small)
    assert first.events.equals(second.events)
    assert first.contacts.equals(second.contacts)
    assert first.truth.equals(second.truth)
    other = simulate(SimulationConfig(visitors=2_000, seed=4))
    assert not first.events.equals(other.events)


def test_tables_follow_the_canonical_schemas(data: SimulatedData) -> None:
    events, contacts = data.events, data.contacts
    assert dict(events.schema) == EVENT_SCHEMA
    assert dict(contacts.schema) == CONTACT_SCHEMA
    assert events.get_column("source").unique().to_list() == ["simulator"]
    assert events.get_column("event_time").is_sorted()
    assert events.get_column("event_time").min() >= CONFIG.start  # type: ignore[operator]
    assert events.get_column("event_time").max() < CONFIG.end  # type: ignore[operator]
    assert set(events.get_column("event_name").unique()) == set(EVENT_NAMES)
    assert (
        events.select("visitor_id", "event_time", "event_name").null_count().sum_horizontal()[0]
        == 0
    )
    assert contacts.height == data.truth.height == CONFIG.visitors
    assert contacts.get_column("visitor_id").is_unique().all()
    assert set(contacts.get_column("email_status").unique()) <= set(EMAIL_STATUSES)
    assert set(contacts.get_column("ads_consent").unique()) <= set(ADS_CONSENTS)
    assert contacts.get_column("visitor_id")[123] == "v0000123"


def test_rows_follow_the_grain(data: SimulatedData) -> None:
    events = data.events
    assert not events.is_duplicated().any()
    orders = (
        events.filter(PURCHASE)
        .group_by("transaction_id")
        .agg(
            pl.col("visitor_id").n_unique().alias("visitors"),
            pl.col("event_time").n_unique().alias("times"),
            (pl.col("revenue") - pl.col("price") * pl.col("quantity")).abs().max().alias("error"),
        )
    )
    assert orders.height > 100
    assert orders.select((pl.col("visitors") == 1) & (pl.col("times") == 1)).to_series().all()
    assert orders.get_column("error").max() < 0.01  # type: ignore[operator]
    not_orders = events.filter(~pl.col("event_name").is_in(["purchase", "refund"]))
    assert not_orders.get_column("revenue").null_count() == not_orders.height
    refunds = events.filter(pl.col("event_name") == "refund").get_column("transaction_id")
    purchased = events.filter(PURCHASE).get_column("transaction_id")
    assert refunds.len() > 0
    assert refunds.is_in(purchased.implode()).all()


def test_funnel_ratios_are_plausible(data: SimulatedData) -> None:
    def has(name: str) -> pl.Expr:
        return (pl.col("event_name") == name).any().alias(name)

    sessions = (
        data.events.filter(pl.col("session_id").is_not_null())
        .group_by("session_id")
        .agg(has("view_item"), has("add_to_cart"), has("begin_checkout"), has("purchase"))
        .sum()
    )
    count = data.events.get_column("session_id").n_unique() - 1  # minus the null of refunds
    row = sessions.row(0, named=True)
    assert 0.5 < row["view_item"] / count < 0.9
    assert 0.03 < row["add_to_cart"] / count < 0.12
    assert 0.3 < row["begin_checkout"] / row["add_to_cart"] < 0.7
    assert 0.45 < row["purchase"] / row["begin_checkout"] < 0.85
    assert 7 < data.events.height / CONFIG.visitors < 14


def test_two_to_four_percent_of_active_visitors_buy_in_a_30_day_window(
    data: SimulatedData,
) -> None:
    for offset in (0, 30, 60):
        lo = CONFIG.start + timedelta(days=offset)
        hi = lo + timedelta(days=30)
        window = data.events.filter(pl.col("event_time").is_between(lo, hi, closed="left"))
        active = window.get_column("visitor_id").n_unique()
        buyers = window.filter(PURCHASE).get_column("visitor_id").n_unique()
        assert 0.02 <= buyers / active <= 0.04


def test_higher_intent_means_more_purchases(data: SimulatedData) -> None:
    purchases = (
        data.events.filter(PURCHASE)
        .group_by("visitor_id")
        .agg(pl.col("transaction_id").n_unique().alias("orders"))
    )
    by_quartile = (
        data.truth.join(purchases, on="visitor_id", how="left")
        .with_columns(
            pl.col("orders").fill_null(0),
            (pl.col("intent_logit").rank() * 4 / pl.len()).ceil().alias("quartile"),
        )
        .group_by("quartile")
        .agg(pl.col("orders").mean())
        .sort("quartile")
        .get_column("orders")
    )
    assert by_quartile.len() == 4
    assert (by_quartile.diff().drop_nulls() > 0).all()


def test_true_probability_is_a_probability(data: SimulatedData) -> None:
    as_of = CONFIG.start + timedelta(days=30)
    short = true_purchase_probability(data.truth, as_of, timedelta(days=7))
    long = true_purchase_probability(data.truth, as_of, timedelta(days=30))
    none = true_purchase_probability(data.truth, as_of, timedelta(0))
    assert short.columns == ["visitor_id", "p_true"]
    assert short.height == CONFIG.visitors
    assert long.get_column("p_true").is_between(0.0, 1.0).all()
    assert (long.get_column("p_true") >= short.get_column("p_true")).all()
    assert (none.get_column("p_true") == 0.0).all()
    # Churned long enough ago that even an arrival session (minutes long) is over.
    gone = data.truth.select(
        (pl.col("churn_at") <= as_of) & (pl.col("alive_from") <= as_of - timedelta(days=1))
    ).to_series()
    assert gone.sum() > 1_000
    assert (long.filter(gone).get_column("p_true") == 0.0).all()
    with pytest.raises(ValueError, match="timezone-aware"):
        true_purchase_probability(data.truth, datetime(2024, 2, 1), timedelta(days=1))


def test_true_probability_predicts_and_is_calibrated(data: SimulatedData) -> None:
    as_of = CONFIG.start + timedelta(days=45)
    horizon = timedelta(days=30)
    bought = _purchasers(data.events, as_of, as_of + horizon)
    scored = (
        true_purchase_probability(data.truth, as_of, horizon)
        .join(data.truth.select("visitor_id", "alive_from"), on="visitor_id")
        .filter(pl.col("alive_from") <= as_of)  # visitors a model could score at as_of
        .with_columns(pl.col("visitor_id").is_in(bought.implode()).alias("bought"))
    )
    p_true = scored.get_column("p_true").to_numpy()
    labels = scored.get_column("bought").to_numpy()
    assert _auc(p_true, labels) > 0.7
    # Exactness: realised purchasers match the expected count within sampling noise.
    expected, spread = p_true.sum(), np.sqrt((p_true * (1 - p_true)).sum())
    assert abs(labels.sum() - expected) < 4 * spread


def test_as_of_probability_infers_churn_and_is_calibrated(data: SimulatedData) -> None:
    """What a model could at best know: churn is not observed, so a silent visitor keeps a
    chance; still calibrated, and the same expected purchases as ``p_true`` (tower rule)."""
    as_of, horizon = CONFIG.start + timedelta(days=45), timedelta(days=30)
    seen = last_seen(data.events, as_of)
    scored = (
        as_of_purchase_probability(data.truth, seen, as_of, horizon)
        .join(true_purchase_probability(data.truth, as_of, horizon), on="visitor_id")
        .join(data.truth.select("visitor_id", "churn_at"), on="visitor_id")
        .with_columns(
            pl.col("visitor_id").is_in(_purchasers(data.events, as_of, as_of + horizon).implode())
            .alias("bought")
        )
    )  # fmt: skip
    assert scored.height == seen.height
    p_as_of = scored.get_column("p_as_of").to_numpy()
    labels = scored.get_column("bought").to_numpy()
    assert np.all((p_as_of >= 0) & (p_as_of <= 1))
    expected, spread = p_as_of.sum(), np.sqrt((p_as_of * (1 - p_as_of)).sum())
    assert abs(labels.sum() - expected) < 4 * spread
    assert abs(expected - scored.get_column("p_true").sum()) < spread
    gone = scored.filter(pl.col("churn_at") <= as_of)
    assert (gone.get_column("p_true") == 0).all() and (gone.get_column("p_as_of") > 0).all()
    assert _auc(p_as_of, labels) < _auc(scored.get_column("p_true").to_numpy(), labels)
    # A longer silence can only make churn more likely.
    earlier = seen.with_columns(pl.col("last_seen") - timedelta(days=5))
    lower = as_of_purchase_probability(data.truth, earlier, as_of, horizon)
    both = scored.join(lower, on="visitor_id", suffix="_earlier")
    assert both.height == scored.height
    assert (both.get_column("p_as_of_earlier") <= both.get_column("p_as_of") + 1e-12).all()


def test_events_for_target_hits_the_target() -> None:
    config = events_for_target(100_000, days=30)
    assert config.days == 30
    produced = simulate(config).events.height
    assert 0.9 * 100_000 < produced < 1.1 * 100_000


def test_config_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="UTC-aware"):
        SimulationConfig(start=datetime(2024, 1, 1))


def test_writer_round_trips_csv_and_parquet(tmp_path: Path) -> None:
    small = simulate(SimulationConfig(visitors=500, seed=1))
    csv_paths = write_simulation(small, tmp_path / "csv", "csv")
    assert sorted(csv_paths) == ["contacts", "events", "truth"]
    assert csv_paths["events"].name == "events.csv"
    text = pl.read_csv(csv_paths["events"], infer_schema=False)
    parsed = text.get_column("event_time").str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC"
    )
    assert parsed.equals(small.events.get_column("event_time"), check_names=False)
    parquet_paths = write_simulation(small, tmp_path / "parquet", "parquet")
    assert pl.read_parquet(parquet_paths["events"]).equals(small.events)
    written_contacts = pl.read_parquet(parquet_paths["contacts"])
    assert written_contacts.select(small.contacts.columns).equals(small.contacts)
    assert pl.read_parquet(parquet_paths["truth"]).equals(small.truth)


def test_simulated_contacts_carry_only_synthetic_identifiers(tmp_path: Path) -> None:
    """Reserved example domains and fiction's phone ranges, usable once normalised."""
    small = simulate(SimulationConfig(visitors=500, seed=1))
    contacts = pl.read_csv(write_simulation(small, tmp_path, "csv")["contacts"])
    stored = normalise_identifiers(contacts)
    assert stored.height == small.contacts.height
    domains = stored.get_column("email").str.extract(r"@(.+)$").unique().to_list()
    assert set(domains) == {"example.com", "example.org", "example.net"}
    phones = stored.get_column("phone").drop_nulls()
    assert 0.8 * stored.height < phones.len() < stored.height
    fictional = r"^(\+447700900\d{3}|\+442079460\d{3}|\+121255501\d{2})$"
    assert phones.str.contains(fictional).all()
    assert stored.get_column("country").is_in(["GB", "US"]).all()
