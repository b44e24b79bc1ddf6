"""Shapes of live ingestion: `PUT /v1/leads/{lead_id}` and `POST /v1/events` (the contract's fields).

Definition-dependent checks (event types, attribute types, times against the clock) happen in the
routes, which know the definitions and name the item (`body.events[17].type`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from serving.schemas import MAX_ATTRIBUTES, NEW_LEAD_ATTRIBUTES, AttributeValue, LeadId, StageTime, plain_text, text_field

MAX_EVENTS = 10_000  # the contract's limit per call

EventId = Annotated[
    str,
    text_field(1, 200, "Idempotency key; without one, the same lead, type, time and value count as the same event"),
    AfterValidator(plain_text),
]
AttributeName = Annotated[str, text_field(1, 64, "An attribute (lead column) name"), AfterValidator(plain_text)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]

_PUT_EXAMPLE: dict[str, Any] = {"created_at": "2026-11-20T15:30:00Z", "attributes": NEW_LEAD_ATTRIBUTES}
_EVENTS_EXAMPLE: dict[str, Any] = {
    "events": [
        {"event_id": "mka-88121", "lead_id": "hubspot-98121", "type": "demo_request", "occurred_at": "2026-11-20T15:35:00Z"},
        {"lead_id": "hubspot-98121", "type": "pricing_page_view", "occurred_at": "2026-11-20T15:31:10Z"},
    ]
}


class LeadPutIn(BaseModel):
    """A lead's attributes from marketing automation: the ones named are set (null clears one), others kept."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PUT_EXAMPLE]})

    created_at: StageTime | None = Field(default=None, description="When the lead was created; default: now for a new lead")
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)


class LeadPutOut(BaseModel):
    """What was stored; the next score of this lead reads it."""

    model_config = ConfigDict(extra="forbid")

    lead_id: str
    created: bool = Field(description="True when the lead was new (201), false when it was updated (200)")
    created_at: datetime | None = Field(description="The creation time given, if any (else: kept, or now for a new lead)")
    attributes: dict[str, AttributeValue] = Field(description="The attributes this call set, as stored")


class EventIn(BaseModel):
    """One engagement event; `type` is an event type key of the definitions."""

    model_config = ConfigDict(extra="forbid")

    event_id: EventId | None = None
    lead_id: LeadId
    type: str = Field(min_length=1, max_length=64, description="An event type key of the definitions")
    occurred_at: StageTime
    value: FiniteNumber | None = Field(default=None, description="Optional amount (e.g. seconds on page)")


class EventsIn(BaseModel):
    """Up to 10,000 events in one call; all are stored or none (a bad item is a 422 naming it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EVENTS_EXAMPLE]})

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsOut(BaseModel):
    """How many events were new, and how many had been taken before (same event_id)."""

    model_config = ConfigDict(extra="forbid")

    accepted: int
    duplicates: int
