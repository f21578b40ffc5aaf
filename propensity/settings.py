"""The one typed settings object. Built at the entry point and passed down; never at import.

Every field can be overridden from the environment with the ``PROPENSITY_`` prefix, nested
sections with a double underscore: ``PROPENSITY_DATA_DIR=/srv/prop``,
``PROPENSITY_INGEST__MAX_MEMORY_MB=1024``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.definitions import FeatureConfig, full_history_as_none
from features.sharding import DEFAULT_EVENTS_PER_SHARD
from features.snapshot_plan import StatedCuts
from serving.activation.settings import ActivationSettings
from serving.campaign.lift import LiftSettings
from serving.campaign.statistics import MeasurementSettings
from serving.monitoring.drift import MonitoringSettings
from serving.settings import ServingSettings
from training.settings import TrainingSettings


class IngestSettings(BaseModel):
    """Limits applied while turning raw files into canonical events."""

    max_memory_mb: int = Field(
        1536,
        ge=64,
        description="memory an ingest aims to stay under, whatever the file's size (fits 8 GB)",
    )
    max_future_skew: timedelta = Field(
        timedelta(days=1), description="events later than ingest time + this are quarantined"
    )
    min_event_time: datetime = Field(
        datetime(1990, 1, 1, tzinfo=UTC), description="events before this are quarantined"
    )


class FeatureSettings(BaseModel):
    """How batch features are computed on the embedded engine."""

    events_per_shard: int = Field(
        DEFAULT_EVENTS_PER_SHARD,
        gt=0,
        description="events per visitor shard: peak memory grows with it (~0.65 GB at 1M)",
    )


class SparkSettings(BaseModel):
    """Where ``--engine spark`` runs: local mode here, a cluster or Spark Connect elsewhere."""

    master: str = Field("local[2]", description="local[N] or spark://host:7077")
    remote: str | None = Field(None, description="Spark Connect URL (sc://host:15002)")
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")


class SnapshotSettings(BaseModel):
    """How ``propensity train`` cuts the lake into labelled snapshots. ``lookback``,
    ``session_timeout``, ``local_time_offset`` and ``horizon`` become part of the trained
    model (its contract): serving follows the model, so changing them takes a retrain."""

    # At least the horizon: validation labels must not reach into the test period.
    slide: timedelta = Field(timedelta(days=14), description="time between snapshots")
    lookback: timedelta | None = Field(
        timedelta(days=30),
        gt=timedelta(0),
        description="feature window before T; all: every event before T (model)",
    )
    session_timeout: timedelta = Field(
        timedelta(minutes=30),
        gt=timedelta(0),
        description="inactivity that ends a session (model)",
    )
    local_time_offset: timedelta = Field(
        timedelta(0),
        description="shop's local time minus UTC, for hour, weekday and day features (model)",
    )
    horizon: timedelta = Field(timedelta(days=14), description="label window after T (model)")
    max_snapshots: int = Field(8, ge=3, description="latest snapshots used (test, val, train)")
    timezone: str = Field(
        "UTC", description="shop's IANA time zone: cuts fall on its local midnight"
    )
    # Declared after ``timezone``: their validator reads it.
    test_as_of: datetime | None = Field(
        None, description="the test cut (a date is the shop's local midnight); None: derived"
    )
    validation_as_of: datetime | None = Field(
        None, description="the validation cut; None: the test cut minus the slide"
    )
    train_as_of: tuple[datetime, ...] = Field(
        (), description="training cuts; empty: stepping back from validation by the slide"
    )

    _full_history = field_validator("lookback", mode="before")(full_history_as_none)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {name!r} (e.g. Europe/London)") from None
        return name

    @field_validator("test_as_of", "validation_as_of", "train_as_of", mode="after")
    @classmethod
    def _in_shop_time(
        cls, value: datetime | tuple[datetime, ...] | None, info: ValidationInfo
    ) -> datetime | tuple[datetime, ...] | None:
        """A cut without an offset (``2011-09-01``) is shop-local time; every cut is kept in
        the shop's zone, so the plan shows it with the shop's offset."""
        zone = ZoneInfo(info.data.get("timezone", "UTC"))

        def local(moment: datetime) -> datetime:
            return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)

        if isinstance(value, tuple):
            return tuple(local(m) for m in value)
        return None if value is None else local(value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stated_cuts(self) -> StatedCuts:
        """The cuts a user stated (empty: the start/slide rule places them all)."""
        return StatedCuts(self.test_as_of, self.validation_as_of, self.train_as_of)

    def feature_config(self) -> FeatureConfig:
        """The feature configuration the next model will be trained with."""
        return FeatureConfig(
            lookback=self.lookback,
            session_timeout=self.session_timeout,
            local_time_offset=self.local_time_offset,
        )


class RetrainSettings(BaseModel):
    """Where a scheduled retrain finds new files (``PROPENSITY_RETRAIN__INBOX=/srv/inbox``)."""

    model_config = ConfigDict(frozen=True)

    inbox: Path | None = Field(None, description="folder of new event/contact files to ingest")
    inbox_format: str = Field("canonical", description="format of the inbox's event files")
    contacts_glob: str = Field("contacts*", description="inbox files that are contact files")
    skip_unchanged: bool = Field(
        True, description="train nothing when data and settings equal the champion's"
    )


class ContactsSettings(BaseModel):
    """How the contacts store keeps personal identifiers (``PROPENSITY_CONTACTS__...``)."""

    store_raw_identifiers: bool = Field(
        True,
        description="keep normalised emails, phones and names; false keeps SHA-256 only "
        "(then exports that need a raw email, Klaviyo and Mailchimp, refuse)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PROPENSITY_",
        env_nested_delimiter="__",
        extra="ignore",
        # PROPENSITY_SERVING__ROUTING__EMAIL__HOLDOUT_SHARE=0.5 changes that one field and
        # keeps the channel's other defaults (without it, the channel would lose them).
        nested_model_default_partial_update=True,
    )

    data_dir: Path = Field(Path(".propensity"), description="event lake, MLflow store, outputs")
    shared_data: Path | None = Field(
        None, description="folder with the real public data sets (../shared/data)"
    )
    log_level: str = "INFO"
    ingest: IngestSettings = IngestSettings()
    features: FeatureSettings = FeatureSettings()
    spark: SparkSettings = SparkSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    measurement: MeasurementSettings = MeasurementSettings()
    lift: LiftSettings = LiftSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    retrain: RetrainSettings = RetrainSettings()
    contacts: ContactsSettings = ContactsSettings()
    activation: ActivationSettings = ActivationSettings()

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def scratch_dir(self) -> Path:
        """Temporary work files (removed after each job), on the data directory's disk."""
        return self.data_dir / "tmp"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"


def describe_settings_error(error: ValidationError) -> str:
    """One line per invalid setting, named by the environment variable that sets it.

    A pydantic traceback names ``serving.routing.ads.cost_per_contact``; a user set
    ``PROPENSITY_SERVING__ROUTING__ADS__COST_PER_CONTACT``, so that is the name they need.
    """
    problems = []
    for problem in error.errors():
        path = [str(part) for part in problem["loc"]]
        name = "PROPENSITY_" + "__".join(path).upper() if path else "settings"
        given = problem.get("input")
        shown = f"={given!r}" if isinstance(given, str | int | float | bool) else ""
        problems.append(f"{name}{shown}: {problem['msg']}")
    return "invalid settings: " + "; ".join(problems)
