"""``propensity respond``: play a scoring run's routes on the simulated shop, one campaign round.

The visitors a run routed to email or ads are contacted as of the run's ``as_of``; the shop's
events of the outcome window are revealed with what the contacts changed (purchases caused
and prevented, ``features.simulation.response``) and written as a file to ingest like any
other, with the true effect of each channel on every visitor beside it. Held-out visitors
and those routed nowhere are not contacted. Round after round (score, respond, ingest,
measure), the decision can be judged against the truth.

Wiring only: the generative model is ``features.simulation``; the run is read from its
scores file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from features.simulation import SimulationConfig, simulate
from features.simulation.generator import world
from features.simulation.response import CHANNELS, CampaignOutcome, campaign_outcome
from features.simulation.writer import (
    CONFIG_FILE,
    CSV_DATETIME_FORMAT,
    read_rounds,
    write_rounds,
)
from propensity import jobs
from propensity.settings import Settings
from serving.campaign.runs import run_dir_of
from serving.policy.routing import ADS, EMAIL, ROUTES

#: Routes that contact a visitor, and the channel that carries the contact.
CONTACTING_ROUTES = {ROUTES[EMAIL]: "email", ROUTES[ADS]: "ads"}


@dataclass(frozen=True)
class RoundSummary:
    run_id: str
    as_of: datetime
    window_end: datetime
    #: per channel: visitors contacted, orders the contacts caused and prevented, and the
    #: true effect among the contacted (mean Δp, and its sum: expected incremental buyers)
    contacted: dict[str, int]
    caused: dict[str, int]
    prevented: dict[str, int]
    true_mean_effect: dict[str, float]
    true_incremental_buyers: dict[str, float]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "as_of": self.as_of.isoformat(),
            "window_end": self.window_end.isoformat(),
        }


def respond(
    settings: Settings,
    simulation_dir: Path,
    *,
    run_id: str | None = None,
    horizon: timedelta | None = None,
) -> RoundSummary:
    """One campaign round for the scoring run ``run_id`` (default: the latest), its outcome
    window ``horizon`` long (default: the label window of the model that scored it)."""
    config_file = simulation_dir / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file}: not a simulation folder (propensity simulate writes one)"
        )
    config = SimulationConfig.from_json(config_file.read_text(encoding="utf-8"))
    state = read_rounds(simulation_dir)
    folder = run_dir_of(jobs.serving_paths(settings).scoring_dir, run_id)
    scores = pl.read_parquet(folder / "scores.parquet", columns=["visitor_id", "route", "as_of"])
    if scores.is_empty():
        raise ValueError(f"{folder}: the run scored nobody")
    as_of: datetime = scores.get_column("as_of")[0]
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    window = horizon or jobs.outcome_window(settings, str(summary["model_version"]))
    data = simulate(config)
    _check_unrevealed(data.events, as_of, state.revealed_until, folder.name)
    contacted = scores.filter(pl.col("route").is_in(list(CONTACTING_ROUTES))).select(
        "visitor_id", pl.col("route").replace_strict(CONTACTING_ROUTES).alias("channel")
    )
    outcome = campaign_outcome(
        config,
        world(config),
        data,
        contacted,
        as_of,
        window,
        reveal_from=min(state.revealed_until, as_of),
        already_prevented=frozenset(state.prevented_transactions),
    )
    out_dir = simulation_dir / "rounds" / folder.name
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"events": out_dir / "events.csv", "effects": out_dir / "effects.parquet"}
    outcome.events.write_csv(files["events"], datetime_format=CSV_DATETIME_FORMAT)
    outcome.effects.write_parquet(files["effects"])
    result = _summary(folder.name, as_of, window, outcome.effects, outcome, files)
    state.revealed_until = as_of + window
    state.prevented_transactions = sorted(
        {*state.prevented_transactions, *outcome.prevented_transactions}
    )
    state.rounds.append(result.to_dict())
    write_rounds(simulation_dir, state)
    return result


def _check_unrevealed(
    events: pl.DataFrame, as_of: datetime, revealed_until: datetime, run: str
) -> None:
    """A contact at ``as_of`` changes what comes after it: nothing after ``as_of`` may be
    revealed yet (it would have happened without the contact)."""
    late = events.filter(
        (pl.col("event_time") >= as_of) & (pl.col("event_time") < revealed_until)
    ).height
    if late:
        raise ValueError(
            f"run {run} is as of {as_of:%Y-%m-%d %H:%M}, but the shop's events are revealed "
            f"up to {revealed_until:%Y-%m-%d %H:%M} ({late:,} of them after as_of): score as "
            "of the latest revealed event (the default of propensity score), then respond"
        )


def _summary(
    run_id: str,
    as_of: datetime,
    window: timedelta,
    effects: pl.DataFrame,
    outcome: CampaignOutcome,
    files: dict[str, Path],
) -> RoundSummary:
    contacted, mean, total = {}, {}, {}
    for channel in CHANNELS:
        got = effects.filter(pl.col("channel") == channel).get_column(f"delta_{channel}")
        contacted[channel] = got.len()
        mean[channel] = float(got.mean() or 0.0)  # type: ignore[arg-type]
        total[channel] = float(got.sum())
    return RoundSummary(
        run_id=run_id,
        as_of=as_of,
        window_end=as_of + window,
        contacted=contacted,
        caused=outcome.caused,
        prevented=outcome.prevented,
        true_mean_effect=mean,
        true_incremental_buyers=total,
        files={k: str(v) for k, v in files.items()},
    )
