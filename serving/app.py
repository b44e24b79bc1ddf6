"""The scoring service: `create_app(settings, defs)` builds it, `serve(settings)` runs it with uvicorn.

The lifespan opens the record store, starts loading the champion (with its online features) in the
background so that the service listens at once, freezes what it loaded out of the garbage
collector's sight (full collections were the tail latency), and keeps following the champion alias.
Every answer carries the security headers (serving.middleware); only the configured Host names
are answered (`Settings.hosts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from samepage.changes import Preview
from samepage.definitions import Definitions, load_definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.auth import configured_keys, metrics_need_key, require_api_key
from serving.docs import install_docs
from serving.errors import install_error_handlers, responses
from serving.logs import configure_logging
from serving.metrics import Metrics
from serving.middleware import RequestMiddleware
from serving.online import OnlineWriter, refresh_forever
from serving.openapi import add_definitions
from serving.routes import definitions, events, feedback, health, leads, model, pages, report, score
from serving.scorer import Scorer, refreeze
from serving.writer import ScoreWriter

log = logging.getLogger("samepage.serving")

MAX_BODY_BYTES = 4 * 1024 * 1024  # 1,000 leads with a few dozen attributes fit well inside
# 10,000 events with ids at their 200-character limit come to about 5.1 MiB.
BODY_LIMITS = {"/v1/events": 12 * 1024 * 1024}

DESCRIPTION = """
Scores leads with the champion model of the shared definitions, says whether each is an MQL and
why, in the words marketing and sales agreed on, and takes sales' feedback back as the next labels.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>` (every /v1 route but
GET /v1/definitions). Errors are `{"error": {"code", "message"}}`.
"""


def create_app(
    settings: Settings,
    defs: Definitions | None = None,
    access_log: bool = True,
    proposed: Callable[[], Preview] | None = None,
) -> FastAPI:
    """A service over one workspace; nothing is loaded until the app starts (its lifespan).

    `proposed`: the preview of a proposed definitions file the /definitions page shows (`samepage serve
    --proposed F` passes it; serving does not import training, which computes it)."""
    defs = defs or load_definitions(settings.definitions)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        records = RecordStore.from_settings(settings)
        writer = ScoreWriter(records)
        scorer = Scorer(settings, defs, metrics, history=writer)  # trend: the queued score if not yet written
        app.state.records = records
        app.state.scorer = scorer
        app.state.writer = writer
        app.state.inbox = inbox = Inbox.of(records)
        app.state.online = online = OnlineWriter(settings, defs, inbox)
        app.state.api_keys = [k.encode("utf-8") for k in configured_keys(settings)]
        # The champion loads in the background: a registry that does not answer must not keep the
        # service from listening. Until it is in, scores come from the points rules (cold start).
        watcher = asyncio.create_task(scorer.watch())
        # Rows a crash left unpushed go online first; then imports and time are followed.
        refresher = asyncio.create_task(refresh_forever(online, settings.online_refresh_seconds))
        await _wait_for_first_load(scorer, online, settings.startup_wait_seconds)
        if not scorer.loaded.is_set():
            log.warning("listening before the champion is loaded", extra={"event": "model_loading"})
        elif scorer.champion is None:
            log.warning("starting without a champion", extra={"event": "not_ready"})
        refreeze()
        try:
            yield
        finally:
            for task in (watcher, refresher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            writer.close()
            records.close()

    app = FastAPI(
        title="samepage",
        version=defs.version_string,
        summary="Lead scoring on one signed-off vocabulary",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by serving.docs from files on this machine, never from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.defs = defs
    app.state.metrics = metrics
    app.state.proposed = proposed
    install_error_handlers(app)
    protected = [Depends(require_api_key)]
    app.include_router(score.router, dependencies=protected)
    app.include_router(feedback.router, dependencies=protected)
    app.include_router(leads.router, dependencies=protected)
    app.include_router(events.router, dependencies=protected)
    app.include_router(model.router, dependencies=protected)
    app.include_router(definitions.router)
    app.include_router(health.router)
    # Off loopback /metrics takes the key; the schema says so exactly when it does.
    if metrics_need_key(settings):
        app.include_router(health.metrics_router, dependencies=protected, responses=responses(401))
    else:
        app.include_router(health.metrics_router)
    app.include_router(report.router, dependencies=protected)
    app.include_router(pages.router)
    install_docs(app)

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.openapi = lambda: _openapi(app, defs)  # type: ignore[method-assign]
    # Starlette runs the middleware added last first: the request middleware sees (and counts) every
    # answer, also the 400 for a Host that is not ours (a DNS-rebinding page names its own host).
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.hosts, www_redirect=False)
    app.add_middleware(
        RequestMiddleware, metrics=metrics, max_body_bytes=MAX_BODY_BYTES, access_log=access_log, path_limits=BODY_LIMITS
    )
    return app


async def _wait_for_first_load(scorer: Scorer, online: OnlineWriter, seconds: float) -> None:
    """Wait up to `seconds` for the first champion look-up and the start-up catch-up of the online
    store (0: not at all; listen at once, `/readyz` says what is still loading)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not (scorer.loaded.is_set() and online.caught_up.is_set()) and loop.time() < deadline:
        await asyncio.sleep(0.02)


def _openapi(app: FastAPI, defs: Definitions) -> dict[str, Any]:
    """FastAPI's schema, plus what only the definitions know (the stage and reason vocabularies)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    schemas = schema.get("components", {}).get("schemas", {})
    props = schemas.get("FeedbackIn", {}).get("properties", {})
    if "stage" in props:
        props["stage"] = {**props["stage"], "enum": [s.key for s in defs.stages]}
        props["stage"].pop("minLength", None)
        props["stage"].pop("maxLength", None)
    add_definitions(schema, defs, datetime.now(UTC).date())  # attribute names and types, reasons by stage, years
    app.openapi_schema = schema
    return schema


WORKER_ENV = "SAMEPAGE_SERVE_WORKER"  # how `serve` hands its settings (and the proposal) to worker processes


def workers(settings: Settings) -> int:
    """How many worker processes `serve` runs (`Settings.workers`; 0: one per core)."""
    return settings.workers or os.cpu_count() or 1


def serve(
    settings: Settings,
    defs: Definitions | None = None,
    proposed: Callable[[], Preview] | None = None,
    proposal: tuple[str, str] | None = None,
) -> None:
    """Run the service with uvicorn on settings.host:settings.port (blocks), in `workers(settings)` processes.

    One worker runs `create_app(settings, defs, proposed=proposed)` in this process. Several are uvicorn's
    worker processes, each building its own app with `worker_app` from these settings: each loads the
    champion and follows the alias, keeps its own score writer (the record store takes writers from
    several processes) and online writer (features.live writes under a file lock), and only one runs an
    online refresh at a time. `proposal` = ("module:function", path): how a worker makes the `proposed`
    preview (the function is called with (settings, defs, Path(path)), like the CLI's `proposal`).
    """
    import uvicorn

    n = workers(settings)
    if n <= 1:
        app = create_app(settings, defs, proposed=proposed)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
        return
    if proposed is not None and proposal is None:
        raise ValueError("serve: with several workers, give the preview as `proposal` (an import string and a path)")
    os.environ[WORKER_ENV] = json.dumps({"settings": settings.model_dump(mode="json"), "proposal": proposal})
    uvicorn.run(
        "serving.app:worker_app",
        factory=True,
        workers=n,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


def worker_app() -> FastAPI:
    """The app of one worker process of `serve` (uvicorn's factory), from the settings `serve` handed over."""
    given = json.loads(os.environ[WORKER_ENV])
    settings = Settings(**given["settings"], _env_file=None)
    defs = load_definitions(settings.definitions)
    proposed = None
    if given.get("proposal"):
        target, path = given["proposal"]
        module, _, name = str(target).partition(":")
        proposed = getattr(importlib.import_module(module), name)(settings, defs, Path(path))
    return create_app(settings, defs, proposed=proposed)
