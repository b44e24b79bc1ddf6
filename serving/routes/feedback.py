"""POST /v1/feedback: sales' stage changes, stored durably before the answer; the next labels."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response

from samepage.records import Feedback
from serving.deps import DefsDep, MetricsDep, RecordsDep
from serving.errors import ApiError, responses
from serving.ingest import utc
from serving.schemas import FeedbackIn, FeedbackOut

router = APIRouter(prefix="/v1", tags=["feedback"])

FUTURE_SLACK = timedelta(days=1)  # clocks differ; a stage change days ahead is a mistake


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackOut,
    responses={
        200: {"model": FeedbackOut, "description": "This event_id was recorded before; nothing was written"},
        **responses(400, 401, 413, 422),
    },
)
def feedback(body: FeedbackIn, defs: DefsDep, records: RecordsDep, metrics: MetricsDep, response: Response) -> dict:
    """Record a stage change (201), or acknowledge a repeat of the same event_id (200)."""
    problem = defs.check_stage(body.stage, body.reason)
    if problem:
        field = "stage" if problem.startswith("unknown stage") else "reason"
        raise ApiError(422, f"body.{field}: {problem}")
    if body.reason is not None and not defs.stage(body.stage).reasons:
        raise ApiError(422, f"body.reason: stage {body.stage!r} takes no reason")
    occurred_at = utc(body.occurred_at, "body.occurred_at")
    if occurred_at > datetime.now(UTC) + FUTURE_SLACK:
        raise ApiError(422, f"body.occurred_at: {occurred_at.isoformat()} is in the future")
    event_id = body.event_id or derived_event_id(body.lead_id, body.stage, occurred_at, body.reason)
    created = records.add_feedback(
        Feedback(
            lead_id=body.lead_id,
            stage=body.stage,
            occurred_at=occurred_at,
            reason=body.reason,
            event_id=event_id,
            actor=body.actor,
        )
    )
    metrics.feedback.labels(body.stage, "created" if created else "duplicate").inc()
    if not created:
        response.status_code = 200
    return {
        "event_id": event_id,
        "lead_id": body.lead_id,
        "stage": body.stage,
        "occurred_at": occurred_at,
        "reason": body.reason,
        "actor": body.actor,
        "created": created,
    }


def derived_event_id(lead_id: str, stage: str, occurred_at: datetime, reason: str | None) -> str:
    """Without an event_id, a webhook retry of the same fact must not count twice."""
    text = "\x1f".join([lead_id, stage, occurred_at.isoformat(), reason or ""])
    return "auto-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
