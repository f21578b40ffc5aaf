"""`measure_scoring_run` on a real scoring run: real lake, registered model, published files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from serving.batch.job import score_visitors
from serving.campaign.runs import measure_scoring_run
from serving.testing import simulated_lake
from tests.integration.serving.world import World, register_tiny_model, settings

AS_OF = datetime(2024, 1, 20, tzinfo=UTC)
HORIZON = timedelta(days=14)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A lake large enough for purchases among both the contacted and the held out."""
    root = tmp_path_factory.mktemp("campaign")
    events = simulated_lake(root / "lake", visitors=4_000, days=40)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    version = register_tiny_model(uri, root / "artifacts")
    return World(root, root / "lake", uri, version, events)


def _converted(events: pl.DataFrame) -> set[str]:
    """Visitors with an order in the window that was not refunded in full inside it."""
    window = events.filter(
        (pl.col("event_time") > AS_OF) & (pl.col("event_time") <= AS_OF + HORIZON)
    )
    orders = window.group_by("visitor_id", "transaction_id").agg(
        paid=pl.col("revenue").filter(pl.col("event_name") == "purchase").sum(),
        bought=(pl.col("event_name") == "purchase").any(),
        refunded=pl.col("revenue").filter(pl.col("event_name") == "refund").sum(),
        any_refund=(pl.col("event_name") == "refund").any(),
    )
    kept = orders.filter(
        pl.col("bought") & (~pl.col("any_refund") | (pl.col("refunded") < pl.col("paid")))
    )
    return set(kept.get_column("visitor_id"))


def test_contacted_against_holdout_per_route_and_decile(shared: World) -> None:
    policy = {
        "email": {"cost_per_contact": 0.002, "incremental_lift": 0.05, "holdout_share": 0.3},
        "ads": {"cost_per_contact": 0.25, "incremental_lift": 0.1, "holdout_share": 0.3},
    }
    serving = settings(routing=policy)
    paths = shared.paths("campaign")
    summary = score_visitors(serving, paths, as_of=AS_OF)
    result = measure_scoring_run(
        paths.scoring_dir, paths.lake_dir, serving.routing, horizon=HORIZON, confidence=0.95
    )
    assert result.run_id == summary.run_id and result.policy_matches
    assert result.outcomes_complete
    overall = result.segments[0]
    (rate,) = overall.rates
    routes = summary.routes
    assert rate.treated == routes.get("email_remarketing", 0) + routes.get("ad_retargeting", 0)
    assert rate.control == routes["holdout"] > 0
    scores = pl.read_parquet(summary.files["scores"])
    converted = _converted(shared.events)
    treated = set(scores.filter(pl.col("route").is_in(["email_remarketing", "ad_retargeting"]))[
        "visitor_id"])  # fmt: skip
    held = set(scores.filter(pl.col("route") == "holdout")["visitor_id"])
    assert rate.treated_successes == len(treated & converted) > 0
    assert rate.control_successes == len(held & converted)
    segments = {(s.by, s.segment) for s in result.segments}
    assert ("route_group", "email_remarketing") in segments
    assert {int(segment) for by, segment in segments if by == "decile"} <= set(range(1, 11))
    per_route = [s.rates[0] for s in result.segments if s.by == "route_group"]
    assert sum(r.treated for r in per_route) == rate.treated
    assert sum(r.control for r in per_route) <= rate.control


def test_a_run_that_recorded_its_channels_is_split_by_route_whatever_the_policy_now(
    shared: World,
) -> None:
    paths = shared.paths("campaign-changed")
    score_visitors(settings(), paths, as_of=AS_OF)
    changed = settings(routing={"campaign_salt": "another"}).routing
    result = measure_scoring_run(
        paths.scoring_dir, paths.lake_dir, changed, horizon=HORIZON, confidence=0.95
    )
    assert result.policy_matches
    assert [s for s in result.segments if s.by == "route_group"]


def test_an_older_run_under_a_changed_policy_keeps_the_overall_comparison_only(
    shared: World,
) -> None:
    """A run scored before runs recorded their channels: its holdout's channels come from
    the draws of the policy that drew it, which is gone."""
    paths = shared.paths("campaign-older")
    summary = score_visitors(settings(), paths, as_of=AS_OF)
    scores = pl.read_parquet(summary.files["scores"])
    scores.drop("channel").write_parquet(summary.files["scores"])
    changed = settings(routing={"campaign_salt": "another"}).routing
    result = measure_scoring_run(
        paths.scoring_dir, paths.lake_dir, changed, horizon=HORIZON, confidence=0.95
    )
    assert not result.policy_matches
    assert not [s for s in result.segments if s.by == "route_group"]
