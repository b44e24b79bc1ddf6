"""Small factories: one canonical row each, any field overridden (`make_lead(industry="Retail")`)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def make_lead(**overrides: Any) -> dict[str, Any]:
    """One canonical lead row; override any field."""
    lead = {
        "lead_id": "L-1",
        "created_at": pd.Timestamp("2026-01-05T10:00:00Z"),
        "source": "Webinar",
        "industry": "Software",
        "employees": 250,
        "annual_revenue": 40_000_000.0,
        "country": "United States",
        "job_title": "VP Marketing",
        "seniority": "VP",
        "department": "Marketing",
    }
    lead.update(overrides)
    return lead


def make_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "lead_id": "L-1",
        "occurred_at": pd.Timestamp("2026-01-06T09:00:00Z"),
        "type": "page_view",
        "value": float("nan"),
    }
    event.update(overrides)
    return event


def make_stage(**overrides: Any) -> dict[str, Any]:
    stage = {
        "lead_id": "L-1",
        "stage": "lead",
        "occurred_at": pd.Timestamp("2026-01-05T10:00:00Z"),
        "reason": None,
    }
    stage.update(overrides)
    return stage


def make_inbox_event(**overrides: Any) -> Any:
    """One event as the API inbox stores it; override any field."""
    from samepage.inbox import InboxEvent

    fields: dict[str, Any] = {
        "event_id": "evt-1",
        "lead_id": "L-1",
        "type": "page_view",
        "occurred_at": pd.Timestamp("2026-01-06T09:00:00Z").to_pydatetime(),
        "value": None,
    }
    fields.update(overrides)
    return InboxEvent(**fields)
