"""Checks on what marketing automation sends, before anything is stored (all of a call, or none of it).

Each problem is a 422 naming the item (`body.events[17].type`, `body.attributes.employees`), as an
import names file, row and column. Event ids missing from a call are derived from the event
itself, so a retried webhook counts once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from features.derive import coerce
from features.transform import RESERVED, engagement_keys, needed_columns
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute
from samepage.inbox import InboxEvent
from serving.attributes import JSON_TYPES, value_problem
from serving.errors import ApiError
from serving.live_schemas import EventIn
from serving.schemas import MAX_ATTRIBUTES, NO_CONTROL_PATTERN

# Older stamps are typos. The bound is on the year as written (what the schema's pattern says):
# 1970-01-01T03:39+05:23 is accepted although it is 1969 in UTC; 1969-12-31T23:00Z is not.
EARLIEST_YEAR = 1970


def utc(value: datetime, where: str) -> datetime:
    """The time in UTC (naive means UTC); 422 naming `where` when it is out of range."""
    if value.year < EARLIEST_YEAR:
        raise ApiError(422, f"{where}: {value.isoformat()} is before {EARLIEST_YEAR}")
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, f"{where}: {value.isoformat()} is out of range") from None


def check_time(value: datetime, where: str, now: datetime, future: timedelta) -> datetime:
    stamp = utc(value, where)
    if stamp > now + future:
        raise ApiError(422, f"{where}: {stamp.isoformat()} is in the future (more than {future.total_seconds():g} s ahead)")
    return stamp


def derived_event_id(lead_id: str, type_: str, occurred_at: datetime, value: float | None) -> str:
    """Without an event_id, a webhook retry of the same event must not count twice."""
    text = "\x1f".join([lead_id, type_, occurred_at.isoformat(), "" if value is None else repr(float(value))])
    return "auto-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_events(events: Sequence[EventIn], defs: Definitions, now: datetime, future: timedelta) -> list[InboxEvent]:
    """The events as the inbox stores them; ApiError 422 naming the first bad item."""
    allowed = [e.key for e in defs.event_types]
    known = set(allowed)
    out: list[InboxEvent] = []
    for i, event in enumerate(events):
        where = f"body.events[{i}]"
        if event.type not in known:
            raise ApiError(422, f"{where}.type: {event.type!r} is not one of the definitions' event types {allowed}")
        occurred_at = check_time(event.occurred_at, f"{where}.occurred_at", now, future)
        event_id = event.event_id or derived_event_id(event.lead_id, event.type, occurred_at, event.value)
        out.append(InboxEvent(event_id, event.lead_id, event.type, occurred_at, event.value))
    return out


def reserved_names(defs: Definitions) -> set[str]:
    """Names an attribute may not take: the store's own fields and every model feature key that is not a column."""
    columns = set(needed_columns(defs))
    features = {f.key for f in defs.features if f.kind != "attribute" or f.column != f.key}
    return (RESERVED | {"created_at"} | set(engagement_keys(defs)) | features) - columns


def check_attributes(attributes: Mapping[str, Any], defs: Definitions, kinds: Mapping[str, str]) -> dict[str, Any]:
    """Attributes as stored: known columns in their kind (as `/openapi.json` says), new ones as JSON scalars."""
    reserved = reserved_names(defs)
    known = {**needed_columns(defs), **kinds}
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        where = f"body.attributes.{name}"
        if name in reserved:
            raise ApiError(422, f"{where}: {name!r} is a feature or a field of the store, not an attribute a lead can set")
        kind = known.get(name)
        problem = value_problem(value, kind) if kind is not None else _scalar_problem(value)
        if problem:
            raise ApiError(422, f"{where}: {problem}")
        if kind is not None:
            try:
                coerced = coerce(name, value, kind)
            except InvalidAttribute as exc:
                raise exc.at("body.") from None
            out[name] = coerced.isoformat() if isinstance(coerced, datetime) else coerced
        else:
            out[name] = value
    return out


def _scalar_problem(value: Any) -> str | None:
    """A new attribute takes any JSON scalar the schema allows: text, a number within ±1e15, true/false, null."""
    if isinstance(value, (str, bool)) or value is None:
        return value_problem(value, "category") if isinstance(value, str) else None
    return value_problem(value, "number")


def put_attributes_schema(defs: Definitions) -> dict[str, Any]:
    """`attributes` of `PUT /v1/leads/{id}` in `/openapi.json`: the definitions' columns typed, any
    other name a JSON scalar, no name of a feature or of the store's own fields."""
    scalar = {"anyOf": [dict(JSON_TYPES["category"]), dict(JSON_TYPES["number"]), {"type": "boolean"}, {"type": "null"}]}
    return {
        "type": "object",
        "title": "Attributes",
        "description": "Lead columns to set (null clears one); columns not named keep their values",
        "maxProperties": MAX_ATTRIBUTES,
        "properties": {
            name: {"anyOf": [dict(JSON_TYPES[kind]), {"type": "null"}]} for name, kind in needed_columns(defs).items()
        },
        "propertyNames": {
            "minLength": 1,
            "maxLength": 64,
            "pattern": NO_CONTROL_PATTERN,
            "not": {"enum": sorted(reserved_names(defs))},
        },
        "additionalProperties": scalar,
    }
