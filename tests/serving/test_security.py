"""Issue 12, rows 2, 3, 7 and 8, through the real app: Host allow-list and headers, page sessions,
startup with a registry that does not answer, /metrics and /docs."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from samepage.definitions import Definitions
from samepage.settings import Settings
from serving import docs
from serving.app import create_app
from serving.pages.session import COOKIE, COOKIE_MAX_AGE, SALT, session_secret
from serving.pages.throttle import MAX_FAILURES
from tests.serving.conftest import API_KEYS, AUTH
from tests.serving.test_model_reload import wait_for


@pytest.fixture
def client_for(definitions: Definitions) -> Iterator:
    """Builds apps over given settings and closes them at the end of the test."""
    opened: list[TestClient] = []

    def make(settings: Settings, base_url: str = "http://testserver") -> TestClient:
        c = TestClient(
            create_app(settings, definitions, access_log=False),
            base_url=base_url,
            raise_server_exceptions=False,
            follow_redirects=False,
        )
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


# -- row 2: Host allow-list, frame protection, CSP --------------------------------------------------
def test_only_the_bind_host_and_loopback_names_are_answered_by_default(workspace: Settings, client_for) -> None:
    c = client_for(workspace.model_copy(update={"allowed_hosts": "", "host": "127.0.0.1"}))
    for host in ("127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000"):
        assert c.get("/healthz", headers={"host": host}).status_code == 200, host
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: refused before any route runs.
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        assert c.get("/report", headers={"host": host}).status_code == 400, host
        assert c.post("/v1/score", json={"lead_id": "x"}, headers={**AUTH, "host": host}).status_code == 400


def test_the_host_list_is_configurable(workspace: Settings, client_for) -> None:
    c = client_for(workspace.model_copy(update={"allowed_hosts": "leads.example.com", "host": "10.0.0.5"}))
    assert c.get("/healthz", headers={"host": "leads.example.com"}).status_code == 200
    assert c.get("/healthz", headers={"host": "127.0.0.1"}).status_code == 400


def test_pages_cannot_be_framed_and_carry_a_content_security_policy(client: TestClient, demo_leads) -> None:
    lead = str(demo_leads["lead_id"].iloc[0])
    for path in ("/report", f"/leads/{lead}", "/login", "/docs", "/healthz"):
        r = client.get(path, follow_redirects=False)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'none'" in csp, path
        assert r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff"
        assert r.headers.get("referrer-policy") == "same-origin"
        if r.headers.get("content-type", "").startswith("text/html"):
            # The policy allows no inline script: the pages must have none for it to leave them working.
            assert "<script>" not in r.text and " onclick=" not in r.text and " onsubmit=" not in r.text, path


# -- row 3: page sessions ---------------------------------------------------------------------------
@pytest.fixture
def remote(own_workspace_module: Settings) -> Settings:
    """Bound off loopback (pages need a login), over a copy of the workspace (sign-outs are written)."""
    return own_workspace_module.model_copy(update={"host": "0.0.0.0"})


def login(c: TestClient, key: str = API_KEYS[0]) -> str:
    r = c.post("/login", data={"api_key": key, "next": "/report"})
    assert r.status_code == 303, r.text
    return c.cookies[COOKIE]


def test_each_login_is_a_new_signed_session_and_its_cookie_is_secure_off_loopback(remote: Settings, client_for) -> None:
    c = client_for(remote)  # plain http: Secure anyway, the service is reachable from other machines
    r = c.post("/login", data={"api_key": API_KEYS[0], "next": "/report"})
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    first = r.cookies[COOKIE]
    c.cookies.clear()
    second = login(client_for(remote, "https://testserver"))
    assert first != second and API_KEYS[0] not in first  # random session ids, never the key


def test_a_signed_out_session_is_refused_by_every_worker(remote: Settings, client_for) -> None:
    a, b = client_for(remote, "https://testserver"), client_for(remote, "https://testserver")
    cookie = login(a)
    b.cookies.set(COOKIE, cookie)
    assert a.get("/report").status_code == 200 and b.get("/report").status_code == 200
    assert a.post("/logout").status_code == 303
    a.cookies.set(COOKIE, cookie)  # a copy of the cookie kept from before the sign-out
    for c in (a, b):
        r = c.get("/report")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_an_expired_or_forged_session_is_refused(remote: Settings, client_for) -> None:
    c = client_for(remote, "https://testserver")
    secret = session_secret(remote, [k.encode() for k in API_KEYS])

    then = int(time.time()) - COOKIE_MAX_AGE - 60

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:  # signed long enough ago that it has expired
            return then

    for cookie in (
        # expired (the server checks, not only the browser):
        URLSafeTimedSerializer(secret, salt=SALT, signer=Then).dumps({"sid": "s-old", "iat": then}),
        URLSafeTimedSerializer(b"another secret", salt=SALT).dumps({"sid": "s-x", "iat": int(time.time())}),  # forged
        "0" * 64,
    ):
        c.cookies.set(COOKIE, cookie)
        assert c.get("/report").status_code == 303, cookie
    fresh = URLSafeTimedSerializer(secret, salt=SALT).dumps({"sid": "s-new", "iat": int(time.time())})
    c.cookies.set(COOKIE, fresh)
    assert c.get("/report").status_code == 200  # the same shape, signed now with the right secret: valid


def test_wrong_keys_are_throttled_per_client_address(remote: Settings, client_for) -> None:
    c = client_for(remote, "https://testserver")
    for _ in range(MAX_FAILURES):
        assert c.post("/login", data={"api_key": "guess", "next": "/report"}).status_code == 401
    limited = c.post("/login", data={"api_key": "guess", "next": "/report"})
    assert limited.status_code == 429 and "Too many wrong API keys" in limited.text
    assert 0 < int(limited.headers["retry-after"]) <= 60
    # Even the right key waits: otherwise the limit would only slow guessing down, not stop it.
    assert c.post("/login", data={"api_key": API_KEYS[0], "next": "/report"}).status_code == 429
    other = client_for(remote, "https://testserver")  # another app (process): its own count
    assert other.post("/login", data={"api_key": API_KEYS[0], "next": "/report"}).status_code == 303


# -- row 7: startup with a registry that does not answer --------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_service_listens_at_once_while_the_registry_does_not_answer(
    own_workspace: Settings, client_for, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # A registry that takes connections and never answers: each look-up hangs until its timeout.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    request.addfinalizer(silent.close)
    settings = own_workspace.model_copy(
        update={"mlflow_tracking_uri": f"http://127.0.0.1:{silent.getsockname()[1]}", "startup_wait_seconds": 0.0}
    )
    started = time.monotonic()
    c = client_for(settings)
    assert time.monotonic() - started < 10  # the lifespan did not wait for the registry
    assert c.get("/healthz").status_code == 200
    ready = c.get("/readyz")
    assert ready.status_code in (200, 503) and ready.json()["ready"] is False
    assert "still being loaded" in ready.json()["reason"]
    # Meanwhile the team's points rules score (as in cold start), once the feature store is open.
    assert wait_for(lambda: (c.get("/readyz").json().get("model") or {}).get("kind") == "rules")
    scored = c.post("/v1/score", json={"lead_id": "x", "attributes": {"industry": "Retail"}}, headers=AUTH)
    assert scored.status_code == 200 and scored.json()["model"]["kind"] == "rules"
    assert "still being loaded" in c.get("/readyz").json()["reason"]  # the look-up still hangs


def test_readiness_gives_a_generic_reason_and_the_log_the_details(
    own_workspace: Settings, client_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = closed_port()
    settings = own_workspace.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{port}", "startup_wait_seconds": 0.0})
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("samepage.serving")
    logger.addHandler(handler)
    try:
        c = client_for(settings)
        assert wait_for(lambda: "unreachable" in c.get("/readyz").json()["reason"], timeout=60)
        body = c.get("/readyz").text
        assert "the model registry is unreachable" in body
        assert str(port) not in body and "HTTPConnectionPool" not in body and "API request" not in body
        assert "the model registry is unreachable" in c.get("/v1/model", headers=AUTH).text
    finally:
        logger.removeHandler(handler)
    failed = [r for r in records if getattr(r, "event", None) == "model_load_failed"]
    assert any(str(port) in r.getMessage() for r in failed)  # the driver's words, for whoever reads the log


# -- row 8: /metrics and /docs ----------------------------------------------------------------------
def test_metrics_need_the_key_off_loopback(workspace: Settings, client: TestClient, client_for) -> None:
    assert client.get("/metrics").status_code == 200  # loopback: open, as before
    off = client_for(workspace.model_copy(update={"host": "0.0.0.0"}))
    assert off.get("/metrics").status_code == 401
    assert off.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401
    with_key = off.get("/metrics", headers=AUTH)
    assert with_key.status_code == 200 and "samepage_ready" in with_key.text
    public = client_for(workspace.model_copy(update={"host": "0.0.0.0", "public_metrics": True}))
    assert public.get("/metrics").status_code == 200


def test_docs_load_nothing_from_other_hosts(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "://" not in page.text  # no CDN: every asset is on this service
    if docs.swagger_assets() is None:
        assert "swagger-ui-bundle-v2" in page.text and 'href="/openapi.json"' in page.text
    assert client.get("/openapi.json").status_code == 200


def test_docs_serve_swagger_ui_from_the_local_package(
    workspace: Settings, client_for, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = tmp_path / "swagger-ui"
    assets.mkdir()
    (assets / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = function () {};")
    (assets / "swagger-ui.css").write_text(".swagger-ui {}")
    (tmp_path / "secret.txt").write_text("not for you")
    monkeypatch.setattr(docs, "swagger_assets", lambda: assets)
    c = client_for(workspace)
    page = c.get("/docs").text
    assert "://" not in page
    for src in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
        assert src in page
        assert c.get(src).status_code == 200, src
    assert c.get("/docs/assets/swagger-ui-bundle.js").text == "window.SwaggerUIBundle = function () {};"
    assert "SwaggerUIBundle" in c.get("/static/docs.js").text
    for bad in ("/docs/assets/..%2Fsecret.txt", "/docs/assets/secret.txt", "/static/../auth.py"):
        assert c.get(bad).status_code == 404, bad
