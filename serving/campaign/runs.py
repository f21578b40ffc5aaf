"""Measure a past scoring run: contacted visitors against the run's holdout, on what they did next.

A scoring run (``serving.batch.job``) routes visitors to email, ads, a holdout, or nothing, as of
``as_of``. Once the outcome window has passed, the lake holds what they did: a visitor
*converted* when they placed an order counted by ``features.labels`` (purchases not fully
refunded) in the label window ``[as_of, as_of + horizon)``; *revenue* is purchase minus
refund revenue in the window. Treated = routed to a channel; control = held out of that channel.

The scores file records ``holdout`` without the channel held from, so the channel is
recovered from the deterministic draws (``serving.policy.holdout``) with the run's policy: a
visitor is held from email only when their email draw is under the email holdout share (same
for ads). The few held out whose draws fall under both shares are resolved by consent and
otherwise left out of the per-route comparisons. If the policy has changed since the run
(its hash is part of the run id) no channel is recovered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from features.engines import load_events
from features.events.schema import AdsConsent, EmailStatus, EventName
from features.ingest.contacts import read_contacts
from features.labels import build_labels
from features.lake import scan_events
from serving.campaign.statistics import SegmentMeasurement, measure_experiment
from serving.policy.holdout import holdout_draws
from serving.policy.routing import ADS, EMAIL, HOLDOUT, ROUTES, RoutingPolicy

log = logging.getLogger(__name__)
RATES = ("converted",)
MEANS = ("revenue",)
_CHANNELS = {ROUTES[EMAIL], ROUTES[ADS]}


@dataclass(frozen=True)
class CampaignMeasurement:
    run_id: str
    as_of: datetime
    horizon_end: datetime
    #: False while the lake's latest event is before the end of the outcome window.
    outcomes_complete: bool
    #: False when the routing policy changed since the run (no per-route holdouts then).
    policy_matches: bool
    segments: list[SegmentMeasurement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "as_of": self.as_of.isoformat(),
            "horizon_end": self.horizon_end.isoformat(),
            "outcomes_complete": self.outcomes_complete, "policy_matches": self.policy_matches,
            "segments": [s.to_dict() for s in self.segments],
        }  # fmt: skip


def run_dir_of(scoring_dir: Path, run_id: str | None) -> Path:
    """The folder of run ``run_id``, or of the latest published run."""
    if run_id is not None:
        folder = scoring_dir / run_id
    else:
        pointer = scoring_dir / "latest.json"
        if not pointer.is_file():
            raise FileNotFoundError(f"no scoring run published under {scoring_dir}")
        folder = Path(orjson.loads(pointer.read_bytes())["run_dir"])
    if not (folder / "scores.parquet").is_file():
        raise FileNotFoundError(f"{folder} holds no scores.parquet")
    return folder


def observed_outcomes(lake_dir: Path, as_of: datetime, horizon: timedelta) -> pl.DataFrame:
    """One row per visitor with an order or refund in the window: ``converted``, ``revenue``."""
    end = as_of + horizon
    events = load_events(lake_dir, engine="polars", start=as_of, end=end)
    labels = build_labels(events, as_of, gap=timedelta(0), horizon=horizon).to_native().collect()
    # scan_events reads [start, end): the label window itself.
    window = scan_events(lake_dir, start=as_of, end=end)
    signed = (
        pl.when(pl.col("event_name") == EventName.PURCHASE.value)
        .then(pl.col("revenue").fill_null(0))
        .when(pl.col("event_name") == EventName.REFUND.value)
        .then(-pl.col("revenue").fill_null(0))
        .otherwise(0.0)
    )
    revenue = window.group_by("visitor_id").agg(revenue=signed.sum()).collect()
    return revenue.join(
        labels.rename({"label": "converted"}), on="visitor_id", how="full", coalesce=True
    ).with_columns(pl.col("converted").fill_null(0), pl.col("revenue").fill_null(0.0))


def intended_channel(
    scores: pl.DataFrame, contacts: pl.DataFrame, policy: RoutingPolicy
) -> pl.Series:
    """Per visitor: the channel route a contacted visitor got, or the one a held-out visitor
    was held from (null when it cannot be told, and for visitors not routed to a channel).
    Runs record it (``channel``); for older ones it is recovered from the holdout draws."""
    if "channel" in scores.columns:
        return scores.get_column("channel").alias("channel")
    route = scores.get_column("route").to_numpy().astype(str)
    draws = holdout_draws(scores.get_column("visitor_id"), policy.campaign_salt)
    under_email = draws["email"] < policy.email.holdout_share
    under_ads = draws["ads"] < policy.ads.holdout_share
    consent = scores.select("visitor_id").join(contacts, on="visitor_id", how="left")
    email_ok = (consent.get_column("email_status") == EmailStatus.SUBSCRIBED.value).fill_null(False)
    ads_ok = (consent.get_column("ads_consent") == AdsConsent.GRANTED.value).fill_null(False)
    only_email = under_email & ~under_ads | under_email & email_ok.to_numpy() & ~ads_ok.to_numpy()
    only_ads = under_ads & ~under_email | under_ads & ads_ok.to_numpy() & ~email_ok.to_numpy()
    held = route == ROUTES[HOLDOUT]
    channel = route.astype(object)
    channel[~np.isin(route, list(_CHANNELS))] = None
    channel[held & only_email] = ROUTES[EMAIL]
    channel[held & only_ads] = ROUTES[ADS]
    return pl.Series("channel", channel.tolist(), dtype=pl.String)


def campaign_units(scores: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """Visitors routed to a channel or held out, with their outcomes (0 when none)."""
    routed = scores.filter(pl.col("route").is_in([*_CHANNELS, ROUTES[HOLDOUT]]))
    return (
        routed.join(outcomes, on="visitor_id", how="left")
        .with_columns(
            (pl.col("route") != ROUTES[HOLDOUT]).alias("treated"),
            pl.col("converted").fill_null(0),
            pl.col("revenue").fill_null(0.0),
        )
        .rename({"channel": "route_group"})
    )


def measure_scoring_run(
    scoring_dir: Path,
    lake_dir: Path,
    policy: RoutingPolicy,
    *,
    horizon: timedelta,
    confidence: float,
    run_id: str | None = None,
    complete_until: datetime | None = None,
) -> CampaignMeasurement:
    """Contacted vs holdout overall, per route and per score decile (see module doc). The
    outcomes count as complete when the lake holds every event up to the window's end: by
    its latest event, or ``complete_until`` when the caller knows better."""
    folder = run_dir_of(scoring_dir, run_id)
    scores = pl.read_parquet(folder / "scores.parquet")
    if scores.is_empty():
        raise ValueError(f"{folder}: the run scored nobody")
    as_of: datetime = scores.get_column("as_of")[0]
    # The run's channels are known when it recorded them, or when the policy that drew its
    # holdout is the current one (its id holds the policy's fingerprint).
    matches = "channel" in scores.columns or f"-{policy.fingerprint()}" in folder.name
    if matches:
        channel = intended_channel(scores, read_contacts(lake_dir), policy)
    else:
        log.warning("routing policy changed since %s: holdouts not split by route", folder.name)
        channel = pl.Series("channel", [None] * scores.height, dtype=pl.String)
    outcomes = observed_outcomes(lake_dir, as_of, horizon)
    units = campaign_units(scores.with_columns(channel), outcomes)
    latest = scan_events(lake_dir).select(pl.col("event_time").max()).collect().item()
    segments = measure_experiment(
        units, treated="treated", rates=RATES, means=MEANS,
        by=("route_group", "decile"), confidence=confidence,
    )  # fmt: skip
    return CampaignMeasurement(
        run_id=folder.name, as_of=as_of, horizon_end=as_of + horizon,
        outcomes_complete=(complete_until or latest) is not None
        and (complete_until or latest) >= as_of + horizon,
        policy_matches=matches, segments=segments,
    )  # fmt: skip


def read_units(path: Path) -> pl.DataFrame:
    """An experiment table (CSV, possibly gzipped, or Parquet): one row per unit."""
    if path.suffix == ".parquet" or path.is_dir():
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema_length=None)


def measured_units(
    scoring_dir: Path,
    lake_dir: Path,
    policy: RoutingPolicy,
    window_of: Callable[[str], timedelta],
    complete_until: datetime | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """What every run with its outcomes in teaches about the contacts: one row per visitor
    routed to a channel or held out from one (``run_id, visitor_id, channel, treated,
    score, converted, explored``), and the runs used. A run counts once its outcome window
    (``window_of`` its model version) ends by the time the lake is complete up to
    (``complete_until``; default: its latest event) and its channels are known."""
    latest = complete_until or (
        scan_events(lake_dir).select(pl.col("event_time").max()).collect().item()
    )
    contacts = read_contacts(lake_dir)
    frames, used = [], []
    for summary_file in sorted(scoring_dir.glob("*/summary.json")):
        summary = orjson.loads(summary_file.read_bytes())
        as_of = datetime.fromisoformat(summary["as_of"])
        horizon = window_of(str(summary["model_version"]))
        folder = summary_file.parent
        if latest is None or latest < as_of + horizon:
            continue
        scores = pl.read_parquet(folder / "scores.parquet")
        if "channel" not in scores.columns and f"-{policy.fingerprint()}" not in folder.name:
            log.warning("%s: its holdout's channels are unknown; not used", folder.name)
            continue
        channel = intended_channel(scores, contacts, policy)
        units = campaign_units(
            scores.with_columns(channel), observed_outcomes(lake_dir, as_of, horizon)
        )
        frames.append(
            units.filter(pl.col("route_group").is_not_null()).select(
                pl.lit(folder.name).alias("run_id"),
                "visitor_id",
                pl.col("route_group").alias("channel"),
                "treated",
                "score",
                pl.col("converted").cast(pl.Int64),
                (pl.col("reason") == "exploration").fill_null(False).alias("explored")
                if "reason" in units.columns
                else pl.lit(False).alias("explored"),
            )
        )
        used.append(folder.name)
    schema = {"run_id": pl.String, "visitor_id": pl.String, "channel": pl.String,
              "treated": pl.Boolean,
              "score": pl.Float64, "converted": pl.Int64, "explored": pl.Boolean}  # fmt: skip
    units = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return units, used
