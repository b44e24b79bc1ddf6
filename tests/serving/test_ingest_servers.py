"""Live ingestion on the servers: Redis online store and PostgreSQL lead-record store (CI=true: required)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.feast_repo import open_store
from features.store import OnlineFeatures, build_features, training_frame
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from serving.app import create_app
from tests.conftest import DEFINITIONS_FILE, IN_CI, make_event, make_lead
from tests.features.test_store_servers import _redis_answers
from tests.serving.conftest import API_KEYS, AUTH, score_body
from tests.serving.test_ingest import contribution, event
from tests.utils.postgres import fresh_schema

pytestmark = pytest.mark.services


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Settings]:
    name = f"samepage_test_{uuid.uuid4().hex[:10]}"
    with fresh_schema(IN_CI) as records_url:
        settings = Settings(
            home=tmp_path / "workspace",
            definitions=DEFINITIONS_FILE,
            online_store="redis",
            feature_project=name,
            records_url=records_url,
            api_keys=",".join(API_KEYS),
            online_refresh_seconds=0,
            _env_file=None,
        )
        problem = _redis_answers(settings)
        if problem is not None:
            if IN_CI:
                pytest.fail(f"redis at {settings.redis_url} is unreachable in CI: {problem}")
            pytest.skip(f"redis at {settings.redis_url} is unreachable: {problem}")
        yield settings
        open_store(settings).teardown()


def test_ingest_scores_and_rebuilds_on_redis_and_postgres(servers: Settings, definitions: Definitions) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    leads = pd.DataFrame([make_lead(lead_id="S-1", created_at=pd.Timestamp(now) - pd.Timedelta(days=20))])
    events = pd.DataFrame([make_event(lead_id="S-1", occurred_at=pd.Timestamp(now) - pd.Timedelta(days=2), type="page_view")])
    write_tables(servers.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(servers, definitions, progress=False)
    with TestClient(create_app(servers, definitions, access_log=False), raise_server_exceptions=False) as client:
        assert client.put("/v1/leads/S-2", json={"attributes": {"industry": "Software"}}, headers=AUTH).status_code == 201
        before = client.post("/v1/score", json=score_body("S-1"), headers=AUTH).json()
        batch = [event("S-1", "demo_request", now - timedelta(hours=1), event_id="srv-1"), event("S-2", "page_view", now)]
        assert client.post("/v1/events", json={"events": batch}, headers=AUTH).json() == {"accepted": 2, "duplicates": 0}
        assert client.post("/v1/events", json={"events": batch}, headers=AUTH).json() == {"accepted": 0, "duplicates": 2}
        after = client.post("/v1/score", json=score_body("S-1"), headers=AUTH).json()
        new = client.post("/v1/score", json=score_body("S-2"), headers=AUTH).json()
    assert contribution(after, "demo_requests_90d")["value"] == contribution(before, "demo_requests_90d")["value"] + 1
    assert contribution(new, "page_views_7d")["value"] == 1 and contribution(new, "industry")["value"] == "Software"
    records = RecordStore.from_settings(servers)
    try:
        assert len(Inbox.of(records).events()) == 2  # one row each, in PostgreSQL
    finally:
        records.close()
    # The offline side follows: a rebuild reads the inbox, and online equals offline for the same time.
    build_features(servers, definitions, progress=False)
    at = pd.Timestamp(now) + pd.Timedelta(minutes=1)
    ids = ["S-1", "S-2"]
    online = OnlineFeatures(servers, definitions).get(ids, now=at)
    offline = training_frame(servers, definitions, pd.DataFrame({"lead_id": ids, "as_of": [at, at]}))
    keys = definitions.feature_keys
    pd.testing.assert_frame_equal(online[keys], offline[keys].reset_index(drop=True))
    assert online.loc[0, "demo_requests_90d"] == 1 and online.loc[1, "industry"] == "Software"
