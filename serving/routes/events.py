"""POST /v1/events: engagement from marketing automation, durable before the answer, counted at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from serving.deps import DefsDep, InboxDep, LiveDep, MetricsDep, SettingsDep
from serving.errors import responses
from serving.ingest import check_events
from serving.live_schemas import EventsIn, EventsOut
from serving.online import push

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventsOut, responses=responses(400, 401, 413, 422))
def post_events(
    body: EventsIn, settings: SettingsDep, defs: DefsDep, inbox: InboxDep, live: LiveDep, metrics: MetricsDep
) -> dict:
    """Store up to 10,000 events (idempotent on event_id); the next score of their leads counts them."""
    events = check_events(body.events, defs, datetime.now(UTC), timedelta(seconds=settings.event_future_seconds))
    new = inbox.add_events(events)
    duplicates = len(events) - len(new)
    metrics.ingested.labels("event", "accepted").inc(len(new))
    metrics.ingested.labels("event", "duplicate").inc(duplicates)
    if new:
        push(live, metrics, events=sorted({lead_id for _id, lead_id in new}))
    return {"accepted": len(new), "duplicates": duplicates}
