"""Serving's typed settings, nested into the application settings as ``serving``.

``PROPENSITY_SERVING__STORE=redis``, ``PROPENSITY_SERVING__API_KEYS='["k1"]'``,
``PROPENSITY_SERVING__ROUTING__AD_BUDGET__MAX_SPEND=2000``. Built at the entry point and
passed down; nothing here reads the environment. Paths come from the application's data
directory through ``ServingPaths``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from serving.policy.routing import RoutingPolicy

#: How LightGBM raw scores are computed: a compiled predictor (lleaves) where available, or
#: the Booster.
PredictorKind = Literal["auto", "lleaves", "booster"]


class ServingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_uri: str = Field(
        "models:/propensity@champion", description="registered model the API and batch use"
    )
    predictor: PredictorKind = Field(
        "auto", description="LightGBM scorer: lleaves (compiled, cached per version) or booster"
    )
    compile_timeout_seconds: float = Field(
        600.0, gt=0, description="bound on compiling one model version with lleaves"
    )
    store: Literal["sqlite", "redis"] = Field("sqlite", description="score store backend")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="used when store=redis")
    sqlite_checkpoint_seconds: float = Field(
        0.25,
        gt=0,
        description="the API copies the SQLite WAL into the database this often, in a "
        "background thread, so that no request waits for it",
    )
    sqlite_wal_restart_mb: float = Field(
        64.0,
        gt=0,
        description="the API starts the SQLite WAL over once it has grown past this size "
        "(its writers wait while the last of it is copied: 3-33 ms measured); without that, "
        "steady writes grow it without bound",
    )
    redis_prefix: str = Field("propensity", description="key prefix in Redis")
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Redis connect and socket timeout: a stalled store fails fast"
    )
    redis_retries: int = Field(
        1, ge=0, description="retries of a failed Redis call (reconnects after a restart)"
    )
    api_keys: tuple[SecretStr, ...] = Field(
        (), description="keys accepted in the X-API-Key header; write routes need one"
    )
    read_keys: tuple[SecretStr, ...] = Field(
        (), description="read-only keys: they open the read routes, never a write"
    )
    segment_shared_secret: SecretStr | None = Field(
        None,
        description="shared secret of a Segment webhook destination: Segment bodies posted to "
        "/v1/events must then carry X-Signature, the HMAC-SHA1 of the body (401 otherwise)",
    )
    open_reads: bool = Field(
        False,
        description="answer read routes without a key although keys are configured (by "
        "default, once any key is set, reads need one too)",
    )
    read_requires_key: bool = Field(
        False, description="close read routes to callers without a key even with no keys set"
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry (traces, metrics, logs to the global "
        "providers); off, it costs nothing per request (checking for providers costs ~30 µs)",
    )
    lookups_without_model: bool = Field(
        False,
        description="answer lookups from the store while no model is loaded (else 503)",
    )
    hot_routes: bool = Field(
        True,
        description="answer plain lookups and event posts in front of the middleware stack "
        "(the app refuses to start if the stack holds middleware they do not reproduce: "
        "switch this off to run such middleware, e.g. CORS, on every request)",
    )
    routing: RoutingPolicy = RoutingPolicy()
    max_events_per_request: int = Field(500, gt=0, description="events in one POST at most")
    max_body_bytes: int = Field(
        1 << 20, gt=0, description="request bodies larger than this are refused with 413"
    )
    event_batch_max: int = Field(
        64,
        gt=0,
        description="posted-events requests re-scored together at most (those waiting then)",
    )
    max_history_events: int = Field(
        2_000, gt=0, description="recent events kept per visitor for real-time re-scoring"
    )
    top_features: int = Field(5, ge=0, description="contributing features shown per score")
    explain_events: Literal["on_read", "inline"] = Field(
        "on_read",
        description=(
            "when posted events re-score a visitor, compute its top features at its next "
            "lookup (on_read: the event answer has none) or at once (inline: TreeSHAP, "
            "about half the cost of a re-score)"
        ),
    )
    batch_contributions: bool = Field(
        True, description="compute top contributing features in the batch job (TreeSHAP)"
    )
    batch_chunk_rows: int = Field(200_000, gt=0, description="rows scored per batch chunk")
    registry_timeout_seconds: float = Field(
        5.0, gt=0, description="MLflow HTTP request timeout of the API (startup, reload, poll)"
    )
    registry_retries: int = Field(
        1, ge=0, description="MLflow HTTP retries of the API: an unreachable registry fails fast"
    )
    alias_poll_seconds: float | None = Field(
        None, gt=0, description="check the alias this often and swap in a new champion"
    )
    model_retry_seconds: float | None = Field(
        10.0, gt=0, description="while no model is loaded, try loading again this often"
    )
    max_future_skew_seconds: float = Field(
        86_400, ge=0, description="posted events later than now + this are rejected"
    )
    min_event_time: datetime = Field(
        datetime(1990, 1, 1, tzinfo=UTC), description="posted events before this are rejected"
    )


@dataclass(frozen=True)
class ServingPaths:
    """Where serving reads and writes, all under the application's data directory."""

    lake_dir: Path
    outputs_dir: Path
    serving_dir: Path
    tracking_uri: str | None

    @classmethod
    def under(cls, data_dir: Path, tracking_uri: str | None) -> ServingPaths:
        return cls(
            lake_dir=data_dir / "lake",
            outputs_dir=data_dir / "outputs",
            serving_dir=data_dir / "serving",
            tracking_uri=tracking_uri,
        )

    @property
    def sqlite_path(self) -> Path:
        return self.serving_dir / "scores.sqlite"

    @property
    def model_cache_dir(self) -> Path:
        return self.serving_dir / "models"

    @property
    def scoring_dir(self) -> Path:
        return self.outputs_dir / "scoring"
