"""GET/POST /login and POST /logout: an API key in, a session cookie out (see `serving.pages.session`)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from serving.auth import key_matches
from serving.pages.render import render
from serving.pages.session import COOKIE, COOKIE_MAX_AGE, has_access, read_form, safe_next, same_origin, session_token

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, target: Annotated[str | None, Query(alias="next")] = None) -> Response:
    if has_access(request):
        return RedirectResponse(safe_next(target), status_code=303)
    return render(request, "login.html", next=safe_next(target), error=None, active="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    keys: list[bytes] = request.app.state.api_keys
    given = form.get("api_key", "").strip()
    if not same_origin(request) or not keys or not given or not key_matches(given, keys):
        error = "That API key is not valid for this service." if keys else "No API keys are configured on this service."
        return render(request, "login.html", status=401, next=target, error=error, active="")
    token = next(session_token(k) for k in keys if hmac.compare_digest(given.encode("utf-8", "surrogatepass"), k))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
