"""The pages through the real app: the lead record shows the API's own explanation, the stage form
stores through the feedback route, planted HTML stays text, the access rule, and report numbers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from samepage.definitions import Definitions
from samepage.records import RecordStore, stage_history
from samepage.settings import Settings
from samepage.tables import read_tables
from serving.app import create_app
from serving.routes.pages import COOKIE, is_loopback
from tests.conftest import DEFINITIONS_FILE
from tests.serving.conftest import API_KEYS, AUTH, lead_ids

PLANTED = {
    "industry": "<script>alert('industry')</script>",
    "seniority": '<img src=x onerror="alert(1)">',
    "source": "Webinar</td><b>bold</b>",
}
PLANTED_ID = "evil-<script>alert('id')</script>"


class Tags(HTMLParser):
    """Every start tag and its attributes, to check that no planted element exists."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def page_path(lead_id: str) -> str:
    return "/leads/" + quote(lead_id, safe="")


@pytest.fixture(scope="module")
def remote_client(workspace: Settings, definitions: Definitions) -> Iterator[TestClient]:
    """The same workspace served as if bound to every interface: pages need a login."""
    app = create_app(workspace.model_copy(update={"host": "0.0.0.0"}), definitions, access_log=False)
    # https: off loopback the session cookie is Secure, and a client sends it back over https only.
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False, follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module")
def lead(client: TestClient, demo_leads: pd.DataFrame) -> str:
    return lead_ids(demo_leads, 1, seed=11)[0]


def test_lead_page_shows_the_score_verdict_and_reasons_the_api_returns(
    client: TestClient, lead: str, definitions: Definitions
) -> None:
    page = client.get(page_path(lead))
    assert page.status_code == 200, page.text
    record = client.get(f"/v1/leads/{lead}", headers=AUTH).json()
    result = record["latest_score"]["result"]  # the page scored it, through the same scorer, onto the record
    html = page.text
    assert f"{result['score'] * 100:.0f}%" in html
    assert str(escape(first_sentence(result["mql"]["summary"]))) in html
    reasons = result["explanation"]["reasons_up"] + result["explanation"]["reasons_down"]
    assert reasons, "a demo lead has at least one reason"
    for reason in reasons:
        assert str(escape(reason)) in html
    assert f"{result['model']['name']} v{result['model']['version']}" in html
    assert result["definitions_version"] == definitions.version_string and definitions.version_string in html
    # Every factor, in the definitions' words.
    for c in result["explanation"]["contributions"]:
        assert str(escape(definitions.feature(c["feature"]).label)) in html
    for stage in record["stages"]:
        assert str(escape(stage["name"])) in html
    path = re.findall(r'<li class="(\w+)" data-stage="(\w+)">', html)
    funnel = [s.key for s in definitions.funnel]
    assert [k for _, k in path] == funnel[funnel.index("lead") :]
    furthest = max(funnel.index(s["stage"]) for s in record["stages"] if s["stage"] in funnel) - funnel.index("lead")
    assert [state for state, _ in path][: furthest + 1] == ["done"] * furthest + [path[furthest][0]]
    assert all(state == "todo" for state, _ in path[furthest + 1 :])


def first_sentence(summary: str) -> str:
    """The verdict itself ("Not an MQL: the score 0.349 is below the threshold 0.35."), before any next step."""
    return summary.split(". ")[0].rstrip(".") + "."


def test_lead_page_says_the_next_step_once(client: TestClient, demo_leads: pd.DataFrame) -> None:
    """The verdict line leaves the next step to the box below it, which words it for the page."""
    ids = lead_ids(demo_leads, 40, seed=13)
    results = client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids]}, headers=AUTH).json()["results"]
    near = [r["lead_id"] for r in results if r["mql"]["to_pass"]]
    assert near, "forty demo leads include one a few events short of MQL"
    html = client.get(page_path(near[0])).text
    result = client.get(f"/v1/leads/{near[0]}", headers=AUTH).json()["latest_score"]["result"]
    assert result["mql"]["to_pass"] and "It would be an MQL after" in result["mql"]["summary"]  # the API keeps it
    verdict = re.search(r'id="verdict">.*?</span><span>(.*?)</span>', html, re.S)
    assert verdict is not None and verdict.group(1) == str(escape(first_sentence(result["mql"]["summary"])))
    assert html.lower().count("would be an mql after") == 1


def test_disqualifying_from_the_page_stores_feedback_and_shows_the_new_stage(
    client: TestClient, demo_leads: pd.DataFrame, definitions: Definitions
) -> None:
    lead = lead_ids(demo_leads, 1, seed=12)[0]
    event_id = "page-" + uuid.uuid4().hex
    form = {"stage": "disqualified", "reason": "no_budget", "event_id": event_id}
    posted = client.post(page_path(lead), data=form, follow_redirects=False)
    assert posted.status_code == 303
    assert posted.headers["location"].startswith(page_path(lead) + "?recorded=disqualified")
    page = client.get(posted.headers["location"])
    assert "Recorded: Disqualified — No budget." in page.text
    current = re.search(r'id="current-stage">([^<]*)<', page.text)
    assert current is not None and current.group(1) == "Disqualified"
    assert (
        '<li class="off">Disqualified</li>' in page.text
        and 'class="current"' not in page.text.split('id="path"')[1].split("</ol>")[0]
    )
    record = client.get(f"/v1/leads/{lead}", headers=AUTH).json()
    last = record["stages"][-1]
    assert (last["stage"], last["reason"], last["source"]) == ("disqualified", "no_budget", "feedback")
    # The same form posted twice (a double click, a refresh) is one stage change.
    again = client.post(page_path(lead), data=form, follow_redirects=True)
    assert "already recorded" in again.text
    assert sum(s["source"] == "feedback" for s in client.get(f"/v1/leads/{lead}", headers=AUTH).json()["stages"]) == 1


def test_stage_form_refuses_a_missing_reason_and_cross_site_posts(
    client: TestClient, demo_leads: pd.DataFrame, workspace: Settings
) -> None:
    lead = lead_ids(demo_leads, 1, seed=13)[0]
    bad = client.post(page_path(lead), data={"stage": "disqualified", "event_id": "page-x1"})
    assert bad.status_code == 422
    assert "form.reason" in bad.text and "needs a reason" in bad.text
    unknown = client.post(page_path(lead), data={"stage": "won", "event_id": "page-x2"})
    assert unknown.status_code == 422 and "unknown stage" in unknown.text
    forged = client.post(
        page_path(lead), data={"stage": "sql", "event_id": "page-x3"}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    store = RecordStore.from_settings(workspace)
    try:
        assert len(store.feedback(lead)) == 0
    finally:
        store.close()


def test_planted_html_in_attributes_and_id_renders_as_text(client: TestClient) -> None:
    scored = client.post("/v1/score", json={"lead_id": PLANTED_ID, "attributes": PLANTED}, headers=AUTH)
    assert scored.status_code == 200, scored.text
    page = client.get(page_path(PLANTED_ID))
    assert page.status_code == 200, page.text
    html = page.text
    found = tags(html)
    assert not [t for t, _ in found if t in ("script", "img", "b")]
    assert not [a for _, a in found if any(k.startswith("on") for k in a)]
    for value in (*PLANTED.values(), PLANTED_ID):
        assert value not in html
        assert str(escape(value)) in html
    # The planted text sits in the reasons and the SVG labels as text, not markup.
    assert "&lt;script&gt;alert(&#39;industry&#39;)&lt;/script&gt;" in html


def test_unknown_lead_is_a_404_page(client: TestClient) -> None:
    page = client.get(page_path("no-such-lead-anywhere"))
    assert page.status_code == 404
    assert "unknown" in page.text and "text/html" in page.headers["content-type"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.8.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("example.com", False),
    ],
)
def test_loopback_binding(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_pages_are_open_on_loopback(client: TestClient) -> None:
    assert client.get("/report", follow_redirects=False).status_code == 200


def test_pages_need_a_login_off_loopback(remote_client: TestClient, demo_leads: pd.DataFrame) -> None:
    c = remote_client
    lead = lead_ids(demo_leads, 1, seed=14)[0]
    for path in ("/report?start=2026-01-01", page_path(lead), "/definitions"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login?" + f"next={quote(path, safe='')}"
    assert c.post(page_path(lead), data={"stage": "sql"}).status_code == 303  # no feedback without a login
    wrong = c.post("/login", data={"api_key": "not-a-key", "next": "/report"})
    assert wrong.status_code == 401 and "not valid" in wrong.text and COOKIE not in wrong.headers.get("set-cookie", "")
    ok = c.post("/login", data={"api_key": API_KEYS[1], "next": "//evil.example/x"})
    assert ok.status_code == 303 and ok.headers["location"] == "/report"  # never an open redirect
    cookie = ok.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert API_KEYS[1] not in cookie
    report = c.get("/report")
    assert report.status_code == 200 and 'id="sign-out"' in report.text
    assert c.get(page_path(lead)).status_code == 200
    out = c.post("/logout")
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    c.cookies.set(COOKIE, "0" * 64)
    assert c.get("/report").status_code == 303
    c.cookies.clear()
    assert c.get("/v1/report").status_code == 401  # the JSON stays behind the API key, cookie or not


def _expected_counts(workspace: Settings, definitions: Definitions) -> dict[str, int]:
    """Straight from the data: leads that reached each funnel stage or a later one (sets, no ranks)."""
    tables = read_tables(workspace.data_dir)
    store = RecordStore.from_settings(workspace)
    try:
        history = stage_history(workspace, tables.stages, store)
    finally:
        store.close()
    reached: dict[str, set[str]] = {}
    for lead_id, stage in zip(history["lead_id"].astype(str), history["stage"].astype(str), strict=True):
        reached.setdefault(stage, set()).add(lead_id)
    funnel = [s.key for s in definitions.funnel]
    funnel = funnel[funnel.index("lead") :]
    counts = {}
    for i, key in enumerate(funnel):
        later: set[str] = set().union(*(reached.get(k, set()) for k in funnel[i:]))
        counts[key] = len(later & set(tables.leads["lead_id"].astype(str)))
    counts["lead"] = len(tables.leads)
    return counts


def test_report_numbers_match_the_data_in_json_and_on_the_page(
    client: TestClient, workspace: Settings, definitions: Definitions
) -> None:
    expected = _expected_counts(workspace, definitions)
    data = client.get("/v1/report", headers=AUTH)
    assert data.status_code == 200, data.text
    body = data.json()
    assert {s["key"]: s["leads"] for s in body["funnel"]} == expected
    assert body["leads"] == expected["lead"]
    page = client.get("/report").text
    for key, n in expected.items():
        row = re.search(rf'data-stage="{key}".*?class="count[^"]*"[^>]*>([\d,]+)<', page, re.S)
        assert row is not None and int(row.group(1).replace(",", "")) == n
    assert f'data-sla="missed">{body["sla"]["missed"]:,}<' in page
    assert body["disqualifications"]["total"] == sum(r["disqualified"] for r in body["disqualifications"]["by_source"])


def test_report_period_and_bad_periods(client: TestClient, workspace: Settings) -> None:
    leads = read_tables(workspace.data_dir).leads
    day = pd.to_datetime(leads["created_at"], utc=True).dt.date
    start, end = sorted(day.unique())[30], sorted(day.unique())[90]
    body = client.get(f"/v1/report?start={start}&end={end}", headers=AUTH).json()
    assert body["period"] == {"start": str(start), "end": str(end)}
    assert 0 < body["leads"] < len(leads)
    assert body["leads"] <= int(((day >= start) & (day <= end + pd.Timedelta(days=1))).sum())
    swapped = client.get(f"/v1/report?start={end}&end={start}", headers=AUTH).json()  # either way round: one period
    assert swapped["period"] == body["period"] and swapped["leads"] == body["leads"]
    assert client.get("/v1/report?start=yesterday", headers=AUTH).status_code == 422
    future = client.get("/report?start=2030-01-01&end=2030-01-31")
    assert future.status_code == 200 and "0 leads entered the funnel" in future.text
    page = client.get("/report?start=not-a-day")
    assert page.status_code == 422 and "start: &#39;not-a-day&#39; is not a date" in page.text


def test_report_on_an_empty_workspace_says_what_to_do(tmp_path: Path, definitions: Definitions, workspace: Settings) -> None:
    # The session's MLflow store (already created; a new one costs seconds of migrations), no data.
    empty = Settings(
        home=tmp_path / "empty",
        definitions=DEFINITIONS_FILE,
        api_keys=API_KEYS[0],
        mlflow_tracking_uri=workspace.tracking_uri,
        _env_file=None,
    )
    with TestClient(create_app(empty, definitions, access_log=False), raise_server_exceptions=False) as c:
        page = c.get("/report")
        assert page.status_code == 404 and "samepage demo" in page.text and "text/html" in page.headers["content-type"]
        data = c.get("/v1/report", headers=AUTH)
        assert data.status_code == 404 and "samepage demo" in data.json()["error"]["message"]
        lead = c.get(page_path("L000001"))
        assert lead.status_code == 404 and "unknown" in lead.text


def test_score_again_rescores_with_the_api_scorer_and_updates_the_record(client: TestClient, demo_leads: pd.DataFrame) -> None:
    lead = lead_ids(demo_leads, 1, seed=15)[0]
    client.get(page_path(lead))  # scored on first open
    first = client.get(f"/v1/leads/{lead}", headers=AUTH).json()["latest_score"]
    # Behind a TLS proxy the browser's Origin says https: the host is what must match.
    posted = client.post(
        page_path(lead), data={"action": "rescore"}, headers={"Origin": "https://testserver"}, follow_redirects=True
    )
    assert posted.status_code == 200 and "Scored again" in posted.text
    second = client.get(f"/v1/leads/{lead}", headers=AUTH).json()["latest_score"]
    assert second["scored_at"] > first["scored_at"]
    assert second["result"]["model"] == first["result"]["model"]
    assert str(escape(first_sentence(second["result"]["mql"]["summary"]))) in posted.text


def test_lead_page_says_when_the_lead_already_reached_the_label_stage(
    client: TestClient, workspace: Settings, definitions: Definitions
) -> None:
    stages = read_tables(workspace.data_dir).stages
    later = definitions.stages_at_or_after(definitions.label.target_stage)
    reached = stages.loc[stages["stage"].isin(later), "lead_id"].astype(str)
    qualified = sorted(reached.unique())[0]
    untouched = sorted(set(stages["lead_id"].astype(str)) - set(reached))[0]
    first = stages.loc[(stages["lead_id"] == qualified) & stages["stage"].isin(later)].sort_values("occurred_at").iloc[0]
    page = client.get(page_path(qualified)).text
    day = pd.Timestamp(first["occurred_at"]).strftime("%d %b %Y")
    assert f"Already reached Sales Qualified Lead or beyond on {day}" in page
    assert 'id="reached"' not in client.get(page_path(untouched)).text
