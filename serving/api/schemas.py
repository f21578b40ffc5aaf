"""The API's request and response models: the public data contract of serving.

A stored record (``serving.store.base``) is a ``VisitorScore`` as JSON; the batch job builds
them vectorised and ``tests/unit/serving/store/test_records.py`` checks they validate against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)
from pydantic_core import PydanticCustomError

from features.definitions import FEATURE_COLUMNS
from serving.api.problems import quoted
from serving.policy.routing import Reason, Route

EmailStatus = Literal["subscribed", "unsubscribed", "pending", "unknown"]
AdsConsent = Literal["granted", "denied", "unknown"]
#: Printable text: no control characters (C0, DEL, C1), no invisible formatting characters
#: (zero-width, bidirectional overrides, line/paragraph separators, BOM), and not only blanks
#: (ingestion strips them and finds no visitor). Other Unicode is allowed, as ingestion
#: allows it in the lake. Written without lookaround, so that JSON Schema's, pydantic's and
#: Python's regex engines read it alike.
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
_VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]"
VISITOR_ID_PATTERN = f"^{_PRINTABLE}*{_VISIBLE}{_PRINTABLE}*$"
MAX_TEXT_LENGTH = 1_000
MAX_VISITOR_ID_LENGTH = 256
#: Strings are bounded, and must be valid Unicode (a lone surrogate escape is rejected).
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]


def _not_a_boolean(value: object) -> object:
    # pydantic's lax mode reads JSON ``true`` as the number 1: a price of 1 nobody sent.
    if isinstance(value, bool):
        raise PydanticCustomError("boolean_not_scalar", "{value} is not a number or text",
                                  {"value": str(value).lower()})  # fmt: skip
    return value


Scalar = Annotated[Text | int | float | None, BeforeValidator(_not_a_boolean)]
#: Text with something in it besides blanks (ingestion strips blanks, then finds nothing).
#: The blanks are spelled out: ``\S`` differs between JSON Schema's regex (ECMA 262: U+0085 is
#: not a blank) and pydantic's and Python's (it is).
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
Given = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=NOT_BLANK)]
#: Blanks around an id are trimmed, as ingest trims them, so " v1 " online is the lake's "v1".
VisitorId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_VISITOR_ID_LENGTH,
        pattern=VISITOR_ID_PATTERN,
    ),
]


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="this feature's additive part of the raw score")


class VisitorScore(BaseModel):
    """The latest score of a visitor and the decision taken on it."""

    visitor_id: str
    score: float = Field(description="calibrated probability of a purchase in the horizon")
    decile: int | None = Field(
        description="1 = top 10% of the last batch run's scores (null before any run)"
    )
    route: Route
    reason: Reason
    expected_value: float = Field(description="expected incremental profit of the route")
    model_version: str
    as_of: datetime = Field(description="features use events before this instant")
    scored_at: datetime
    source: Literal["batch", "real_time"]
    email_status: EmailStatus
    ads_consent: AdsConsent
    top_features: list[Contribution] | None = Field(
        None,
        description="features that moved this score most (LightGBM pred_contrib); null in "
        "an event answer by default (computed at the visitor's next lookup), or when the "
        "model that scored it is no longer the one loaded",
    )
    history_complete: bool | None = Field(
        None,
        description="whether the score saw every event of the model's feature window: true "
        "for a batch score; false for a re-score from a stored history that may lack some (the "
        "last batch run kept a shorter window than this model reads, or the per-visitor event "
        "limit cut it; the next batch run fills it); null when the caller gave the events or "
        "features",
    )


class Contactability(BaseModel):
    """A consent update: a field omitted (or null) stays as stored ("unknown" for a visitor
    the store does not hold)."""

    model_config = ConfigDict(extra="forbid")

    email_status: EmailStatus | None = Field(None, description="omitted: as stored")
    ads_consent: AdsConsent | None = Field(None, description="omitted: as stored")


class EventIn(BaseModel):
    """One event in the canonical shape; values are checked by ingestion's rules (an event
    they refuse is rejected with its reason, the others are applied)."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: Text | None = Field(None, description="defaults to the request's visitor")
    # Required, never null nor blank: ingestion rejects an event without them.
    event_time: Given | int | float = Field(
        description="ISO 8601; without an offset it means UTC; not before the server's "
        "min_event_time nor later than its clock plus max_future_skew_seconds"
    )
    event_name: Given = Field(description="one of the canonical event names")
    item_id: Scalar = None
    item_category: Scalar = None
    price: Scalar = None
    quantity: Scalar = None
    revenue: Scalar = None
    transaction_id: Scalar = None
    session_id: Scalar = None
    user_id: Scalar = None


class Rejection(BaseModel):
    index: int = Field(description="position of the event in the request")
    reason: str
    detail: str | None = None


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor_id: VisitorId
    events: list[EventIn] = Field(min_length=1)
    as_of: AwareDatetime | None = Field(
        None,
        description="score as of this instant (default: now, or just after the latest "
        "posted event)",
    )
    contactability: Contactability | None = Field(
        None, description="update of the visitor's consent (default: as stored)"
    )


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[Rejection]
    score: VisitorScore


def _known_features(named: dict[str, float | None]) -> dict[str, float | None]:
    unknown = sorted(set(named) - set(FEATURE_COLUMNS))
    if unknown:
        shown = ", ".join(quoted(name) for name in unknown[:5])
        raise ValueError(f"{len(unknown)} unknown feature name(s): {shown}")
    return named


#: Features by name (``FEATURE_COLUMNS``); a model input not given, or null, is missing.
FeatureValues = Annotated[
    dict[str, float | None],
    AfterValidator(_known_features),
    Field(
        json_schema_extra={"propertyNames": {"enum": list(FEATURE_COLUMNS)}},
        description="feature values by name; a model input absent or null is missing",
    ),
]


class _ScoreFields(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    visitor_id: VisitorId
    as_of: AwareDatetime | None = Field(
        None, description="default: now (or just after the latest given event)"
    )
    contactability: Contactability | None = None


class ScoreFromEvents(_ScoreFields):
    """Score from recent events, through the online feature path."""

    events: list[EventIn]


class ScoreFromFeatures(_ScoreFields):
    """Score from features given by name."""

    features: FeatureValues


def _score_source(given: Any) -> str | None:
    """Which request a body is: events or features, and None for both or neither (an
    error); anything not an object is read as events, to be told it must be one."""
    if isinstance(given, ScoreFromEvents | ScoreFromFeatures):
        return "events" if isinstance(given, ScoreFromEvents) else "features"
    if not isinstance(given, dict):
        return "events"
    has_events, has_features = "events" in given, "features" in given
    if has_events != has_features:
        return "events" if has_events else "features"
    return None


#: Score now, storing nothing: either events or features (``oneOf`` in the schema).
ScoreRequest = Annotated[
    Annotated[ScoreFromEvents, Tag("events")] | Annotated[ScoreFromFeatures, Tag("features")],
    Discriminator(
        _score_source,
        custom_error_type="events_xor_features",
        custom_error_message="give either events or features, not both and not neither",
    ),
]


class FeatureWindow(BaseModel):
    lookback: timedelta | None = Field(
        description="events in [as_of - lookback, as_of) count; null: every event before as_of"
    )
    session_timeout: timedelta = Field(description="inactivity that ends a session")
    local_time_offset: timedelta = Field(
        description="shop's local time minus UTC, for hour, weekday and day features"
    )


class ModelResponse(BaseModel):
    name: str
    alias: str | None
    version: str
    run_id: str | None
    kind: str
    predictor: str
    trained_at: datetime | None
    metrics: dict[str, float]
    feature_names: list[str]
    feature_config: FeatureWindow = Field(
        description="how the model's inputs are computed from events (its training "
        "configuration): every score of this model uses it"
    )
    horizon: timedelta | None = Field(
        description="the score is the probability of a purchase within this time (ISO 8601)"
    )
    last_run: dict[str, object] | None = Field(description="the batch run whose scores are live")


class Readiness(BaseModel):
    ready: bool
    model_version: str | None
    store: bool
    reason: str | None


class ReloadResponse(BaseModel):
    reloaded: bool
    model_version: str | None
    previous_version: str | None
    message: str
