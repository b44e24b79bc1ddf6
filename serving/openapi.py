"""What only the definitions (and the calendar) know, added to FastAPI's `/openapi.json`.

The contract: a client generated from the schema never meets a surprise. A request the schema
accepts is not refused for its shape, and one it rejects is refused; the rules that depend on the
moment (a stage change more than a day ahead) are said in the descriptions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from samepage.definitions import Definitions
from serving.attributes import attribute_rules
from serving.ingest import put_attributes_schema
from serving.patterns import FEEDBACK_FIRST_YEAR, date_time_pattern


def add_definitions(schema: dict[str, Any], defs: Definitions, today: date) -> None:
    """Fill FastAPI's schema in place: attribute names and types, each stage's reasons, feedback's years."""
    schemas = schema.get("components", {}).get("schemas", {})
    if "attributes" in schemas.get("LeadIn", {}).get("properties", {}):
        schemas["LeadIn"]["properties"]["attributes"] = attribute_rules(defs).json_schema()
    _add_ingestion(schemas, defs, today)
    feedback = schemas.get("FeedbackIn")
    if feedback is None:
        return
    props = feedback.get("properties", {})
    if "occurred_at" in props:
        props["occurred_at"] = {
            "type": "string",
            "pattern": date_time_pattern(range(FEEDBACK_FIRST_YEAR, today.year + 1), offset_required=False),
            "title": "Occurred At",
            "description": "When the lead entered the stage (RFC 3339; no offset means UTC); "
            f"not before {FEEDBACK_FIRST_YEAR}, at most a day ahead of the server's clock",
        }
    # Which reasons go with which stage: none (null) for most, one of its own for a stage with reasons.
    plain = [s.key for s in defs.stages if not s.reasons]
    variants: list[dict[str, Any]] = []
    if plain:
        variants.append({"properties": {"stage": {"enum": plain}, "reason": {"type": "null"}}})
    for s in defs.stages:
        if s.reasons:
            variants.append(
                {
                    "properties": {"stage": {"const": s.key}, "reason": {"enum": [r.key for r in s.reasons]}},
                    "required": ["reason"],
                }
            )
    feedback["anyOf"] = variants


def _add_ingestion(schemas: dict[str, Any], defs: Definitions, today: date) -> None:
    """Event types from the definitions, times from 1970 to this year, typed lead attributes."""
    years = date_time_pattern(range(FEEDBACK_FIRST_YEAR, today.year + 1), offset_required=False)
    when = " (RFC 3339; no offset means UTC); not before 1970, at most SAMEPAGE_EVENT_FUTURE_SECONDS ahead of the server's clock"
    event = schemas.get("EventIn", {}).get("properties", {})
    if "type" in event:
        types = [e.key for e in defs.event_types]
        event["type"] = {"enum": types, "title": "Type", "description": "An event type key of the definitions"}
        event["occurred_at"] = {"type": "string", "pattern": years, "title": "Occurred At", "description": "When" + when}
    put = schemas.get("LeadPutIn", {}).get("properties", {})
    if "attributes" in put:
        put["attributes"] = put_attributes_schema(defs)
        put["created_at"] = {
            "anyOf": [{"type": "string", "pattern": years}, {"type": "null"}],
            "title": "Created At",
            "description": "When the lead was created" + when + "; default: now for a new lead",
        }
