"""GA4 Measurement Protocol bodies posted to ``POST /v1/events``: their schema.

The body a GA4 Measurement Protocol client sends to ``/mp/collect`` (``client_id`` or
``app_instance_id``, ``user_id``, ``timestamp_micros``, ``events`` of ``name`` and
``params``) can be sent here unchanged, with this API's key instead of GA4's
``api_secret``; its events are mapped as ``features.ingest.ga4_mp`` documents.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from serving.api.schemas import Given

#: GA4's own limit on the events of one Measurement Protocol request.
MAX_GA4_EVENTS = 25


class Ga4Event(BaseModel):
    """One Measurement Protocol event; other fields allowed, as GA4 allows them."""

    model_config = ConfigDict(extra="allow")

    name: Given = Field(description="a GA4 event name; recommended e-commerce ones are read")
    params: dict[str, Any] | None = Field(
        None, description="items[], value, transaction_id, session_id, ..."
    )
    timestamp_micros: StrictInt | Given | None = Field(
        None, description="the event's time, microseconds since the epoch (else the body's)"
    )


class Ga4Body(BaseModel):
    """A GA4 Measurement Protocol body, as Google documents it."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("client_id", "app_instance_id")
            ]
        },
    )

    client_id: Given | None = Field(None, description="the visitor (web streams)")
    app_instance_id: Given | None = Field(None, description="the visitor (app streams)")
    user_id: Given | None = Field(None, description="the logged-in user")
    timestamp_micros: StrictInt | Given | None = Field(
        None, description="the events' time, microseconds since the epoch (default: now)"
    )
    events: list[Ga4Event] = Field(min_length=1, max_length=MAX_GA4_EVENTS)
    # Declared so that a GA4 body and the canonical one never both fit a body (``oneOf``).
    visitor_id: None = Field(None, description="not in a GA4 body (client_id is the visitor)")

    @model_validator(mode="after")
    def _names_a_visitor(self) -> Ga4Body:
        if self.client_id is None and self.app_instance_id is None:
            raise ValueError("a GA4 body needs a client_id or an app_instance_id")
        return self
