"""Who may see the pages: open on loopback, else a session cookie that holds an HMAC of an API key.

The cookie is HttpOnly and SameSite=Strict and never holds the key itself; forms must come from
our own pages (Sec-Fetch-Site / Origin), and a login only redirects to a path on this site.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse

from samepage.settings import Settings
from serving.auth import key_matches
from serving.errors import ApiError

COOKIE = "samepage_session"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM_BYTES = 16 * 1024
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def session_token(key: bytes) -> str:
    """What the cookie holds: an HMAC of the key, so the cookie never reveals the key itself."""
    return hmac.new(key, b"samepage pages session v1", hashlib.sha256).hexdigest()


def has_access(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if is_loopback(settings.host):
        return True
    cookie = request.cookies.get(COOKIE)
    keys: list[bytes] = request.app.state.api_keys
    if not cookie or not keys:
        return False
    return key_matches(cookie, [session_token(k).encode() for k in keys])


def signed_in(request: Request) -> bool:
    """Whether the header shows "sign out": a session exists (on loopback there is none to end)."""
    return not is_loopback(request.app.state.settings.host) and has_access(request)


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
