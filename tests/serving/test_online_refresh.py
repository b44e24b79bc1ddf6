"""The service keeps the online store fresh on its own: unpushed inbox rows at start, imports on a timer."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from features.freshness import UP_TO_DATE, refresh
from features.store import build_features
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from serving.app import create_app
from tests.conftest import DEFINITIONS_FILE
from tests.serving.conftest import API_KEYS, AUTH, score_body
from tests.serving.test_ingest import contribution
from tests.utils.builders import make_event, make_inbox_event, make_lead


def _workspace(tmp_path: Path, definitions: Definitions, refresh: float) -> Settings:
    settings = Settings(
        home=tmp_path / "ws",
        definitions=DEFINITIONS_FILE,
        api_keys=",".join(API_KEYS),
        online_refresh_seconds=refresh,
        _env_file=None,
    )
    now = pd.Timestamp.now(tz="UTC").floor("s")
    leads = pd.DataFrame([make_lead(lead_id="R-1", created_at=now - pd.Timedelta(days=3))])
    events = pd.DataFrame([make_event(lead_id="R-1", occurred_at=now - pd.Timedelta(days=1))])
    write_tables(settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(settings, definitions, progress=False)
    return settings


def test_rows_a_crash_left_unpushed_go_online_at_start(tmp_path: Path, definitions: Definitions) -> None:
    settings = _workspace(tmp_path, definitions, refresh=0)
    records = RecordStore.from_settings(settings)
    when = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    # Stored and acknowledged, then the process died before its online push.
    Inbox.of(records).add_events([make_inbox_event(event_id="k1", lead_id="R-1", type="demo_request", occurred_at=when)])
    records.close()
    with TestClient(create_app(settings, definitions, access_log=False)) as client:
        for _ in range(100):  # the start-up catch-up runs beside the first requests
            got = client.post("/v1/score", json=score_body("R-1"), headers=AUTH).json()
            if contribution(got, "demo_requests_90d")["value"] == 1:
                break
            time.sleep(0.05)
        assert contribution(got, "demo_requests_90d")["value"] == 1


def test_an_import_reaches_the_online_store_without_running_features(tmp_path: Path, definitions: Definitions) -> None:
    settings = _workspace(tmp_path, definitions, refresh=0.3)
    with TestClient(create_app(settings, definitions, access_log=False)) as client:
        assert client.post("/v1/score", json=score_body("R-2"), headers=AUTH).status_code == 404
        now = pd.Timestamp.now(tz="UTC").floor("s")
        leads = pd.DataFrame([make_lead(lead_id="R-1"), make_lead(lead_id="R-2", created_at=now - pd.Timedelta(days=1))])
        write_tables(settings.data_dir, CanonicalTables(leads, pd.DataFrame([make_event(lead_id="R-1")]), empty_stages()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = client.post("/v1/score", json=score_body("R-2"), headers=AUTH)
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert r.status_code == 200 and contribution(r.json(), "industry")["value"] == "Software"


def test_refresh_pushes_what_a_crash_left_and_then_has_nothing_to_push(tmp_path: Path, definitions: Definitions) -> None:
    """`refresh` on its own (as `score --all` and `train` call it): unpushed rows go online; with none left it
    answers from the inbox alone."""
    settings = _workspace(tmp_path, definitions, refresh=0)
    records = RecordStore.from_settings(settings)
    when = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
    Inbox.of(records).add_events([make_inbox_event(event_id="k2", lead_id="R-1", type="demo_request", occurred_at=when)])
    records.close()
    assert refresh(settings, definitions) == UP_TO_DATE.format(leads=0, events=1)
    assert refresh(settings, definitions) == UP_TO_DATE.format(leads=0, events=0)
    records = RecordStore.from_settings(settings)
    try:
        assert Inbox.of(records).unpushed() == ([], [])
    finally:
        records.close()
