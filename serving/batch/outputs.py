"""What a scoring run leaves behind: the scores file, the audiences (checked against consent
first) and the run summary. Files are written inside the run's private staging folder;
``serving.batch.publish`` moves it into place and points ``latest.json`` at it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl

from serving.policy.holdout import minimum_detectable_effect
from serving.policy.routing import ADS, EMAIL, ROUTES
from serving.settings import ServingSettings
from serving.store.base import RunInfo

SCORE_COLUMNS = (
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
)
AUDIENCE_COLUMNS = ("visitor_id", "score", "decile", "expected_value")


class ConsentViolation(RuntimeError):
    """An audience would contact a visitor without consent; nothing was written."""


@dataclass(frozen=True)
class ScoringSummary:
    run_id: str
    run_dir: str
    as_of: datetime
    scored_at: datetime
    model_version: str
    visitors: int
    routes: dict[str, int]
    #: decile -> route -> visitors
    deciles: dict[int, dict[str, int]]
    files: dict[str, str]
    skipped: bool = False
    ads_spend: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    #: What the run's start repaired of runs killed mid-publish (``serving.batch.publish``):
    #: leftovers of dead processes removed, the run whose staged folder it moved into place,
    #: the run it made ``latest.json`` name.
    leftovers_removed: int = 0
    placed: str | None = None
    repointed: str | None = None
    #: Visitors with an event before ``as_of``, and the feature window (days) a visitor
    #: needs an event in to be scored: why ``visitors`` is fewer than the lake holds.
    known_visitors: int | None = None
    feature_window_days: float | None = None

    def to_dict(self) -> dict[str, object]:
        plain: dict[str, object] = orjson.loads(
            orjson.dumps(asdict(self), option=orjson.OPT_NON_STR_KEYS)
        )
        return plain

    @classmethod
    def from_json(cls, data: bytes) -> ScoringSummary:
        raw = orjson.loads(data)
        raw["as_of"] = datetime.fromisoformat(raw["as_of"])
        raw["scored_at"] = datetime.fromisoformat(raw["scored_at"])
        raw["deciles"] = {int(k): v for k, v in raw["deciles"].items()}
        return cls(**raw)


def check_consent(scores: pl.DataFrame) -> None:
    """Refuse audiences that would email a non-subscriber or show ads without consent."""
    bad_email = scores.filter(
        (pl.col("route") == ROUTES[EMAIL]) & (pl.col("email_status") != "subscribed")
    ).height
    bad_ads = scores.filter(
        (pl.col("route") == ROUTES[ADS]) & (pl.col("ads_consent") != "granted")
    ).height
    if bad_email or bad_ads:
        raise ConsentViolation(
            f"refusing to write audiences: {bad_email} emails to visitors not subscribed, "
            f"{bad_ads} ads to visitors without consent"
        )


def write_outputs(scored: pl.DataFrame, folder: Path) -> dict[str, str]:
    check_consent(scored)
    folder.mkdir(parents=True)
    files = {
        "scores": folder / "scores.parquet",
        "email_audience": folder / "email_audience.csv",
        "ads_audience": folder / "ads_audience.csv",
    }
    scored.select(SCORE_COLUMNS).write_parquet(files["scores"])
    for name, route in (("email_audience", EMAIL), ("ads_audience", ADS)):
        audience = scored.filter(pl.col("route") == ROUTES[route]).sort("score", descending=True)
        audience.select(AUDIENCE_COLUMNS).write_csv(files[name])
    return {k: str(v) for k, v in files.items()}


def run_summary(
    scored: pl.DataFrame,
    run: RunInfo,
    run_dir: Path,
    files: dict[str, str],
    settings: ServingSettings,
) -> ScoringSummary:
    routes = dict(scored.group_by("route").len().sort("route").iter_rows())
    deciles: dict[int, dict[str, int]] = {}
    for decile, route, count in (
        scored.group_by("decile", "route").len().sort("decile", "route").iter_rows()
    ):
        deciles.setdefault(int(decile), {})[str(route)] = int(count)
    return ScoringSummary(
        run_id=run.run_id,
        run_dir=str(run_dir),
        as_of=run.as_of,
        scored_at=run.scored_at,
        model_version=run.model_version,
        visitors=scored.height,
        routes={str(k): int(v) for k, v in routes.items()},
        deciles=deciles,
        files={k: str(run_dir / Path(v).name) for k, v in files.items()},
        ads_spend=routes.get(ROUTES[ADS], 0) * settings.routing.ads.unit_cost,
        extra={
            "holdout_mde": holdout_mde(scored),
            # Channels valued by band of an uplift model's prediction, and the model.
            "uplift_models": {
                channel: ranked["uplift_model"]
                for channel, ranked in ((run.lift or {}).get("uplift") or {}).items()
            },
        },
    )


def holdout_mde(scored: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per channel: visitors sent and held out (explored ones included, and counted apart),
    their mean score (the base rate the effect is
    measured on) and the minimum detectable effect of the run's holdout (5% two-sided, 80%
    power): what ``propensity measure`` can tell from this run alone."""
    result = {}
    for name, route in (("email", EMAIL), ("ads", ADS)):
        audience = scored.filter(pl.col("channel") == ROUTES[route])
        treated = audience.filter(pl.col("route") == ROUTES[route]).height
        control = audience.height - treated
        baseline = float(audience.get_column("score").mean() or 0.0) if audience.height else 0.0  # type: ignore[arg-type]
        explored = audience.filter(
            (pl.col("reason") == "exploration") & (pl.col("route") == ROUTES[route])
        ).height
        result[name] = {
            "treated": treated,
            "held_out": control,
            "explored": explored,
            "baseline": baseline,
            "mde": minimum_detectable_effect(baseline, treated, control),
        }
    return result


def published_run_id(scoring_dir: Path) -> str | None:
    """The run ``latest.json`` points at; None when no run was published (or it is unreadable)."""
    try:
        pointer = orjson.loads((scoring_dir / "latest.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    run_id = pointer.get("run_id") if isinstance(pointer, dict) else None
    return str(run_id) if run_id else "unknown"
