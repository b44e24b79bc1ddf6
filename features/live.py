"""The online store follows the API at once, through Feast's own write path.

`LiveFeatures.push_events` / `push_leads` read the leads' online rows, fold in what the inbox
holds for them and write the rows back with `FeatureStore.write_to_online_store`, before the
API answers, so the next score counts them. Both are idempotent: an activity row lists the
inbox ids it holds (an event is added once however often it is pushed) and lead updates are
replayed in order (the last value of each attribute wins). That makes recovery simple: rows a
crash left unpushed (`Inbox.unpushed`) and rows written while a rebuild materialized
(`catch_up(since=...)`) are pushed again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from features.activity import EARLIER, INBOX_IDS, SECONDS, TYPES, ceil_seconds, epoch_times, longest_window, merged
from features.derive import coerce
from features.feast_repo import ACTIVITY_VIEW, ATTRIBUTES_VIEW, attribute_kinds, open_store
from features.transform import CREATED_AT, LEAD_ID, TIMESTAMP
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.locks import workspace_lock
from samepage.settings import Settings
from samepage.values import is_missing

# A transaction that took its inbox ids before a rebuild's snapshot but committed after it is
# caught up if it was received within this margin of the snapshot.
CATCH_UP_MARGIN = timedelta(seconds=60)


class LiveFeatures:
    """Writes inbox rows to the online store; one per process, safe to share between threads."""

    def __init__(self, settings: Settings, defs: Definitions, inbox: Inbox) -> None:
        self.settings = settings
        self.defs = defs
        self.inbox = inbox
        self._store = open_store(settings)
        self._lock = threading.Lock()
        self._held = threading.local()
        self.attribute_kinds = attribute_kinds(self._store)
        self._window = longest_window(defs)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer of online rows at a time: threads here, other processes through a file lock.

        Re-entrant in one thread, so a rebuild can hold it across materializing and catching up.
        """
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        with self._lock, workspace_lock(self.settings, "online-write", wait_seconds=120.0):
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0

    # -- events -----------------------------------------------------------------------------
    def push_events(self, lead_ids: Sequence[str], now: pd.Timestamp | None = None) -> int:
        """Bring these leads' activity rows up to the inbox; returns the rows written."""
        leads = sorted(set(lead_ids))
        if not leads:
            return 0
        when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
        with self.writing():
            current = self._read(ACTIVITY_VIEW, [TYPES, SECONDS, EARLIER, INBOX_IDS], leads)
            events = self.inbox.events(leads)
            cutoff = int(when.value // 1_000_000_000) - self._window
            # Plain lists from here: per-lead pandas work was most of a small call's time.
            ids = [int(i) for i in events["id"]]
            types = [str(t) for t in events["type"]]
            seconds = [int(x) for x in ceil_seconds(events["occurred_at"])] if len(events) else []
            by_lead: dict[str, list[int]] = {}
            for i, lead in enumerate(events["lead_id"].tolist()):
                by_lead.setdefault(str(lead), []).append(i)
            rows: list[dict[str, Any]] = []
            for lead, rows_of_lead in by_lead.items():
                row = current.get(lead)
                held = {int(i) for i in (row or {}).get(INBOX_IDS) or []}
                new = [i for i in rows_of_lead if ids[i] not in held]
                if not new:
                    continue
                out = merged(row, [types[i] for i in new], [seconds[i] for i in new], cutoff)
                # The inbox ids the lists hold: events older than the window left them (and count
                # only in EARLIER, where adding one again changes nothing).
                recent = {ids[i] for i in rows_of_lead if seconds[i] > cutoff}
                out[INBOX_IDS] = sorted((held | {ids[i] for i in new}) & recent)
                rows.append({LEAD_ID: lead, TIMESTAMP: when, **out})
            pushed = ids
            if rows:
                frame = pd.DataFrame(rows)
                frame[EARLIER] = epoch_times(frame[EARLIER].tolist())
                self._store.write_to_online_store(ACTIVITY_VIEW, frame)
        self.inbox.mark_pushed(event_ids=pushed)
        return len(rows)

    # -- leads ------------------------------------------------------------------------------
    def push_leads(self, lead_ids: Sequence[str], now: pd.Timestamp | None = None) -> int:
        """Replay the inbox's updates of these leads onto their online attribute rows."""
        leads = sorted(set(lead_ids))
        if not leads:
            return 0
        when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
        names = list(self.attribute_kinds)
        with self.writing():
            current = self._read(ATTRIBUTES_VIEW, names, leads)
            updates = self.inbox.lead_updates(leads)
            rows: list[dict[str, Any]] = []
            for lead, group in updates.groupby("lead_id", sort=False):
                row = dict(current.get(str(lead)) or dict.fromkeys(names))
                for created_at, attributes, received_at in zip(
                    group["created_at"], group["attributes"], group["received_at"], strict=True
                ):
                    if not pd.isna(created_at):
                        row[CREATED_AT] = created_at
                    elif is_missing(row.get(CREATED_AT)):
                        row[CREATED_AT] = received_at.floor("s")  # a lead the API created without a time: created now
                    for name, value in attributes.items():
                        if name in self.attribute_kinds:  # others reach the offline tables only
                            row[name] = coerce(name, value, self.attribute_kinds[name])
                rows.append({LEAD_ID: str(lead), TIMESTAMP: when, **row})
            if rows:
                self._store.write_to_online_store(ATTRIBUTES_VIEW, _typed(pd.DataFrame(rows), self.attribute_kinds))
        self.inbox.mark_pushed(lead_ids=[int(i) for i in updates["id"]])
        return len(rows)

    def known(self, lead_id: str) -> bool:
        """Whether the online store has this lead's attributes (it was imported or created before)."""
        row = self._read(ATTRIBUTES_VIEW, [CREATED_AT], [lead_id])[lead_id]
        return row is not None

    # -- recovery ---------------------------------------------------------------------------
    def catch_up(self, since: datetime | None = None, now: pd.Timestamp | None = None) -> tuple[int, int]:
        """Push what the online store may lack: unpushed rows, and rows received after `since`
        (minus a margin) when a rebuild's materialization may have overwritten them. `now`: as in
        the pushes (what the rows are pruned and stamped at; default the clock)."""
        lead_ids, event_leads = self.inbox.unpushed()
        if since is not None:
            after = pd.Timestamp(since) - CATCH_UP_MARGIN
            lead_ids += self.inbox.lead_ids_received_since(after, events=False)
            event_leads += self.inbox.lead_ids_received_since(after, events=True)
        return self.push_leads(lead_ids, now), self.push_events(event_leads, now)

    # -- reading ----------------------------------------------------------------------------
    def _read(self, view: str, fields: list[str], leads: list[str]) -> dict[str, dict[str, Any] | None]:
        """The leads' stored rows of one view (None where the store has none)."""
        got = self._store.get_online_features(
            features=[f"{view}:{f}" for f in fields], entity_rows=[{LEAD_ID: lead} for lead in leads]
        ).to_dict()
        out: dict[str, dict[str, Any] | None] = {}
        for i, lead in enumerate(leads):
            row = {f: got[f][i] for f in fields}
            out[lead] = None if all(is_missing(v) for v in row.values()) else row
        return out


def _typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Columns in the types Feast's write path converts (None for missing categories and flags)."""
    for name, kind in kinds.items():
        if name not in frame.columns:
            frame[name] = None
        if kind == "number":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif kind == "timestamp":
            frame[name] = pd.to_datetime(frame[name], utc=True)
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
