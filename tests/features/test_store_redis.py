"""The same definitions on a Redis online store (the scale path), configured by settings only.

Runs in CI (CI=true), where an unreachable Redis is a failure, and locally when Redis answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from samepage.definitions import Definitions
from features.feast_repo import open_store
from samepage.settings import Settings
from features.store import OnlineFeatures, build_features, training_frame
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.conftest import DEFINITIONS_FILE, IN_CI, make_event, make_lead

UNTIL = pd.Timestamp("2026-03-01T00:00:00Z")
pytestmark = pytest.mark.services


def _redis_answers(url: str) -> str | None:
    host, _, port = url.partition(":")
    try:
        redis.Redis(host=host, port=int(port or 6379), socket_timeout=2, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return str(exc)
    return None


@pytest.fixture
def redis_settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(
        home=tmp_path / "workspace",
        definitions=DEFINITIONS_FILE,
        online_store="redis",
        feature_project=f"samepage_test_{uuid.uuid4().hex[:10]}",  # own keys, cleaned up below
        _env_file=None,
    )
    problem = _redis_answers(settings.redis_url)
    if problem is not None:
        if IN_CI:
            pytest.fail(f"Redis at {settings.redis_url} is unreachable in CI: {problem}")
        pytest.skip(f"Redis at {settings.redis_url} is unreachable: {problem}")
    yield settings
    open_store(settings).teardown()


def test_redis_online_store_round_trip(redis_settings: Settings, definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(lead_id="R-1"), make_lead(lead_id="R-2", industry="Mining", employees=12)])
    events = pd.DataFrame(
        [
            make_event(lead_id="R-1", occurred_at=UNTIL - pd.Timedelta(days=3), type="demo_request"),
            make_event(lead_id="R-1", occurred_at=UNTIL - pd.Timedelta(days=40)),
        ]
    )
    write_tables(redis_settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(redis_settings, definitions, progress=False, until=UNTIL)

    client = redis.Redis.from_url(f"redis://{redis_settings.redis_url}")
    project = redis_settings.feature_project.encode()
    assert any(key.endswith(project) for key in client.scan_iter(match=b"*" + project))

    online = OnlineFeatures(redis_settings, definitions).get(["R-1", "R-2", "R-9"], now=UNTIL)
    offline = training_frame(
        redis_settings, definitions, pd.DataFrame({"lead_id": ["R-1", "R-2", "R-9"], "as_of": [UNTIL] * 3})
    )
    keys = definitions.feature_keys
    pd.testing.assert_frame_equal(online[keys], offline[keys].reset_index(drop=True))
    assert online.loc[0, "demo_requests_90d"] == 1 and online.loc[0, "page_views_30d"] == 0
    assert list(online["known"]) == [True, True, False]

    # A re-import changes an attribute but not created_at: the rebuild must still reach Redis.
    leads.loc[1, "industry"] = "Software"
    write_tables(redis_settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(redis_settings, definitions, progress=False, until=UNTIL)
    again = OnlineFeatures(redis_settings, definitions).get(["R-2"], now=UNTIL)
    assert again.loc[0, "industry"] == "Software" and again.loc[0, "icp_industry"] == 1.0

    open_store(redis_settings).teardown()
    assert not any(client.scan_iter(match=b"*" + project))
