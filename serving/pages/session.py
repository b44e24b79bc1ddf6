"""Who may see the pages: open on loopback, else a signed session cookie made by a login with an API key.

The cookie holds a random session id and its issue time, signed with `itsdangerous` under a secret
derived from the API keys (or `SAMEPAGE_SESSION_SECRET`), so it never holds a key and every worker
can check it. It expires after COOKIE_MAX_AGE (checked on the server, not only by the browser) and a
sign-out revokes its id in the lead-record store. It is HttpOnly, SameSite=Strict, and Secure
whenever the service is not on loopback; forms must come from our own pages (Sec-Fetch-Site /
Origin), and a login only redirects to a path on this site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer

from samepage.settings import Settings
from serving.auth import is_loopback
from serving.errors import ApiError
from serving.pages.revocations import is_revoked

__all__ = ["COOKIE", "COOKIE_MAX_AGE", "Session", "is_loopback"]

COOKIE = "samepage_session"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM_BYTES = 16 * 1024
SALT = "samepage pages session v2"


@dataclass(frozen=True)
class Session:
    session_id: str
    issued_at: float

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at + COOKIE_MAX_AGE, UTC)


def session_secret(settings: Settings, keys: list[bytes]) -> bytes:
    """The signing secret: the setting, else one derived from all API keys (rotating the keys ends every session)."""
    if settings.session_secret:
        return settings.session_secret.encode("utf-8")
    return hmac.new(b"samepage session secret", b"\x00".join(sorted(keys)), hashlib.sha256).digest()


def serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(session_secret(request.app.state.settings, request.app.state.api_keys), salt=SALT)


def new_session_cookie(request: Request) -> str:
    """A fresh session: a random id (never the same twice) and its issue time, signed."""
    return serializer(request).dumps({"sid": secrets.token_urlsafe(24), "iat": int(time.time())})


def current_session(request: Request) -> Session | None:
    """The request's session when its signature holds, it has not expired and it was not signed out."""
    cookie = request.cookies.get(COOKIE)
    if not cookie or not request.app.state.api_keys:
        return None
    try:
        data: Any = serializer(request).loads(cookie, max_age=COOKIE_MAX_AGE)
        session = Session(str(data["sid"]), float(data["iat"]))
    except (BadSignature, KeyError, TypeError, ValueError):  # SignatureExpired is a BadSignature
        return None
    if session.issued_at + COOKIE_MAX_AGE < time.time():  # the issue time it carries agrees with the signature's
        return None
    if is_revoked(request.app.state.records.engine, session.session_id):
        return None
    return session


def has_access(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return is_loopback(settings.host) or current_session(request) is not None


def signed_in(request: Request) -> bool:
    """Whether the header shows "sign out": a session exists (on loopback there is none to end)."""
    return not is_loopback(request.app.state.settings.host) and has_access(request)


def secure_cookie(request: Request) -> bool:
    """Secure whenever the service is reachable from other machines (or is on https already)."""
    return not is_loopback(request.app.state.settings.host) or request.url.scheme == "https"


def login_redirect(request: Request) -> RedirectResponse | None:
    if has_access(request):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no `//host`, no scheme): an open redirect would phish with our name."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/report"
    return target


def same_origin(request: Request) -> bool:
    """A form POST must come from our own pages (browsers send Sec-Fetch-Site / Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        # Host only: behind a TLS-terminating proxy the browser's scheme is not the one we see.
        return urlsplit(origin).netloc == request.url.netloc
    return origin != "null"


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the pages post nothing else); first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, f"The form is larger than {MAX_FORM_BYTES:,} bytes")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}
