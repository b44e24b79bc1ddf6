"""Requests are held to exactly what `/openapi.json` says (issue 12, rows 4, 5 and 13).

Control characters in ids are 422s naming the field on every route (on PostgreSQL they were 500s);
numbers no float holds are 422s; the `attributes` schema lists the definitions' names and types and
the server accepts exactly the values that schema accepts; report days are `format: date`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.derive import override_targets
from samepage.definitions import Definitions
from samepage.errors import InvalidAttribute
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.app import create_app
from serving.attributes import attribute_rules
from serving.patterns import FIRST_YEAR, LAST_YEAR, date_time_pattern, day_pattern, matcher
from tests.conftest import IN_CI
from tests.serving.conftest import AUTH, lead_ids
from tests.utils.postgres import fresh_schema

BAD_TEXTS = ["a\x00b", "tab\there", "line\nbreak", "del\x7f", "c1\x85", "half \ud800 pair"]


def error(resp: Any) -> tuple[int, str]:
    return resp.status_code, resp.json()["error"]["message"]


def feedback_body(**kw: Any) -> dict[str, Any]:
    body = {"lead_id": "L-ctl", "stage": "sql", "occurred_at": "2026-11-20T15:30:00Z", "event_id": "evt-ctl-1", "actor": "luis"}
    body.update(kw)
    return body


def raw_json(value: Any) -> bytes:
    """JSON text as a client may send it (lone surrogates escaped, NaN as Python writes it)."""
    return json.dumps(value).encode("ascii")


def control_character_requests(bad: str) -> list[tuple[str, str, bytes | None, str]]:
    """(method, path, body, field the 422 must name) for one bad text in every id field of every route."""
    return [
        ("POST", "/v1/score", raw_json({"lead_id": bad, "attributes": {"industry": "Retail"}}), "body.lead_id"),
        ("POST", "/v1/score/batch", raw_json({"leads": [{"lead_id": "ok"}, {"lead_id": bad}]}), "body.leads[1].lead_id"),
        ("POST", "/v1/feedback", raw_json(feedback_body(lead_id=bad)), "body.lead_id"),
        ("POST", "/v1/feedback", raw_json(feedback_body(actor=bad)), "body.actor"),
        ("POST", "/v1/feedback", raw_json(feedback_body(event_id=bad)), "body.event_id"),
        ("POST", "/v1/feedback", raw_json(feedback_body(stage="disqualified", reason=bad)), "body.reason"),
    ] + (
        # a path is bytes on the wire: an unpaired surrogate cannot reach it as one
        [] if "\ud800" in bad else [("GET", "/v1/leads/" + quote(bad.encode("utf-8"), safe=""), None, "path.lead_id")]
    )


def assert_control_characters_refused(client: TestClient) -> None:
    for bad in BAD_TEXTS:
        for method, path, body, field in control_character_requests(bad):
            headers = {**AUTH, "Content-Type": "application/json"}
            resp = client.request(method, path, content=body, headers=headers)
            status, message = error(resp)
            assert status == 422, (bad, path, resp.text)
            assert message.startswith(field + ":"), (bad, field, message)


def test_control_characters_in_ids_are_422_naming_the_field(client: TestClient) -> None:
    assert_control_characters_refused(client)
    # Plain ids with spaces, accents and punctuation still work.
    resp = client.post("/v1/feedback", json=feedback_body(lead_id="L ctl é-1", event_id="evt ctl é"), headers=AUTH)
    assert resp.status_code in (200, 201) and resp.json()["lead_id"] == "L ctl é-1"


@pytest.mark.services
@pytest.mark.skipif(not IN_CI, reason="the PostgreSQL record store test runs when CI=true")
def test_control_characters_with_the_postgresql_record_store(workspace: Settings, definitions: Definitions) -> None:
    with fresh_schema(IN_CI) as url:
        settings = workspace.model_copy(update={"records_url": url})
        with TestClient(create_app(settings, definitions, access_log=False), raise_server_exceptions=False) as client:
            assert_control_characters_refused(client)
            good = feedback_body(lead_id="L-pg-ctl", event_id="evt-pg-ctl")
            assert client.post("/v1/feedback", json=good, headers=AUTH).status_code == 201
            scored = client.post("/v1/score", json={"lead_id": "L-pg-ctl", "attributes": {"industry": "Retail"}}, headers=AUTH)
            assert scored.status_code == 200
            record = client.get("/v1/leads/L-pg-ctl", headers=AUTH).json()
            assert record["stages"][-1]["source"] == "feedback" and record["latest_score"] is not None
        assert RecordStore(url).feedback("L-pg-ctl")["event_id"].tolist() == ["evt-pg-ctl"]


@pytest.mark.parametrize(
    ("attributes", "field", "words"),
    [
        ('{"employees": 1' + "0" * 400 + "}", "body.attributes.employees", "from -1e15 to 1e15"),
        ('{"demo_requests_90d": -1' + "0" * 400 + "}", "body.attributes.demo_requests_90d", "from -1e15 to 1e15"),
        ('{"annual_revenue": 1000000000000001}', "body.attributes.annual_revenue", "from -1e15 to 1e15"),
        ('{"employees": NaN}', "body.attributes.employees", "finite"),
        ('{"annual_revenue": Infinity}', "body.attributes.annual_revenue", "finite"),
        ('{"employees": 1e400}', "body.attributes.employees", "finite"),
        ('{"industry": 1' + "0" * 400 + "}", "body.attributes.industry", "expected text"),
    ],
)
def test_numbers_no_float_holds_are_422_naming_the_field(client: TestClient, attributes: str, field: str, words: str) -> None:
    for path, body in (
        ("/v1/score", '{"lead_id": "L-big", "attributes": ' + attributes + "}"),
        ("/v1/score/batch", '{"leads": [{"lead_id": "L-big", "attributes": ' + attributes + "}]}"),
    ):
        resp = client.post(path, content=body.encode(), headers={**AUTH, "Content-Type": "application/json"})
        status, message = error(resp)
        where = field if path == "/v1/score" else field.replace("body.", "body.leads[0].")
        assert status == 422 and message.startswith(where + ":") and words in message, (path, message)


def test_attributes_schema_lists_the_definitions_names_and_types(client: TestClient, definitions: Definitions) -> None:
    schema = client.get("/openapi.json").json()
    attrs = schema["components"]["schemas"]["LeadIn"]["properties"]["attributes"]
    assert attrs["additionalProperties"] is False
    assert set(attrs["properties"]) == set(override_targets(definitions))
    kinds = {name: kind for name, (_, kind, _) in override_targets(definitions).items()}
    expected = {"category": "string", "number": "number", "boolean": "boolean", "timestamp": "string"}
    for name, prop in attrs["properties"].items():
        assert prop["anyOf"][0]["type"] == expected[kinds[name]] and prop["anyOf"][1] == {"type": "null"}, name
    assert attrs["properties"]["created_at"]["anyOf"][0]["format"] == "date-time"
    assert schema["components"]["schemas"]["LeadIn"]["examples"], "the /docs examples stay"


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"shoe_size": 44}, "body.attributes.shoe_size"),
        ({"created_at": ""}, "body.attributes.created_at"),
        ({"created_at": "2026-11-20"}, "body.attributes.created_at"),
        ({"created_at": "yesterday"}, "body.attributes.created_at"),
        ({"created_at": "0001-01-01T00:00:00Z"}, "body.attributes.created_at"),
        ({"employees": "250"}, "body.attributes.employees"),
        ({"employees": True}, "body.attributes.employees"),
        ({"industry": 7}, "body.attributes.industry"),
    ],
)
def test_what_the_schema_rejects_is_refused(client: TestClient, attributes: dict[str, Any], field: str) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["LeadIn"]["properties"]["attributes"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(attributes, schema, format_checker=jsonschema.FormatChecker())
    status, message = error(client.post("/v1/score", json={"lead_id": "L-x", "attributes": attributes}, headers=AUTH))
    assert status == 422 and message.startswith(field + ":"), message


def values() -> st.SearchStrategy[Any]:
    stamps = st.datetimes().map(lambda d: d.isoformat() + st_choice_offset(d))
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**15 - 2, max_value=10**15 + 2),
        st.integers(min_value=10**300, max_value=10**320),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        stamps,
        st.sampled_from(
            ["", "2026-11-20T15:30:00Z", "2026-02-29T00:00:00Z", "2024-02-29t10:00:00.5+02:00", "1677-12-31T00:00:00Z"]
        ),
    )


def st_choice_offset(d: Any) -> str:
    return "Z" if d.microsecond % 2 else "+05:30"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(name=st.sampled_from(["employees", "industry", "created_at", "demo_requests_90d", "source"]), value=values())
def test_the_server_check_agrees_with_the_schema(definitions: Definitions, name: str, value: Any) -> None:
    rules = attribute_rules(definitions)
    schema = rules.json_schema()
    try:
        jsonschema.validate({name: value}, schema, format_checker=jsonschema.FormatChecker())
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    try:
        rules.check({name: value})
        server_ok = True
    except InvalidAttribute:
        server_ok = False
    assert schema_ok == server_ok, (name, value)


def test_day_and_time_patterns_are_exact_calendar_dates() -> None:
    day = matcher(day_pattern())
    for year in (FIRST_YEAR - 1, FIRST_YEAR, 1700, 1900, 2000, 2024, 2026, 2100, LAST_YEAR, LAST_YEAR + 1):
        for month in range(0, 14):
            for dom in range(0, 33):
                text = f"{year:04d}-{month:02d}-{dom:02d}"
                try:
                    real = FIRST_YEAR <= date.fromisoformat(text).year <= LAST_YEAR
                except ValueError:
                    real = False
                assert bool(day.fullmatch(text)) == real, text
                assert bool(matcher(date_time_pattern()).fullmatch(text + "T12:00:00Z")) == real, text
    stamp = matcher(date_time_pattern())
    assert not stamp.fullmatch("2026-11-20T24:00:00Z") and not stamp.fullmatch("2026-11-20T10:00:60Z")
    assert not stamp.fullmatch("2026-11-20T10:00:00") and matcher(date_time_pattern(offset_required=False)).fullmatch(
        "2026-11-20T10:00:00"
    )
    assert not day.fullmatch("２０２６-11-20") and not day.fullmatch("2026-11-20\n")


def test_report_days_are_format_date_and_enforced(client: TestClient) -> None:
    params = client.get("/openapi.json").json()["paths"]["/v1/report"]["get"]["parameters"]
    for p in params:
        day = p["schema"]["anyOf"][0]
        assert day["type"] == "string" and day["format"] == "date" and day["pattern"] == day_pattern()
    for bad in ("0", "20261120", "2026-02-30", "2026-W01-1", "1431-10-28", "2026-11-20T00:00:00"):
        status, message = error(client.get(f"/v1/report?start={bad}", headers=AUTH))
        assert status == 422 and message.startswith("query.start:"), (bad, message)
        status, message = error(client.get(f"/v1/report?end={bad}", headers=AUTH))
        assert status == 422 and message.startswith("query.end:"), (bad, message)
    assert client.get("/v1/report?start=2026-01-01&end=2026-01-31", headers=AUTH).status_code == 200


def test_feedback_schema_pairs_stages_with_their_reasons(client: TestClient, definitions: Definitions) -> None:
    feedback = client.get("/openapi.json").json()["components"]["schemas"]["FeedbackIn"]
    checker = jsonschema.FormatChecker()
    today = date.today()
    for s in definitions.stages:
        for reason in [None, *(r.key for r in s.reasons), "no_such_reason"]:
            body = feedback_body(stage=s.key, reason=reason, event_id=f"evt-pair-{s.key}-{reason}")
            try:
                jsonschema.validate(body, feedback, format_checker=checker)
                schema_ok = True
            except jsonschema.ValidationError:
                schema_ok = False
            resp = client.post("/v1/feedback", json=body, headers=AUTH)
            assert (resp.status_code in (200, 201)) == schema_ok, (s.key, reason, resp.text)
    for stamp, ok in (
        ("1969-12-31T23:00:00Z", False),
        ("1970-01-01T00:00:00Z", True),
        ((today - timedelta(days=3)).isoformat() + "T08:00:00", True),
        (f"{today.year + 1}-06-01T00:00:00Z", False),
        ("2026-11-20", False),
    ):
        body = feedback_body(occurred_at=stamp, event_id=f"evt-time-{stamp}")
        try:
            jsonschema.validate(body, feedback, format_checker=checker)
            schema_ok = True
        except jsonschema.ValidationError:
            schema_ok = False
        assert schema_ok == ok, stamp
        assert (client.post("/v1/feedback", json=body, headers=AUTH).status_code in (200, 201)) == ok, stamp


def test_the_known_lead_still_scores_with_attributes(client: TestClient, demo_leads: Any) -> None:
    lead = lead_ids(demo_leads, 1, seed=21)[0]
    body = {"lead_id": lead, "attributes": {"employees": 10**15, "created_at": "2026-11-20T15:30:00+01:00", "industry": None}}
    resp = client.post("/v1/score", json=body, headers=AUTH)
    assert resp.status_code == 200 and 0.0 <= resp.json()["score"] <= 1.0


def test_report_days_either_way_round_are_one_period(client: TestClient) -> None:
    forward = client.get("/v1/report?start=2026-01-01&end=2026-06-30", headers=AUTH)
    backward = client.get("/v1/report?start=2026-06-30&end=2026-01-01", headers=AUTH)
    assert forward.status_code == backward.status_code == 200
    assert backward.json()["period"] == {"start": "2026-01-01", "end": "2026-06-30"}
    assert backward.json()["funnel"] == forward.json()["funnel"]
