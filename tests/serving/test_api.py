"""The scoring API through the real app: demo workspace, Feast online store, registered champion."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.schemas import ScoreOut, ScoresOut
from tests.serving.conftest import API_KEYS, AUTH, lead_ids


def assert_error(resp, status: int, code: str, *words: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    for w in words:
        assert w in body["error"]["message"], body["error"]["message"]
    return body["error"]["message"]


def assert_exact(result: dict) -> None:
    exp = result["explanation"]
    logit = math.log(result["score"] / (1 - result["score"]))
    assert exp["base_value"] + sum(c["contribution"] for c in exp["contributions"]) == pytest.approx(logit, abs=1e-6)


def test_score_a_known_lead(client: TestClient, demo_leads: pd.DataFrame, definitions: Definitions) -> None:
    lead_id = lead_ids(demo_leads, 1)[0]
    resp = client.post("/v1/score", json={"lead_id": lead_id}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ScoreOut.model_validate(body)  # the documented response model, field for field
    assert body["lead_id"] == lead_id and 0 < body["score"] < 1
    assert body["model"] == {"name": "sql_likelihood", "version": body["model"]["version"], "kind": "learned", "calibrated": True}
    assert body["definitions_version"] == definitions.version_string
    contribs = body["explanation"]["contributions"]
    assert [c["feature"] for c in contribs] and sorted(c["feature"] for c in contribs) == sorted(definitions.feature_keys)
    assert all(c["label"] == definitions.feature(c["feature"]).label for c in contribs)
    assert_exact(body)
    # The stored attributes of the lead are the values the explanation shows.
    row = demo_leads.set_index("lead_id").loc[lead_id]
    shown = {c["feature"]: c["value"] for c in contribs}
    assert shown["industry"] == row["industry"] and shown["country"] == row["country"]
    assert resp.headers["x-request-id"]


def test_overrides_change_the_features_scored(client: TestClient, demo_leads: pd.DataFrame) -> None:
    lead_id = lead_ids(demo_leads, 1, seed=3)[0]
    base = client.post("/v1/score", json={"lead_id": lead_id}, headers=AUTH).json()
    more = client.post(
        "/v1/score", json={"lead_id": lead_id, "attributes": {"demo_requests_90d": 4, "pricing_views_30d": 6}}, headers=AUTH
    ).json()
    shown = {c["feature"]: c["value"] for c in more["explanation"]["contributions"]}
    assert shown["demo_requests_90d"] == 4 and shown["pricing_views_30d"] == 6
    assert more["score"] >= base["score"]  # both features are monotone `up` in the definitions
    assert_exact(more)


def test_score_a_new_lead_from_attributes_only(client: TestClient, definitions: Definitions) -> None:
    attrs = {
        "source": "Webinar",
        "industry": "Software",
        "employees": 420,
        "country": "Canada",
        "seniority": "Director",
        "department": "Marketing",
    }
    resp = client.post("/v1/score", json={"lead_id": "brand-new-lead-1", "attributes": attrs}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    shown = {c["feature"]: c["value"] for c in body["explanation"]["contributions"]}
    assert shown["industry"] == "Software" and shown["employees"] == 420 and shown["icp_industry"] == 1
    assert_exact(body)


def test_exact_explanations_on_many_leads_and_batch_order(client: TestClient, demo_leads: pd.DataFrame) -> None:
    ids = lead_ids(demo_leads, 300, seed=11)
    leads = [{"lead_id": i} for i in ids]
    leads[5] = {"lead_id": "new-in-batch", "attributes": {"industry": "Retail", "employees": 80}}
    resp = client.post("/v1/score/batch", json={"leads": leads}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    results = ScoresOut.model_validate(resp.json()).model_dump(mode="json")["results"]
    assert [r["lead_id"] for r in results] == [x["lead_id"] for x in leads]
    for r in results:
        assert_exact(r)
    # Batch and single answers agree lead by lead.
    single = client.post("/v1/score", json={"lead_id": ids[7]}, headers=AUTH).json()
    assert single["score"] == pytest.approx(results[7]["score"], abs=1e-9)


def test_mql_pass_and_fail_name_the_criteria(client: TestClient, demo_leads: pd.DataFrame, definitions: Definitions) -> None:
    ids = lead_ids(demo_leads, 400, seed=21)
    results = client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids]}, headers=AUTH).json()["results"]
    threshold = definitions.mql.threshold
    for r in results:
        met = all(c["met"] for c in r["mql"]["criteria"])
        assert r["mql"]["threshold"] == threshold
        assert r["mql"]["passed"] == (r["score"] >= threshold and met)
    passed = [r for r in results if r["mql"]["passed"]]
    assert passed, "some demo leads should be MQLs"
    hot = max(passed, key=lambda r: r["score"])
    assert hot["mql"]["summary"].startswith("MQL:") and f"{threshold:.2f}" in hot["mql"]["summary"]

    # The same lead as a student who unsubscribed: two named criteria fail, the third is not named.
    student = client.post(
        "/v1/score", json={"lead_id": hot["lead_id"], "attributes": {"seniority": "Student", "unsubscribes_90d": 1}}, headers=AUTH
    ).json()
    crit = {c["key"]: c["met"] for c in student["mql"]["criteria"]}
    assert crit == {"not_student": False, "not_competitor": True, "reachable": False}
    assert not student["mql"]["passed"]
    summary = student["mql"]["summary"]
    assert summary.startswith("Not an MQL:")
    assert "The contact is not a student" in summary and "has not unsubscribed" in summary and "competitor" not in summary

    low = min(results, key=lambda r: r["score"])
    assert not low["mql"]["passed"] and "below the threshold" in low["mql"]["summary"]


def test_unknown_lead_without_attributes_is_404(client: TestClient, demo_leads: pd.DataFrame) -> None:
    assert_error(
        client.post("/v1/score", json={"lead_id": "nobody-xyz"}, headers=AUTH), 404, "not_found", "'nobody-xyz'", "no attributes"
    )
    ids = lead_ids(demo_leads, 2)
    resp = client.post(
        "/v1/score/batch", json={"leads": [{"lead_id": ids[0]}, {"lead_id": "ghost-1"}, {"lead_id": ids[1]}]}, headers=AUTH
    )
    assert_error(resp, 404, "not_found", "'ghost-1'")
    assert ids[0] not in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": f"Basic {API_KEYS[0]}"}],
)
def test_401_without_a_known_key(client: TestClient, headers: dict) -> None:
    for method, path, body in [
        ("post", "/v1/score", {"lead_id": "x"}),
        ("post", "/v1/feedback", {}),
        ("get", "/v1/leads/x", None),
        ("get", "/v1/model", None),
    ]:
        resp = client.request(method.upper(), path, json=body, headers=headers)
        assert_error(resp, 401, "unauthorized")
        assert API_KEYS[0] not in resp.text


def test_both_key_headers_and_every_key_work(client: TestClient, demo_leads: pd.DataFrame) -> None:
    lead_id = lead_ids(demo_leads, 1)[0]
    for headers in ({"X-API-Key": API_KEYS[1]}, {"Authorization": f"Bearer {API_KEYS[1]}"}, {"X-API-Key": API_KEYS[0]}):
        assert client.post("/v1/score", json={"lead_id": lead_id}, headers=headers).status_code == 200


@pytest.mark.parametrize("wrong", ["Bearer ", "Bearer not-a-key", "Basic dXNlcjpwYXNz"])
def test_a_wrong_key_beside_a_right_one_is_401(client: TestClient, demo_leads: pd.DataFrame, wrong: str) -> None:
    lead_id = lead_ids(demo_leads, 1)[0]
    resp = client.post("/v1/score", json={"lead_id": lead_id}, headers={"X-API-Key": API_KEYS[0], "Authorization": wrong})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    empty = {"X-API-Key": "", "Authorization": f"Bearer {API_KEYS[0]}"}
    assert client.post("/v1/score", json={"lead_id": lead_id}, headers=empty).status_code == 401
    both = {"X-API-Key": API_KEYS[1], "Authorization": f"Bearer {API_KEYS[0]}"}
    assert client.post("/v1/score", json={"lead_id": lead_id}, headers=both).status_code == 200


def test_422_names_the_field(client: TestClient, demo_leads: pd.DataFrame) -> None:
    assert_error(
        client.post("/v1/score", json={"attributes": {}}, headers=AUTH), 422, "invalid_request", "body.lead_id", "required"
    )
    assert_error(
        client.post("/v1/score", json={"lead_id": "x", "attributes": {"employees": "many"}}, headers=AUTH),
        422,
        "invalid_request",
        "body.attributes.employees",
        "number",
    )
    assert_error(
        client.post("/v1/score", json={"lead_id": "x", "attributes": {"shoe_size": 44}}, headers=AUTH),
        422,
        "invalid_request",
        "body.attributes.shoe_size",
    )
    assert_error(
        client.post("/v1/score", json={"lead_id": "x", "attributes": {"nested": {"a": 1}}}, headers=AUTH),
        422,
        "invalid_request",
        "body.attributes.nested",
    )
    ids = lead_ids(demo_leads, 3)
    batch = [
        {"lead_id": ids[0]},
        {"lead_id": ids[1], "attributes": {"industry": "Retail"}},
        {"lead_id": ids[2], "attributes": {"employees": "lots"}},
    ]
    assert_error(
        client.post("/v1/score/batch", json={"leads": batch}, headers=AUTH),
        422,
        "invalid_request",
        "body.leads[2].attributes.employees",
    )
    assert_error(client.post("/v1/score/batch", json={"leads": []}, headers=AUTH), 422, "invalid_request", "body.leads")
    too_many = [{"lead_id": f"L{i}"} for i in range(1_001)]
    assert_error(
        client.post("/v1/score/batch", json={"leads": too_many}, headers=AUTH), 422, "invalid_request", "body.leads", "1000"
    )


def test_400_malformed_json_and_413_body_too_large(client: TestClient) -> None:
    resp = client.post("/v1/score", content=b'{"lead_id": "x",', headers={**AUTH, "Content-Type": "application/json"})
    assert_error(resp, 400, "bad_request", "not valid JSON")
    big = b'{"lead_id": "x", "attributes": {"a": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    assert_error(
        client.post("/v1/score", content=big, headers={**AUTH, "Content-Type": "application/json"}),
        413,
        "payload_too_large",
        "bytes",
    )

    def chunks():  # no Content-Length: cut off while streaming
        for _ in range(6):
            yield b"x" * (1024 * 1024)

    resp = client.post("/v1/score", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_unknown_route_and_method_keep_the_shape(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing", headers=AUTH), 404, "not_found", "/v1/nothing")
    assert_error(client.get("/v1/score", headers=AUTH), 405, "method_not_allowed")


def test_definitions_are_public_and_versioned(client: TestClient, definitions: Definitions) -> None:
    body = client.get("/v1/definitions").json()
    assert body["version"] == definitions.version_string and body["fingerprint"] == definitions.fingerprint
    assert body["definitions"]["mql"]["threshold"] == definitions.mql.threshold
    assert [s["key"] for s in body["definitions"]["stages"]] == [s.key for s in definitions.stages]


def test_model_health_ready(client: TestClient, workspace: Settings, definitions: Definitions) -> None:
    model = client.get("/v1/model", headers=AUTH).json()
    assert model["name"] == "sql_likelihood" and model["fingerprint"] == definitions.fingerprint
    assert "test_roc_auc" in model["metrics"] and model["trained_at"]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["model"]["version"] == model["version"]


def test_metrics_count_requests_scores_and_verdicts(client: TestClient, demo_leads: pd.DataFrame) -> None:
    ids = lead_ids(demo_leads, 5, seed=99)
    client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids]}, headers=AUTH)
    text = client.get("/metrics").text
    assert 'samepage_http_requests_total{method="POST",route="/v1/score/batch",status="200"}' in text
    assert "samepage_http_request_duration_seconds_bucket" in text
    assert "samepage_score_count{model_version=" in text and "samepage_mql_verdicts_total" in text
    assert "samepage_model_info{definitions_version=" in text and "samepage_ready 1.0" in text
    assert "nobody" not in text and ids[0] not in text  # route templates, never lead ids


def test_request_id_is_echoed(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"


def test_lead_record_has_stages_and_latest_score(client: TestClient, demo_leads: pd.DataFrame) -> None:
    lead_id = lead_ids(demo_leads, 1, seed=5)[0]
    scored = client.post("/v1/score", json={"lead_id": lead_id}, headers=AUTH).json()
    record = client.get(f"/v1/leads/{lead_id}", headers=AUTH)
    assert record.status_code == 200, record.text
    body = record.json()
    assert body["known"] and body["attributes"]["industry"] == demo_leads.set_index("lead_id").loc[lead_id, "industry"]
    assert body["stages"] and all(s["source"] == "import" for s in body["stages"])
    assert body["latest_score"]["score"] == pytest.approx(scored["score"])
    assert body["latest_score"]["result"]["explanation"] == scored["explanation"]
    assert_error(client.get("/v1/leads/never-seen-lead", headers=AUTH), 404, "not_found", "never-seen-lead")


def test_docs_show_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    ok = schema["paths"]["/v1/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ScoreOut"}
    assert schema["components"]["schemas"]["LeadIn"]["examples"][0]["lead_id"]
    assert "examples" in schema["components"]["schemas"]["FeedbackIn"]
    feedback_stage = schema["components"]["schemas"]["FeedbackIn"]["properties"]["stage"]
    assert feedback_stage["enum"] == [s["key"] for s in client.get("/v1/definitions").json()["definitions"]["stages"]]
    attrs = schema["components"]["schemas"]["LeadIn"]["properties"]["attributes"]["properties"]
    assert attrs["employees"]["description"] == "Company size (employees)"
    assert attrs["demo_requests_90d"]["anyOf"][0]["type"] == "number" and {"type": "string"} in attrs["industry"]["anyOf"]
    assert client.get("/docs").status_code == 200


def test_logs_are_json_with_request_ids_and_no_personal_data(client: TestClient) -> None:
    import json as _json
    import logging

    from serving.logs import JsonFormatter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    logger = logging.getLogger("samepage.serving")
    handler = Collect()
    logger.addHandler(handler)
    try:
        # the test client's app was built with access_log=False; this one logs every request
        from serving.app import create_app

        app = create_app(client.app.state.settings, client.app.state.defs)
        with TestClient(app) as logged:
            secret = {"industry": "Secret Industry 42", "job_title": "Chief Secret Officer"}
            logged.post(
                "/v1/score", json={"lead_id": "pii-lead", "attributes": secret}, headers={**AUTH, "X-Request-ID": "req-77"}
            )
            logged.post("/v1/score", json={"lead_id": "x"}, headers={"Authorization": "Bearer not-a-real-key-123"})
    finally:
        logger.removeHandler(handler)
    records = [_json.loads(line) for line in lines]
    request_lines = [r for r in records if r.get("event") == "request"]
    assert {"request_id": "req-77", "route": "/v1/score", "status": 200}.items() <= request_lines[0].items()
    assert request_lines[1]["status"] == 401
    text = "\n".join(lines)
    for secret_text in ("Secret Industry 42", "Chief Secret Officer", "not-a-real-key-123", API_KEYS[0], "pii-lead"):
        assert secret_text not in text


def test_without_configured_keys_nothing_protected_is_open_and_up_makes_one(tmp_path, definitions: Definitions) -> None:
    from serving.app import create_app
    from serving.auth import ensure_api_key, key_file
    from tests.conftest import DEFINITIONS_FILE

    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    with TestClient(create_app(settings, definitions, access_log=False), raise_server_exceptions=False) as c:
        assert_error(c.get("/v1/model", headers={"X-API-Key": ""}), 401, "unauthorized", "No API keys are configured")
        assert c.get("/v1/definitions").status_code == 200
    key, made = ensure_api_key(settings)
    assert made and key_file(settings).stat().st_mode & 0o077 == 0  # readable by its owner only
    assert ensure_api_key(settings) == (key, False)
    with TestClient(create_app(settings, definitions, access_log=False), raise_server_exceptions=False) as c:
        assert_error(c.get("/v1/model", headers={"X-API-Key": key}), 503, "not_ready")  # past the key check
        assert_error(c.get("/v1/model", headers={"X-API-Key": key + "x"}), 401, "unauthorized", "Unknown API key")
