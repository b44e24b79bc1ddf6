"""The same definitions on the server online stores (Redis, PostgreSQL), configured by settings only.

Runs in CI (CI=true), where an unreachable server is a failure, and locally when the server answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis

from features.feast_repo import open_store
from features.store import OnlineFeatures, build_features, training_frame
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.conftest import DEFINITIONS_FILE, IN_CI, make_event, make_lead

UNTIL = pd.Timestamp("2026-03-01T00:00:00Z")
pytestmark = pytest.mark.services


def _redis_answers(settings: Settings) -> str | None:
    host, _, port = settings.redis_url.partition(":")
    try:
        redis.Redis(host=host, port=int(port or 6379), socket_timeout=2, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return str(exc)
    return None


def _postgres_answers(settings: Settings) -> str | None:
    try:
        psycopg.connect(_conninfo(settings), connect_timeout=2).close()
    except psycopg.Error as exc:
        return str(exc)
    return None


def _conninfo(settings: Settings) -> str:
    return psycopg.conninfo.make_conninfo(
        host=settings.postgres_host, port=settings.postgres_port, dbname=settings.postgres_db, user=settings.postgres_user,
        password=settings.postgres_password,
    )  # fmt: skip


@pytest.fixture(params=["redis", "postgres"])
def server_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    name = f"samepage_test_{uuid.uuid4().hex[:10]}"  # own keys / schema, cleaned up below
    settings = Settings(
        home=tmp_path / "workspace",
        definitions=DEFINITIONS_FILE,
        online_store=request.param,
        feature_project=name,
        postgres_schema=name,
        _env_file=None,
    )
    where = settings.redis_url if request.param == "redis" else f"{settings.postgres_host}:{settings.postgres_port}"
    problem = (_redis_answers if request.param == "redis" else _postgres_answers)(settings)
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{request.param} at {where} is unreachable in CI: {problem}")
        pytest.skip(f"{request.param} at {where} is unreachable: {problem}")
    yield settings
    open_store(settings).teardown()
    if request.param == "postgres":
        with psycopg.connect(_conninfo(settings), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _stored_rows(settings: Settings) -> int:
    """Rows the server holds for this project (proof the features really went there)."""
    if settings.online_store == "redis":
        client = redis.Redis.from_url(f"redis://{settings.redis_url}")
        project = settings.feature_project.encode()
        return sum(1 for _ in client.scan_iter(match=b"*" + project))
    with psycopg.connect(_conninfo(settings)) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (settings.postgres_schema,)
        ).fetchall()
        return sum(conn.execute(f'SELECT count(*) FROM "{settings.postgres_schema}"."{t}"').fetchone()[0] for (t,) in tables)


def test_server_online_store_round_trip(server_settings: Settings, definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(lead_id="R-1"), make_lead(lead_id="R-2", industry="Mining", employees=12)])
    events = pd.DataFrame(
        [
            make_event(lead_id="R-1", occurred_at=UNTIL - pd.Timedelta(days=3), type="demo_request"),
            make_event(lead_id="R-1", occurred_at=UNTIL - pd.Timedelta(days=40)),
        ]
    )
    write_tables(server_settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(server_settings, definitions, progress=False, until=UNTIL)

    assert _stored_rows(server_settings) > 0

    online = OnlineFeatures(server_settings, definitions).get(["R-1", "R-2", "R-9"], now=UNTIL)
    offline = training_frame(server_settings, definitions, pd.DataFrame({"lead_id": ["R-1", "R-2", "R-9"], "as_of": [UNTIL] * 3}))
    keys = definitions.feature_keys
    pd.testing.assert_frame_equal(online[keys], offline[keys].reset_index(drop=True))
    assert online.loc[0, "demo_requests_90d"] == 1 and online.loc[0, "page_views_30d"] == 0
    assert list(online["known"]) == [True, True, False]

    # A re-import changes an attribute but not created_at: the rebuild must still reach the server.
    leads.loc[1, "industry"] = "Software"
    write_tables(server_settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(server_settings, definitions, progress=False, until=UNTIL)
    again = OnlineFeatures(server_settings, definitions).get(["R-2"], now=UNTIL)
    assert again.loc[0, "industry"] == "Software" and again.loc[0, "icp_industry"] == 1.0

    open_store(server_settings).teardown()
    assert _stored_rows(server_settings) == 0
