"""GET/POST /login and POST /logout: an API key in, a signed session cookie out (see `serving.pages.session`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from serving.auth import key_matches
from serving.pages.render import render
from serving.pages.revocations import revoke
from serving.pages.session import (
    COOKIE,
    COOKIE_MAX_AGE,
    current_session,
    has_access,
    new_session_cookie,
    read_form,
    safe_next,
    same_origin,
    secure_cookie,
)
from serving.pages.throttle import LoginThrottle

router = APIRouter(include_in_schema=False)


def throttle(request: Request) -> LoginThrottle:
    """One per app (made on first use), so separate apps in one process keep separate counts."""
    state = request.app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = LoginThrottle()
    return state.login_throttle


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_page(request: Request, target: Annotated[str | None, Query(alias="next")] = None) -> Response:
    if has_access(request):
        return RedirectResponse(safe_next(target), status_code=303)
    return render(request, "login.html", next=safe_next(target), error=None, active="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    address = client_address(request)
    wait = throttle(request).retry_after(address)
    if wait:
        error = f"Too many wrong API keys from your address: try again in {wait} s."
        response = render(request, "login.html", status=429, next=target, error=error, active="")
        response.headers["Retry-After"] = str(wait)
        return response
    keys: list[bytes] = request.app.state.api_keys
    given = form.get("api_key", "").strip()
    if not same_origin(request) or not keys or not given or not key_matches(given, keys):
        if keys and given:
            throttle(request).failed(address)
        error = "That API key is not valid for this service." if keys else "No API keys are configured on this service."
        return render(request, "login.html", status=401, next=target, error=error, active="")
    redirect = RedirectResponse(target, status_code=303)
    redirect.set_cookie(
        COOKIE,
        new_session_cookie(request),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
        path="/",
    )
    return redirect


@router.post("/logout")
def logout(request: Request) -> Response:
    """Ends the session on the server too: its id is revoked, so a copied cookie no longer opens a page."""
    session = current_session(request)
    if session is not None:
        revoke(request.app.state.records.engine, session.session_id, session.expires_at, datetime.now(UTC))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie(request))
    return response
