"""Live ingestion end to end: PUT a lead, POST its events, the next score counts them at once."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.app import create_app
from tests.serving.conftest import AUTH, score_body
from tests.serving.test_pages import page_path

NEW_LEAD = {"source": "Webinar", "industry": "Software", "employees": 420, "country": "Germany", "seniority": "Director"}


@pytest.fixture(scope="module")
def live(own_workspace_module: Settings, definitions: Definitions) -> Iterator[TestClient]:
    """The app over a copy of the session workspace (ingestion writes to it)."""
    app = create_app(own_workspace_module, definitions, access_log=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def inbox_counts(settings: Settings) -> tuple[int, int]:
    records = RecordStore.from_settings(settings)
    try:
        inbox = Inbox.of(records)
        return len(inbox.lead_updates()), len(inbox.events())
    finally:
        records.close()


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def contribution(result: dict[str, Any], feature: str) -> dict[str, Any]:
    return next(c for c in result["explanation"]["contributions"] if c["feature"] == feature)


def event(lead_id: str, type_: str = "demo_request", when: datetime | None = None, **extra: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "type": type_, "occurred_at": iso(when or datetime.now(UTC)), **extra}


def test_a_new_lead_and_its_demo_request_change_the_next_score(live: TestClient) -> None:
    put = live.put("/v1/leads/mka-new-1", json={"attributes": NEW_LEAD}, headers=AUTH)
    assert put.status_code == 201, put.text
    assert put.json()["created"] is True and put.json()["attributes"]["employees"] == 420.0
    first = live.post("/v1/score", json=score_body("mka-new-1"), headers=AUTH).json()
    assert contribution(first, "industry")["value"] == "Software"  # scored from what was PUT
    assert first["explanation"]["contributions"] and contribution(first, "days_since_created")["value"] < 0.01
    before = contribution(first, "demo_requests_90d")["value"]
    # Events count from the first whole second at or after their time (as offline): a webhook's
    # whole-second stamp of this moment counts at once, a fractional one within the second.
    stamp = datetime.now(UTC).replace(microsecond=0)
    posted = live.post("/v1/events", json={"events": [event("mka-new-1", when=stamp)]}, headers=AUTH)
    assert posted.status_code == 200 and posted.json() == {"accepted": 1, "duplicates": 0}
    started = time.perf_counter()
    second = live.post("/v1/score", json=score_body("mka-new-1"), headers=AUTH).json()
    assert time.perf_counter() - started < 1.0  # the very next request, no refresh in between
    assert contribution(second, "demo_requests_90d")["value"] == before + 1
    assert second["score"] != first["score"]
    # Issue 11's trend: the change since this lead's previous score, the event ingested between them.
    assert first["trend"] is None
    assert second["trend"]["previous_score"] == first["score"]
    assert second["trend"]["delta"] == pytest.approx(second["score"] - first["score"], abs=1e-12)
    assert pd.Timestamp(second["trend"]["previous_at"]) == pd.Timestamp(first["scored_at"])
    exact = second["explanation"]["base_value"] + sum(c["contribution"] for c in second["explanation"]["contributions"])
    assert exact == pytest.approx(math.log(second["score"] / (1 - second["score"])), abs=1e-6)
    record = live.get("/v1/leads/mka-new-1", headers=AUTH).json()
    assert [(e["type"], e["source"]) for e in record["events"]] == [("demo_request", "api")]
    assert record["attributes"]["industry"] == "Software"
    page = live.get(page_path("mka-new-1"))
    assert page.status_code == 200 and 'id="engagement"' in page.text and "Demo request" in page.text


def test_put_updates_only_the_named_attributes(live: TestClient) -> None:
    assert live.put("/v1/leads/mka-upd", json={"attributes": NEW_LEAD}, headers=AUTH).status_code == 201
    again = live.put("/v1/leads/mka-upd", json={"attributes": {"seniority": "Student", "employees": None}}, headers=AUTH)
    assert again.status_code == 200 and again.json()["created"] is False
    attrs = live.get("/v1/leads/mka-upd", headers=AUTH).json()["attributes"]
    assert attrs["seniority"] == "Student" and attrs["industry"] == "Software" and attrs["employees"] is None
    verdict = live.post("/v1/score", json=score_body("mka-upd"), headers=AUTH).json()["mql"]
    assert not next(c for c in verdict["criteria"] if c["key"] == "not_student")["met"]


def test_put_of_an_imported_lead_is_an_update(live: TestClient, demo_leads: pd.DataFrame) -> None:
    lead = str(demo_leads["lead_id"].iloc[3])
    r = live.put(f"/v1/leads/{lead}", json={"attributes": {"department": "IT"}}, headers=AUTH)
    assert r.status_code == 200 and r.json()["created"] is False
    record = live.get(f"/v1/leads/{lead}", headers=AUTH).json()["attributes"]
    assert record["department"] == "IT"
    assert pd.Timestamp(record["created_at"]) == pd.Timestamp(demo_leads["created_at"].iloc[3])  # kept


def test_the_same_thousand_events_twice_count_once(live: TestClient, own_workspace_module: Settings) -> None:
    now = datetime.now(UTC)
    events = [event(f"mka-bulk-{i % 50}", "page_view", now - timedelta(minutes=i), event_id=f"bulk-{i}") for i in range(1_000)]
    _, before = inbox_counts(own_workspace_module)
    first = live.post("/v1/events", json={"events": events}, headers=AUTH)
    second = live.post("/v1/events", json={"events": events}, headers=AUTH)
    assert first.json() == {"accepted": 1_000, "duplicates": 0}
    assert second.json() == {"accepted": 0, "duplicates": 1_000}
    _, after = inbox_counts(own_workspace_module)
    assert after - before == 1_000
    # Without event ids, the same event derives the same id.
    anonymous = [event("mka-bulk-0", "email_open", now - timedelta(hours=1), value=3.0)] * 2
    assert live.post("/v1/events", json={"events": anonymous}, headers=AUTH).json() == {"accepted": 1, "duplicates": 1}


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"type": "fax_received"}, "body.events[17].type"),
        ({"occurred_at": iso(datetime.now(UTC) + timedelta(days=2))}, "body.events[17].occurred_at"),
        ({"occurred_at": "2026-13-40T00:00:00Z"}, "body.events[17].occurred_at"),
        ({"lead_id": "bad\x07id"}, "body.events[17].lead_id"),
        ({"value": "lots"}, "body.events[17].value"),
    ],
)
def test_a_bad_event_is_named_and_nothing_of_the_call_is_stored(
    live: TestClient, own_workspace_module: Settings, item: dict[str, Any], where: str
) -> None:
    events = [event(f"mka-bad-{i}", "page_view") for i in range(20)]
    events[17] = {**events[17], **item}
    before = inbox_counts(own_workspace_module)
    r = live.post("/v1/events", json={"events": events}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith(where), r.text
    assert inbox_counts(own_workspace_module) == before


def test_nan_values_and_oversized_calls_are_refused(live: TestClient, own_workspace_module: Settings) -> None:
    before = inbox_counts(own_workspace_module)
    body = '{"events": [{"lead_id": "x", "type": "page_view", "occurred_at": "2026-01-01T00:00:00Z", "value": NaN}]}'
    nan = live.post("/v1/events", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert nan.status_code == 422 and "body.events[0].value" in nan.json()["error"]["message"]
    many = {"events": [event("mka-many", "page_view")] * 10_001}
    too_many = live.post("/v1/events", json=many, headers=AUTH)
    assert too_many.status_code in (413, 422) and "events" in too_many.json()["error"]["message"]
    control = live.put("/v1/leads/bad%07lead", json={"attributes": {}}, headers=AUTH)
    assert control.status_code == 422
    wrong_type = live.put("/v1/leads/mka-typed", json={"attributes": {"employees": "many"}}, headers=AUTH)
    assert wrong_type.status_code == 422 and "body.attributes.employees" in wrong_type.json()["error"]["message"]
    reserved = live.put("/v1/leads/mka-typed", json={"attributes": {"demo_requests_90d": 3}}, headers=AUTH)
    assert reserved.status_code == 422 and "body.attributes.demo_requests_90d" in reserved.json()["error"]["message"]
    assert inbox_counts(own_workspace_module) == before


def test_events_before_their_lead_count_once_it_arrives(live: TestClient) -> None:
    early = [event("mka-later", "pricing_page_view", datetime.now(UTC) - timedelta(hours=h)) for h in (1, 2)]
    assert live.post("/v1/events", json={"events": early}, headers=AUTH).json()["accepted"] == 2
    unknown = live.post("/v1/score", json=score_body("mka-later"), headers=AUTH)
    assert unknown.status_code == 404  # events alone do not make a lead
    assert live.put("/v1/leads/mka-later", json={"attributes": NEW_LEAD}, headers=AUTH).status_code == 201
    known = live.post("/v1/score", json=score_body("mka-later"), headers=AUTH).json()
    assert contribution(known, "pricing_views_30d")["value"] == 2


def test_ten_thousand_events_with_the_longest_ids_fit_in_one_call(live: TestClient) -> None:
    when = datetime.now(UTC) - timedelta(days=1)
    events = [
        event(f"mka-wide-{i % 100:03d}" + "w" * 186, "email_open", when, event_id=f"{i:05d}" + "e" * 195) for i in range(10_000)
    ]
    r = live.post("/v1/events", json={"events": events}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"accepted": 10_000, "duplicates": 0}, r.text[:300]


def test_not_ready_while_stored_rows_are_pushed_after_a_restart(live: TestClient) -> None:
    online = live.app.state.online  # type: ignore[attr-defined]
    online.caught_up.clear()  # as between a restart and the end of its catch-up
    try:
        r = live.get("/readyz")
        assert r.status_code == 503 and "catching up" in r.json()["reason"] and r.json()["model"]["kind"] == "learned"
    finally:
        online.caught_up.set()
    assert live.get("/readyz").status_code == 200


def test_after_training_the_training_frame_holds_the_api_lead_and_its_event(
    live: TestClient, own_workspace_module: Settings, definitions: Definitions
) -> None:
    """Runs last in this module: it trains (and may promote) in the module's workspace copy."""
    from features.freshness import staleness
    from training.data import prepare
    from training.pipeline import train

    created = (datetime.now(UTC) - timedelta(days=200)).replace(microsecond=0)
    put = live.put("/v1/leads/mka-old", json={"created_at": iso(created), "attributes": NEW_LEAD}, headers=AUTH)
    assert put.status_code == 201
    demo = event("mka-old", "demo_request", created + timedelta(days=3), event_id="old-demo")
    assert live.post("/v1/events", json={"events": [demo]}, headers=AUTH).json()["accepted"] == 1
    sql = {"lead_id": "mka-old", "stage": "sql", "occurred_at": iso(created + timedelta(days=10))}
    assert live.post("/v1/feedback", json=sql, headers=AUTH).status_code == 201
    records = RecordStore.from_settings(own_workspace_module)
    try:
        assert staleness(own_workspace_module, Inbox.of(records)).api_rows  # the sources lack the API rows
        train(own_workspace_module, definitions, progress=False, num_boost_round=20, quality_floor=False, kind="lightgbm")
        assert not staleness(own_workspace_module, Inbox.of(records))  # train rebuilt them first
    finally:
        records.close()
    frame = prepare(own_workspace_module, definitions).frame
    rows = frame.loc[frame["lead_id"] == "mka-old"].set_index("snapshot_day")
    assert rows.loc[0, "label"] == 1 and rows.loc[0, "industry"] == "Software"
    assert rows.loc[0, "demo_requests_90d"] == 0 and rows.loc[7, "demo_requests_90d"] == 1  # point in time
