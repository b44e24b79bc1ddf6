"""One error shape for every failure: `{"error": {"code", "message"}}`, never a stack trace.

Handlers turn FastAPI's validation errors (with the field's location), malformed JSON, unknown
routes, oversized bodies, our own `ApiError`s and the domain's errors (`samepage.errors`: this is
the one place they become status codes) into that shape; anything unexpected is a 500 with a
generic message (the details go to the log, not to the caller).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from samepage.errors import InvalidAttribute, NotReady, SamepageError, UnknownLead
from serving.schemas import ErrorOut

log = logging.getLogger("samepage.serving")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "not_ready",
}


# The domain's errors as HTTP answers; a subclass takes its nearest listed ancestor's status.
DOMAIN_STATUS: dict[type[SamepageError], int] = {UnknownLead: 404, InvalidAttribute: 422, NotReady: 503}


def domain_status(exc: SamepageError) -> int:
    """The HTTP status of a domain error (422 for one not listed: the request asked for something invalid)."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 422


class ApiError(Exception):
    """An answer other than success, with a message that says what is wrong and where."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.headers = headers


def body_too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit:,} bytes"


class BodyTooLarge(StarletteHTTPException):
    """Raised while a body streams in; an HTTPException so FastAPI's body reader passes it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_message(limit))


def error_response(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error shape for these statuses."""
    words = {
        400: "Malformed request (e.g. invalid JSON)",
        401: "Missing or unknown API key",
        404: "Not found",
        413: "Request body too large",
        422: "Invalid field (the message names it)",
        503: "No usable champion model (the message says why)",
    }
    return {s: {"model": ErrorOut, "description": words.get(s, "Error")} for s in statuses}


def describe_validation(errors: list[dict[str, Any]], limit: int = 5) -> tuple[int, str]:
    """(status, message) for pydantic errors: 400 for malformed JSON, else 422 naming each field."""
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = ctx.get("error", "not valid JSON")
            return 400, f"The request body is not valid JSON ({detail})"
    parts = []
    for err in errors[:limit]:
        where = location(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return 422, "; ".join(parts) + more


def location(loc: tuple[Any, ...]) -> str:
    """('body', 'leads', 3, 'lead_id') -> 'body.leads[3].lead_id'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(SamepageError)
    async def _domain_error(_: Request, exc: SamepageError) -> JSONResponse:
        return error_response(domain_status(exc), exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = describe_validation(list(exc.errors()))
        return error_response(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
        return error_response(500, "Internal error; the service log has the details")
