"""Is the feature store up to date with the workspace? And the refresh that makes it so.

A build records what it read (`sources/build.json`: the canonical tables' files and the inbox
snapshot). The sources are stale when an import changed the tables or the API added rows since;
`samepage train` then rebuilds before reading a training set, and `samepage up` refreshes on its
own (`refresh`, every `Settings.online_refresh_seconds`). Windowed counts need no refresh: they
age at read time (`features.activity`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.transform import sources_dir
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import TABLES, table_path

if TYPE_CHECKING:
    from features.live import LiveFeatures

MANIFEST = "build.json"


def tables_signature(data_dir: Path) -> dict[str, list[int]]:
    """Size and modification time (ns) of each canonical table file present."""
    out: dict[str, list[int]] = {}
    for name in TABLES:
        path = table_path(data_dir, name)
        if path.exists():
            stat = path.stat()
            out[name] = [stat.st_size, stat.st_mtime_ns]
    return out


def write_manifest(settings: Settings, built_at: datetime, inbox_snapshot: tuple[int, int], signature: dict[str, Any]) -> None:
    """Record what a build read (atomically: a reader sees the old or the new record)."""
    path = sources_dir(settings) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    record = {"built_at": built_at.isoformat(), "inbox": list(inbox_snapshot), "tables": signature}
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Staleness:
    """Why the sources lag the workspace (empty `reasons`: they do not).

    `tables_changed`: never built, or an import changed the canonical tables since;
    `api_rows`: the API added leads or events since (already online; offline after a rebuild).
    """

    reasons: list[str]
    tables_changed: bool = False
    api_rows: bool = False

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def __str__(self) -> str:
        return "; ".join(self.reasons) or "up to date"


def staleness(settings: Settings, inbox: Inbox) -> Staleness:
    """Compare the last build's record with the tables and the inbox now."""
    path = sources_dir(settings) / MANIFEST
    if not path.exists():
        return Staleness(["the feature store was never built here"], tables_changed=True)
    record = json.loads(path.read_text(encoding="utf-8"))
    reasons = []
    tables_changed = record.get("tables") != tables_signature(settings.data_dir)
    if tables_changed:
        reasons.append("the canonical tables changed since the last build (an import)")
    leads, events = inbox.watermarks()
    seen_leads, seen_events = record.get("inbox", [0, 0])
    if leads > seen_leads:
        reasons.append("leads arrived through the API since the last build")
    if events > seen_events:
        reasons.append("events arrived through the API since the last build")
    return Staleness(reasons, tables_changed=tables_changed, api_rows=leads > seen_leads or events > seen_events)


def refresh(settings: Settings, defs: Definitions, live: LiveFeatures | None = None, rebuild_for_api: bool = False) -> str:
    """Bring the online store up to the workspace; what `samepage up` runs on a timer. Returns what it did.

    Rebuilds when an import changed the canonical tables (or `rebuild_for_api` and the API added
    rows: training needs them offline); otherwise pushes inbox rows a crash left unpushed.
    Windowed counts need nothing: they age at read time. Feast is imported only when there is
    work for it (~3 s of imports that `score --all`, which reads the source files, never needs).
    """
    records = RecordStore.from_settings(settings)
    try:
        inbox = Inbox.of(records)
        stale = staleness(settings, inbox)
        if stale.tables_changed or (rebuild_for_api and stale.api_rows):
            from features.store import build_features

            build_features(settings, defs, progress=False)
            return f"rebuilt ({stale})"
        if live is None:
            lead_ids, event_leads = inbox.unpushed()
            if not lead_ids and not event_leads:
                return UP_TO_DATE.format(leads=0, events=0)
            from features.live import LiveFeatures

            live = LiveFeatures(settings, defs, inbox)
        leads, events = live.catch_up()
        return UP_TO_DATE.format(leads=leads, events=events)
    finally:
        records.close()


UP_TO_DATE = "up to date; pushed {leads} lead rows and {events} activity rows the online store lacked"
