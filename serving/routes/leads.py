"""GET /v1/leads/{lead_id}: the lead record (who, stage history, latest score with its reasons)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator

from samepage.data.live import lead_events
from samepage.definitions import Definitions
from samepage.errors import UnknownLead
from samepage.inbox import Inbox, LeadUpdate
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import table_path
from serving.deps import DefsDep, InboxDep, LiveDep, MetricsDep, RecordsDep, ScorerDep, SettingsDep, WriterDep
from serving.errors import responses
from serving.explain import json_value
from serving.ingest import check_attributes, check_time
from serving.live_schemas import LeadPutIn, LeadPutOut
from serving.online import push
from serving.schemas import NO_CONTROL_PATTERN, LeadRecordOut, plain_text

# Like the body's `lead_id`: no control characters (a NUL in a PostgreSQL query was a 500).
LeadPathId = Annotated[
    str, Path(min_length=1, max_length=200, json_schema_extra={"pattern": NO_CONTROL_PATTERN}), AfterValidator(plain_text)
]

router = APIRouter(prefix="/v1", tags=["leads"])


@router.get("/leads/{lead_id}", response_model=LeadRecordOut, responses=responses(401, 404, 422))
def lead_record(
    lead_id: LeadPathId, settings: SettingsDep, defs: DefsDep, scorer: ScorerDep, records: RecordsDep, writer: WriterDep
) -> dict:
    """The lead record: attributes, stage history (imported and fed back) and the latest score."""
    return lead_record_dict(lead_id, settings, defs, scorer, records, writer)


@router.put(
    "/leads/{lead_id}",
    status_code=201,
    response_model=LeadPutOut,
    responses={
        200: {"model": LeadPutOut, "description": "The lead was known; its attributes were updated"},
        **responses(400, 401, 413, 422),
    },
)
def put_lead(
    lead_id: LeadPathId,
    body: LeadPutIn,
    settings: SettingsDep,
    defs: DefsDep,
    inbox: InboxDep,
    live: LiveDep,
    metrics: MetricsDep,
    response: Response,
) -> dict:
    """Create (201) or update (200) a lead from marketing automation; scored from at once."""
    kinds = live.attribute_kinds if live is not None else {}
    attributes = check_attributes(body.attributes, defs, kinds)
    created_at = None
    if body.created_at is not None:
        future = timedelta(seconds=settings.event_future_seconds)
        # Kept to the second, as the online store keeps times: online and offline then agree.
        created_at = check_time(body.created_at, "body.created_at", datetime.now(UTC), future).replace(microsecond=0)
    known = inbox.knows(lead_id) or (live is not None and live.known(lead_id))
    inbox.add_lead(LeadUpdate(lead_id=lead_id, attributes=attributes, created_at=created_at))
    metrics.ingested.labels("lead", "updated" if known else "created").inc()
    push(live, metrics, leads=[lead_id])
    if known:
        response.status_code = 200
    return {"lead_id": lead_id, "created": not known, "created_at": created_at, "attributes": attributes}


def lead_record_dict(lead_id: str, settings: Settings, defs: Definitions, scorer: Any, records: RecordStore, writer: Any) -> dict:
    """The record as the API returns it; the lead page renders the same dict. `UnknownLead` if nothing knows it."""
    champion = scorer.champion
    attributes = champion.online.attributes(lead_id) if champion is not None else None
    stages = _stages(settings, defs, records, lead_id)
    events = _events(settings, defs, records, lead_id)
    writer.flush()  # read your own writes: a score answered a moment ago is on the record
    latest = records.latest_score(lead_id)
    if attributes is None and not stages and latest is None and not events:
        raise UnknownLead([lead_id], "is unknown: not in the feature store, no stage history, never scored")
    return {
        "lead_id": lead_id,
        "known": attributes is not None,
        "attributes": {k: json_value(v) for k, v in (attributes or {}).items()},
        "stages": stages,
        "events": events,
        "latest_score": None
        if latest is None
        else {
            "score": latest["score"],
            "mql_passed": latest["mql_passed"],
            "model": {"name": latest["model_name"], "version": latest["model_version"]},
            "definitions_version": latest["definitions_version"],
            "scored_at": latest["scored_at"],
            "result": latest["payload"],
        },
    }


def _stages(settings: Settings, defs: Definitions, records: RecordStore, lead_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    path = table_path(settings.data_dir, "stages")
    if path.exists():
        imported = pd.read_parquet(path, filters=[("lead_id", "==", lead_id)])
        rows += [_stage_row(defs, r, "import") for r in imported.to_dict("records")]
    rows += [_stage_row(defs, r, "feedback") for r in records.feedback(lead_id).to_dict("records")]
    rows.sort(key=lambda r: r["occurred_at"])
    return rows


def _events(settings: Settings, defs: Definitions, records: RecordStore, lead_id: str) -> list[dict[str, Any]]:
    labels = {e.key: e.label for e in defs.event_types}
    frame = lead_events(settings.data_dir, Inbox.of(records), lead_id)
    return [
        {
            "type": str(r["type"]),
            "label": labels.get(str(r["type"]), str(r["type"])),
            "occurred_at": pd.Timestamp(r["occurred_at"]).to_pydatetime(),
            "value": None if pd.isna(r["value"]) else float(r["value"]),
            "source": r["source"],
        }
        for r in frame.to_dict("records")
    ]


def _stage_row(defs: Definitions, r: dict[str, Any], source: str) -> dict[str, Any]:
    try:
        name = defs.stage(str(r["stage"])).name
    except KeyError:
        name = str(r["stage"])
    reason = r.get("reason")
    return {
        "stage": str(r["stage"]),
        "name": name,
        "occurred_at": pd.to_datetime(r["occurred_at"], utc=True).to_pydatetime(),
        "reason": None if reason is None or pd.isna(reason) else str(reason),
        "source": source,
    }
