"""The service's side of the online store: the writer ingestion pushes through, and the refresher.

The writer (`features.live.LiveFeatures`) exists once the feature store does; until then API rows
wait in the inbox and the first build takes them. A push that fails after the rows are stored
is logged and counted, not an error for the caller (the rows are durable), and the refresher
pushes them again; it also rebuilds after an import (`features.freshness.refresh`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from features.feast_repo import ATTRIBUTES_VIEW, open_store
from features.freshness import refresh
from features.live import LiveFeatures
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.locks import WorkspaceBusy, workspace_lock
from samepage.settings import Settings
from serving.metrics import Metrics

log = logging.getLogger("samepage.serving")
REFRESH_LOCK = "online-refresh"  # one refresh at a time across the worker processes


class OnlineWriter:
    """Makes the `LiveFeatures` writer on first use once the store has its views; thread-safe."""

    def __init__(self, settings: Settings, defs: Definitions, inbox: Inbox) -> None:
        self.settings = settings
        self.defs = defs
        self.inbox = inbox
        self._live: LiveFeatures | None = None
        self._lock = threading.Lock()
        self.caught_up = threading.Event()  # set once the start-up catch-up has run (readiness waits for it)

    def get(self) -> LiveFeatures | None:
        if self._live is not None:
            return self._live
        with self._lock:
            if self._live is None and (self.settings.feature_repo_dir / "registry.db").exists():
                try:
                    if ATTRIBUTES_VIEW in {v.name for v in open_store(self.settings).list_feature_views()}:
                        self._live = LiveFeatures(self.settings, self.defs, self.inbox)
                except Exception:  # noqa: BLE001 - a half-built store: the rows wait in the inbox
                    log.warning("online store not usable yet", exc_info=True, extra={"event": "online_not_ready"})
        return self._live


def push(live: LiveFeatures | None, metrics: Metrics, leads: Sequence[str] = (), events: Sequence[str] = ()) -> bool:
    """Push stored inbox rows of these leads online; False (logged, retried by the refresher) when it could not."""
    if live is None:
        return False
    try:
        live.push_leads(leads)
        live.push_events(events)
    except Exception:  # noqa: BLE001 - the rows are durable; the refresher retries them
        metrics.online_push_failures.inc()
        log.warning("online push failed; the refresher retries", exc_info=True, extra={"event": "online_push_failed"})
        return False
    return True


async def refresh_forever(writer: OnlineWriter, interval: float) -> None:
    """At start, push what a crash left unpushed; then every `interval` seconds (0: never) rebuild
    after an import and push again."""
    try:
        live = await asyncio.to_thread(writer.get)
        if live is not None:
            leads, events = await asyncio.to_thread(live.catch_up)
            if leads or events:
                detail = f"{leads} lead rows, {events} activity rows"
                log.info("online store caught up", extra={"event": "online_catch_up", "detail": detail})
    except Exception:  # noqa: BLE001 - the refresher tries again
        log.warning("online catch-up failed", exc_info=True, extra={"event": "online_refresh_failed"})
    finally:
        writer.caught_up.set()
    while interval > 0:
        await asyncio.sleep(interval)
        try:
            what = await asyncio.to_thread(refresh_once, writer)
            if what is not None:
                log.info("online store refreshed", extra={"event": "online_refresh", "detail": what})
        except Exception:  # noqa: BLE001 - the next round tries again
            log.warning("online refresh failed", exc_info=True, extra={"event": "online_refresh_failed"})


def refresh_once(writer: OnlineWriter) -> str | None:
    """One refresh round, unless another worker process of this workspace is running one (None then:
    with `--workers N` every worker has a refresher, and one rebuild after an import is enough)."""
    try:
        with workspace_lock(writer.settings, REFRESH_LOCK, wait_seconds=0):
            return refresh(writer.settings, writer.defs, writer.get())
    except WorkspaceBusy:
        return None
