"""Segment / RudderStack calls posted to ``POST /v1/events``: their schema, their signature,
and their events by visitor.

A Segment webhook destination (or RudderStack's) posts one call per request (track, page,
identify, ...), and the HTTP tracking API's ``batch`` body holds several. The body's shape
tells them apart from the canonical body (``events_source``): a ``batch`` list is a batch,
a ``type`` is a call, anything else is the canonical ``EventsRequest``. The calls are mapped
with ingestion's own table and rules (``features.ingest.segment``): one event per product,
revenue split over an order's products, page calls as ``page_view``, everything else
ignored and counted by name. Identity is resolved among the calls of the body (a batch in
which a ``userId`` comes with two ``anonymousId`` s is one visitor); across requests the
visitor is the call's ``anonymousId``, else its ``userId``.

With ``segment_shared_secret`` set, a Segment body must carry ``X-Signature``: the hex
HMAC-SHA1 of the raw body under that secret, as Segment's webhooks sign (compared in
constant time; a 401 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    TypeAdapter,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from features.ingest.ga4_mp import event_records
from features.ingest.segment import (
    IdentityMap,
    Record,
    anonymous_id,
    call_records,
    identity_link,
    user_id,
)
from serving.api.ga4_intake import Ga4Body
from serving.api.problems import ProblemError
from serving.api.schemas import (
    MAX_TEXT_LENGTH,
    EventIn,
    EventsRequest,
    Given,
    Rejection,
    Text,
    VisitorId,
    VisitorScore,
)

SIGNATURE_HEADER = b"x-signature"
#: Rejection of an event with a value longer than the canonical body allows.
TOO_LONG = "value_too_long"
_VISITOR_ID = TypeAdapter(VisitorId)


#: Where a call's time may be, as the mapping reads them (``features.ingest.segment``).
_TIMES = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
_IDS = ("anonymousId", "userId")


def _one_of_required(names: Sequence[str]) -> dict[str, Any]:
    """JSON Schema: at least one of ``names`` given as text (their own rules apply)."""
    return {"anyOf": [{"required": [n], "properties": {n: {"type": "string"}}} for n in names]}


class SegmentCall(BaseModel):
    """One Segment / RudderStack call; the spec's fields by their names, others allowed.
    As the spec requires, it names a visitor (``anonymousId`` or ``userId``) and a time."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=False,
        json_schema_extra={"allOf": [_one_of_required(_IDS), _one_of_required(_TIMES)]},
    )

    type: Text = Field(description="track and page are read; identify, screen, ... ignored")
    event: Text | None = Field(None, description="a track call's name (e-commerce spec v2)")
    anonymous_id: Given | None = Field(None, alias="anonymousId", description="the visitor")
    user_id: Given | None = Field(None, alias="userId", description="the logged-in user")
    timestamp: Given | None = Field(None, description="ISO 8601; the time used first")
    original_timestamp: Given | None = Field(None, alias="originalTimestamp")
    received_at: Given | None = Field(None, alias="receivedAt")
    sent_at: Given | None = Field(None, alias="sentAt")
    properties: dict[str, Any] | None = Field(
        None, description="order_id, revenue/total, products[] or one product's fields"
    )
    context: dict[str, Any] | None = Field(None, description="sessionId (RudderStack)")
    # Declared so that a call and a batch never both fit one body (the schema's oneOf).
    batch: None = Field(None, description="not in a call (a batch is a body of its own)")

    @model_validator(mode="after")
    def _names_a_visitor_and_a_time(self) -> SegmentCall:
        if self.anonymous_id is None and self.user_id is None:
            raise ValueError("a call needs an anonymousId or a userId")
        times = (self.timestamp, self.original_timestamp, self.received_at, self.sent_at)
        if all(moment is None for moment in times):
            raise ValueError(f"a call needs a time: one of {', '.join(_TIMES)}")
        return self


class SegmentBatch(BaseModel):
    """Several calls in one body, as the tracking APIs' ``batch`` endpoint takes them."""

    model_config = ConfigDict(extra="allow")

    batch: list[SegmentCall] = Field(min_length=1)


def events_source(given: Any) -> str:
    """Which body ``given`` is: ``segment_batch``, ``segment`` (a call), ``ga4_mp`` (a GA4
    Measurement Protocol body) or ``canonical``."""
    if isinstance(given, BaseModel):
        kinds = {SegmentBatch: "segment_batch", SegmentCall: "segment", Ga4Body: "ga4_mp"}
        return kinds.get(type(given), "canonical")
    if isinstance(given, dict):
        if given.get("batch") is not None:
            return "segment_batch"
        if "type" in given or "batch" in given:
            return "segment"
        if given.get("client_id") is not None or given.get("app_instance_id") is not None:
            return "ga4_mp"
    return "canonical"


#: ``POST /v1/events``'s body: the canonical request, Segment's own shapes or a GA4
#: Measurement Protocol body (``oneOf``).
EventsBody = Annotated[
    Annotated[EventsRequest, Tag("canonical")]
    | Annotated[SegmentCall, Tag("segment")]
    | Annotated[SegmentBatch, Tag("segment_batch")]
    | Annotated[Ga4Body, Tag("ga4_mp")],
    Discriminator(events_source),
]
TRACKER_MODELS: dict[str, type[SegmentCall | SegmentBatch | Ga4Body]] = {
    "segment": SegmentCall,
    "segment_batch": SegmentBatch,
    "ga4_mp": Ga4Body,
}
#: The tracker bodies that carry Segment's ``X-Signature`` when a shared secret is set.
SIGNED_SOURCES = frozenset({"segment", "segment_batch"})


class SegmentEventsResponse(BaseModel):
    """The answer to a tracker's body (Segment calls, a GA4 Measurement Protocol body):
    its events by visitor, each visitor re-scored."""

    accepted: int = Field(description="events accepted, over every visitor")
    rejected: list[Rejection] = Field(
        description="events refused by ingestion's rules; index: the position of the call "
        "(Segment) or of the event (GA4) they came from"
    )
    ignored: dict[str, int] = Field(
        description="calls or events outside the e-commerce table, counted by name (or type)"
    )
    scores: list[VisitorScore] = Field(description="each visitor with accepted events")


def calls_of(body: SegmentCall | SegmentBatch) -> list[dict[str, Any]]:
    """The calls as the mapping reads them: the spec's names, extra fields kept."""
    calls = body.batch if isinstance(body, SegmentBatch) else [body]
    return [call.model_dump(by_alias=True, exclude_none=True) for call in calls]


@dataclass
class VisitorEvents:
    """One visitor's events in a body, each with the position of the call it came from."""

    events: list[EventIn] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)


@dataclass
class SegmentEvents:
    by_visitor: dict[str, VisitorEvents]
    #: Calls refused before validation: no visitor, or one the API cannot key.
    rejected: list[Rejection]
    ignored: dict[str, int]

    @property
    def events(self) -> int:
        return sum(len(v.events) for v in self.by_visitor.values())


def _visitor_problem(visitor: str | None) -> tuple[str, str] | None:
    """(reason, detail) of a call whose visitor the API cannot key; ingestion's reasons."""
    if visitor is None:
        return "missing_visitor", "no anonymousId nor userId"
    try:
        _VISITOR_ID.validate_python(visitor)
    except PydanticValidationError:
        return "bad_visitor_id", "not a visitor id the API accepts (1-256 printable characters)"
    return None


def _too_long(record: dict[str, str | None]) -> str | None:
    """The first field longer than a canonical post allows (``Text``), as ``field=N chars``:
    a call's free-form properties are not bounded by the schema, the stored events are."""
    for name, value in record.items():
        if value is not None and len(value) > MAX_TEXT_LENGTH:
            return f"{name}={len(value)} characters, at most {MAX_TEXT_LENGTH}"
    return None


def segment_events(calls: Sequence[dict[str, Any]]) -> SegmentEvents:
    """The body's events by visitor (identity resolved among its calls), as canonical
    ``EventIn`` values for the intake's validation: text as the mapping writes it, which
    ingestion's rules parse or refuse with their reason, as in a file."""
    identities = IdentityMap.from_links(
        link for call in calls if (link := identity_link(call)) is not None
    )
    rows: list[tuple[int, str | None, Record]] = []
    ignored: dict[str, int] = {}
    for index, call in enumerate(calls):
        visitor = identities.visitor(anonymous_id(call), user_id(call))
        records, ignored_as = call_records(call, visitor)
        if ignored_as is not None:
            ignored[ignored_as] = ignored.get(ignored_as, 0) + 1
            continue
        rows.extend((index, visitor, record) for record in records)
    return _by_visitor(rows, ignored)


def ga4_events(body: Ga4Body, received_at: datetime) -> SegmentEvents:
    """A GA4 Measurement Protocol body's events (``features.ingest.ga4_mp``), as Segment's
    are: one visitor, each event's rows indexed by the event's position."""
    records, ignored = event_records(body.model_dump(exclude_none=True), received_at)
    return _by_visitor([(i, r["visitor_id"], r) for i, r in records], ignored)


def _by_visitor(
    rows: Iterable[tuple[int, str | None, Record]], ignored: dict[str, int]
) -> SegmentEvents:
    """Mapped rows (source position, visitor, record) by visitor, for the intake."""
    by_visitor: dict[str, VisitorEvents] = {}
    rejected: list[Rejection] = []
    for index, visitor, record in rows:
        problem = _visitor_problem(visitor)
        if problem is not None or visitor is None:
            reason, detail = problem or ("missing_visitor", "")
            rejected.append(Rejection(index=index, reason=reason, detail=detail))
            continue
        too_long = _too_long(record)
        if too_long is not None:
            rejected.append(Rejection(index=index, reason=TOO_LONG, detail=too_long))
            continue
        # Not validated here: ingestion's rules decide, with their reasons.
        fields: dict[str, Any] = {**record, "visitor_id": None}
        mine = by_visitor.setdefault(visitor, VisitorEvents())
        mine.events.append(EventIn.model_construct(**fields))
        mine.calls.append(index)
    return SegmentEvents(by_visitor, rejected, ignored)


def at_calls(rejected: Iterable[Rejection], calls: Sequence[int]) -> list[Rejection]:
    """A visitor's rejections (indexed by its events) indexed by the calls they came from."""
    return [r.model_copy(update={"index": calls[r.index]}) for r in rejected]


def check_signature(
    secret: SecretStr | None, raw: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    """With a shared secret, ``X-Signature`` must be the HMAC-SHA1 (hex) of ``raw``: 401."""
    if secret is None:
        return
    given = [value for name, value in headers if name == SIGNATURE_HEADER]
    expected = hmac.new(secret.get_secret_value().encode(), raw, hashlib.sha1).hexdigest()
    if len(given) != 1 or not hmac.compare_digest(given[0].strip().lower(), expected.encode()):
        raise ProblemError(
            401,
            "Bad signature",
            "a Segment body needs one X-Signature header: the HMAC-SHA1 (hex) of the body "
            "under the shared secret (PROPENSITY_SERVING__SEGMENT_SHARED_SECRET)",
        )
