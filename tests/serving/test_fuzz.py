"""Schemathesis against the app's own OpenAPI schema, in process: no 5xx, no answer off its schema,
nothing the schema rejects accepted and nothing it accepts refused.

Each operation gets a bounded number of generated cases (valid and invalid bodies, odd path and
query parameters), sent with a valid API key through the real app with its champion and stores
loaded, over the SQLite record store and (under CI=true) the PostgreSQL one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.result import Ok

from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.values import utc_timestamp
from serving.app import create_app
from serving.routes.feedback import FUTURE_SLACK
from tests.conftest import IN_CI
from tests.serving.conftest import AUTH
from tests.utils.postgres import fresh_schema

EXAMPLES_PER_OPERATION = 80  # about half of them schema-invalid
OPERATIONS = [
    ("POST", "/v1/score"),
    ("POST", "/v1/score/batch"),
    ("POST", "/v1/feedback"),
    ("POST", "/v1/events"),
    ("PUT", "/v1/leads/{lead_id}"),
    ("GET", "/v1/leads/{lead_id}"),
    ("GET", "/v1/model"),
    ("GET", "/v1/definitions"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/report"),
]


ONLY_IN_CI = pytest.mark.skipif(not IN_CI, reason="the PostgreSQL record store is fuzzed when CI=true")
STORES = ["sqlite", pytest.param("postgresql", marks=[pytest.mark.services, ONLY_IN_CI])]


@pytest.fixture(scope="module", params=STORES)
def fuzz_app(request: pytest.FixtureRequest, own_workspace_module: Settings, definitions: Definitions) -> Iterator[FastAPI]:
    with contextlib.ExitStack() as stack:
        settings = own_workspace_module
        if request.param == "postgresql":
            settings = settings.model_copy(update={"records_url": stack.enter_context(fresh_schema(IN_CI))})
        app = create_app(settings, definitions, access_log=False)
        stack.enter_context(TestClient(app))  # runs the lifespan: champion, Feast, record store loaded into app.state
        yield app


def test_every_operation_is_fuzzed(fuzz_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    listed = set(OPERATIONS)
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) == len(list(schema.get_all_operations())), "every operation of the schema loads"
    found = {(op.method.upper(), op.path) for op in operations}
    assert found <= listed, f"operations without a fuzz case: {sorted(found - listed)}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors_and_answers_match_the_schema(fuzz_app: FastAPI, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operation = schema[path][method]

    # Schema-valid cases must be accepted (2xx, or 404 for an unknown lead) and schema-invalid ones refused.
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        if _future_feedback(case):  # a rule no schema can state: a stage change cannot lie in the future
            response = case.call(headers=AUTH)
            assert response.status_code == 422 and "is in the future" in response.text, response.text
            return
        if _future_ingest(case):  # nor an event or a lead's creation: refused (with another field's error, if any)
            response = case.call(headers=AUTH)
            assert 400 <= response.status_code < 500, response.text
            return
        case.call_and_validate(headers=AUTH, additional_checks=[positive_data_acceptance, negative_data_rejection])

    check()


def _future_feedback(case: Any) -> bool:
    """A feedback body whose time is valid by the schema but later than now plus the route's slack."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path != "/v1/feedback" or not isinstance(body.get("occurred_at"), str):
        return False
    try:
        stamp = utc_timestamp(body["occurred_at"].upper())
    except ValueError:
        return False
    return bool(stamp > pd.Timestamp.now(tz="UTC") + FUTURE_SLACK)


def _future_ingest(case: Any) -> bool:
    """An event or lead whose (schema-valid) time lies further ahead than the service's tolerance."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/v1/events" and isinstance(body.get("events"), list):
        stamps = [e.get("occurred_at") for e in body["events"] if isinstance(e, dict)]
    elif case.path == "/v1/leads/{lead_id}" and case.method.upper() == "PUT":
        stamps = [body.get("created_at")]
    else:
        return False
    limit = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=Settings().event_future_seconds)
    for stamp in stamps:
        if isinstance(stamp, str):
            try:
                if utc_timestamp(stamp.upper()) > limit:
                    return True
            except ValueError:
                continue
    return False
