"""The batch job on a real lake, a real registered model and a real SQLite store."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from serving.api.schemas import VisitorScore
from serving.batch.job import default_as_of, score_visitors
from serving.batch.outputs import ConsentViolation, check_consent
from serving.store.sqlite import SqliteScoreStore
from tests.integration.serving.world import World, settings, world


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return world(tmp_path_factory)


def test_outputs_store_and_idempotence(shared: World) -> None:
    paths = shared.paths("batch-main")
    summary = score_visitors(settings(), paths)
    scores = pl.read_parquet(summary.files["scores"])
    assert scores.columns == [
        "visitor_id",
        "score",
        "decile",
        "route",
        "channel",
        "reason",
        "expected_value",
        "model_version",
        "as_of",
        "scored_at",
    ]
    assert scores.height == summary.visitors > 0
    # The channel a visitor was sent to or held out from; none for everyone else.
    held = scores.filter(pl.col("route") == "holdout")
    assert held.height and held["channel"].is_in(["email_remarketing", "ad_retargeting"]).all()
    contacted = scores.filter(pl.col("route").is_in(["email_remarketing", "ad_retargeting"]))
    assert (contacted["channel"] == contacted["route"]).all()
    assert scores.filter(pl.col("route") == "none")["channel"].is_null().all()
    assert scores.get_column("visitor_id").is_unique().all()
    assert scores.get_column("score").is_between(0, 1).all()
    assert set(scores.get_column("decile").unique()) <= set(range(1, 11))
    assert sum(summary.routes.values()) == scores.height
    email = pl.read_csv(summary.files["email_audience"])
    assert email.height == summary.routes.get("email_remarketing", 0)
    store = SqliteScoreStore.open(paths.sqlite_path)
    visitor = scores.get_column("visitor_id")[0]
    record = VisitorScore.model_validate_json(store.get_record(visitor) or b"")
    assert record.source == "batch" and record.top_features
    assert store.current_run().run_id == summary.run_id  # type: ignore[union-attr]
    again = score_visitors(settings(), paths)
    assert again.skipped and again.run_id == summary.run_id
    assert pl.read_parquet(summary.files["scores"]).equals(scores)


def test_audiences_respect_consent(shared: World) -> None:
    paths = shared.paths("batch-consent")
    summary = score_visitors(settings(), paths)
    scores = pl.read_parquet(summary.files["scores"])
    contacts = pl.read_parquet(shared.lake_dir / "contacts" / "contacts.parquet")
    emailed = pl.read_csv(
        summary.files["email_audience"], schema_overrides={"visitor_id": pl.String}
    ).join(contacts, on="visitor_id", how="left")
    assert (emailed.get_column("email_status") == "subscribed").all()
    ads = pl.read_csv(
        summary.files["ads_audience"], schema_overrides={"visitor_id": pl.String}
    ).join(contacts, on="visitor_id", how="left")
    assert (ads.get_column("ads_consent") == "granted").all()
    with pytest.raises(ConsentViolation):
        check_consent(
            scores.head(1).with_columns(
                pl.lit("email_remarketing").alias("route"),
                pl.lit("unsubscribed").alias("email_status"),
                pl.lit("granted").alias("ads_consent"),
            )
        )


def test_a_crash_mid_run_keeps_the_previous_run(
    shared: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = shared.paths("batch-crash")
    first = score_visitors(settings(), paths)
    later = default_as_of(shared.lake_dir) + timedelta(days=1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed while publishing")

    monkeypatch.setattr(SqliteScoreStore, "publish", crash)
    with pytest.raises(RuntimeError):
        score_visitors(settings(), paths, as_of=later)
    monkeypatch.undo()
    store = SqliteScoreStore.open(paths.sqlite_path)
    assert store.current_run().run_id == first.run_id  # type: ignore[union-attr]
    latest = (paths.scoring_dir / "latest.json").read_text()
    assert first.run_id in latest
    left = sorted(p.name for p in paths.scoring_dir.iterdir())
    assert left == sorted([first.run_id, "latest.json"])


def test_the_summary_says_why_fewer_visitors_were_scored_than_the_lake_holds(
    shared: World,
) -> None:
    """Issue 25: the demo scored 7,805 of 17,358 visitors and never said why. The summary
    counts the visitors seen before as_of and names the feature window the rest missed;
    the CLI table says it in words."""
    from rich.console import Console

    from propensity.views import scoring_table

    summary = score_visitors(settings(), shared.paths("batch-why-fewer"))
    seen = shared.events.filter(pl.col("event_time") < summary.as_of)
    assert summary.known_visitors == seen.get_column("visitor_id").n_unique()
    window = timedelta(days=summary.feature_window_days or 0)
    active = seen.filter(pl.col("event_time") >= summary.as_of - window)
    assert summary.visitors == active.get_column("visitor_id").n_unique()
    assert summary.known_visitors > summary.visitors  # some left the window
    console = Console(width=200, record=True, color_system=None)
    console.print(scoring_table(summary))
    left = summary.known_visitors - summary.visitors
    said = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert f"the other {left:,} had no event in the model's" in said
