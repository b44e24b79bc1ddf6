"""The domain speaks in domain errors; only the service's handlers turn them into HTTP answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute, NotReady, SamepageError, UnknownLead
from samepage.settings import Settings
from serving.app import create_app
from serving.errors import domain_status
from tests.conftest import DEFINITIONS_FILE
from tests.serving.conftest import AUTH


def error_of(resp) -> tuple[int, str, str]:
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return resp.status_code, body["error"]["code"], body["error"]["message"]


def test_messages_name_what_is_wrong() -> None:
    assert str(UnknownLead(["a"], "is unknown")) == "Lead 'a' is unknown"
    many = UnknownLead([f"L{i}" for i in range(7)], "are unknown")
    assert str(many) == "Leads 'L0', 'L1', 'L2', 'L3', 'L4' and 2 more are unknown" and many.lead_ids[-1] == "L6"
    bad = InvalidAttribute("attributes.employees", "expected a number, got 'x'")
    assert isinstance(bad, ValueError) and str(bad) == "attributes.employees: expected a number, got 'x'"
    located = bad.at("body.leads[2].")
    assert located.field == "body.leads[2].attributes.employees" and located.problem == bad.problem
    assert NotReady("no champion").message == "Not ready: no champion"


def test_unknown_lead_is_404(client: TestClient) -> None:
    status, code, message = error_of(client.post("/v1/score", json={"lead_id": "nobody-dom"}, headers=AUTH))
    assert (status, code) == (404, "not_found")
    assert message == str(UnknownLead(["nobody-dom"], "unknown to the feature store and no attributes were given to score from"))
    status, code, message = error_of(client.get("/v1/leads/nobody-dom", headers=AUTH))
    assert (status, code) == (404, "not_found")
    assert message == "Lead 'nobody-dom' is unknown: not in the feature store, no stage history, never scored"


def test_invalid_attribute_is_422_naming_the_field(client: TestClient) -> None:
    resp = client.post("/v1/score", json={"lead_id": "x-dom", "attributes": {"employees": "lots"}}, headers=AUTH)
    assert error_of(resp) == (422, "invalid_request", "body.attributes.employees: expected a number, got 'lots'")
    leads = [{"lead_id": "a-dom", "attributes": {"employees": 5}}, {"lead_id": "b-dom", "attributes": {"shoe_size": 9}}]
    status, code, message = error_of(client.post("/v1/score/batch", json={"leads": leads}, headers=AUTH))
    assert (status, code) == (422, "invalid_request")
    assert message == "body.leads[1].attributes.shoe_size: unknown attribute (not a lead column or feature)"


def test_not_ready_is_503_with_the_reason(tmp_path, definitions: Definitions) -> None:
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, api_keys="k-dom", _env_file=None)
    with TestClient(create_app(settings, definitions, access_log=False), raise_server_exceptions=False) as c:
        reason = c.get("/readyz").json()["reason"]
        key = {"X-API-Key": "k-dom"}
        for resp in (c.post("/v1/score", json={"lead_id": "a"}, headers=key), c.get("/v1/model", headers=key)):
            assert error_of(resp) == (503, "not_ready", f"Not ready: {reason}")


class OddError(SamepageError):
    """A domain error no handler lists: the request asked for something the domain refuses."""


class MissingOne(UnknownLead):
    pass


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UnknownLead(["q"], "is unknown"), 404, "not_found"),
        (MissingOne(["q"], "is gone"), 404, "not_found"),
        (InvalidAttribute("attributes.x", "bad"), 422, "invalid_request"),
        (NotReady("why"), 503, "not_ready"),
        (OddError("odd"), 422, "invalid_request"),
    ],
)
def test_each_domain_error_raised_in_a_route_is_its_http_answer(
    tmp_path, definitions: Definitions, error: SamepageError, status: int, code: str
) -> None:
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    app = create_app(settings, definitions, access_log=False)

    def boom() -> None:
        raise error

    app.add_api_route("/boom", boom)
    resp = TestClient(app, raise_server_exceptions=False).get("/boom")  # no lifespan: nothing else runs
    assert error_of(resp) == (status, code, error.message) and domain_status(error) == status
