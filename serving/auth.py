"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every /v1 route but the definitions.

Keys come from `SAMEPAGE_API_KEYS`, else from the workspace key file that `samepage up` writes.
The check compares against every key in constant time, and keys never reach a log line.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from samepage.settings import Settings
from serving.errors import ApiError

KEY_FILE = "api_key"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def key_file(settings: Settings) -> Path:
    return settings.home_dir / KEY_FILE


def configured_keys(settings: Settings) -> list[str]:
    """The keys this service accepts: the environment's, else the workspace's key file."""
    if settings.keys:
        return settings.keys
    path = key_file(settings)
    if path.exists():
        return [k.strip() for k in path.read_text(encoding="utf-8").split(",") if k.strip()]
    return []


def ensure_api_key(settings: Settings) -> tuple[str, bool]:
    """(a key to print, whether it was made now); `samepage up` makes one when none is set."""
    keys = configured_keys(settings)
    if keys:
        return keys[0], False
    key = "sp_" + secrets.token_urlsafe(24)
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # readable by its owner only
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    os.replace(tmp, path)
    return key, True


def key_matches(candidate: str, keys: list[bytes]) -> bool:
    """Constant time in the candidate and over all keys (no early exit reveals which one is close)."""
    given = candidate.encode("utf-8", "surrogatepass")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


async def require_api_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    header_key: Annotated[str | None, Security(header_scheme)],
) -> None:
    """Dependency for protected routers: 401 in the contract's shape without a known key."""
    keys: list[bytes] = request.app.state.api_keys
    # Every key presented must be known: a wrong or empty Bearer key beside a right X-API-Key is a 401, not ignored.
    candidates = []
    if "x-api-key" in request.headers:
        candidates.append(header_key or "")
    if "authorization" in request.headers:
        candidates.append(bearer.credentials if bearer is not None else "")
    if not keys:
        raise ApiError(401, "No API keys are configured on this service (set SAMEPAGE_API_KEYS or run `samepage up`)")
    if not any(candidates):
        raise ApiError(
            401,
            "Missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not all(key_matches(c, keys) for c in candidates):
        raise ApiError(401, "Unknown API key", headers={"WWW-Authenticate": "Bearer"})


def metrics_need_key(settings: Settings) -> bool:
    """/metrics is open on loopback (or with `SAMEPAGE_PUBLIC_METRICS`); anywhere else it takes the API key."""
    return not (is_loopback(settings.host) or settings.public_metrics)
