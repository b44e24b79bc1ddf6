"""Schemathesis against the app's own OpenAPI schema, in process: no 5xx, no answer off its schema.

Each operation gets a bounded number of generated cases (valid and invalid bodies, odd path and
query parameters), sent with a valid API key through the real app with its champion and stores
loaded. Two checks are left out on purpose: the service validates more than a JSON schema can say
(a stage's reason, an attribute's value against its feature, dates in the future), so schema-valid
data may rightly get a 422, and its coercions (a number sent as "250") accept some schema-invalid data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.app import create_app
from tests.serving.conftest import AUTH

EXAMPLES_PER_OPERATION = 30
OPERATIONS = [
    ("POST", "/v1/score"),
    ("POST", "/v1/score/batch"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/leads/{lead_id}"),
    ("GET", "/v1/model"),
    ("GET", "/v1/definitions"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/report"),
]


@pytest.fixture(scope="module")
def fuzz_app(own_workspace_module: Settings, definitions: Definitions) -> Iterator[FastAPI]:
    app = create_app(own_workspace_module, definitions, access_log=False)
    with TestClient(app):  # runs the lifespan: champion, Feast, record store loaded into app.state
        yield app


def test_every_operation_is_fuzzed(fuzz_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    listed = set(OPERATIONS)
    found = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert found <= listed, f"operations without a fuzz case: {sorted(found - listed)}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors_and_answers_match_the_schema(fuzz_app: FastAPI, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operation = schema[path][method].ok() if hasattr(schema[path][method], "ok") else schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance, negative_data_rejection])

    check()
