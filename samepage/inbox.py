"""The inbox: what marketing automation sent through the API (lead updates, engagement events).

An append log in the lead-record store (same database, same durability as feedback: committed
before the caller is answered). Events are unique on `event_id`, so a retried webhook counts
once. The offline side folds the log into the canonical tables (`samepage.data.live`); the
online side takes rows as they come and marks them `pushed` (`features.live`), so rows a crash
left unpushed are found again on the next start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from samepage.records import RecordStore
from samepage.values import utc_timestamp

_metadata = sa.MetaData()

leads_table = sa.Table(
    "inbox_leads",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(200), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pushed", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
)

events_table = sa.Table(
    "inbox_events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("lead_id", sa.String(200), nullable=False, index=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pushed", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
)

EVENT_COLUMNS = ["id", "event_id", "lead_id", "type", "occurred_at", "value", "received_at"]
LEAD_COLUMNS = ["id", "lead_id", "created_at", "attributes", "received_at"]
_IN_CHUNK = 500  # ids per IN (...) list: well under every database's parameter limit


@dataclass(frozen=True)
class InboxEvent:
    """One engagement event as the API accepted it (validated, `event_id` always set)."""

    event_id: str
    lead_id: str
    type: str
    occurred_at: datetime
    value: float | None = None


@dataclass(frozen=True)
class LeadUpdate:
    """One `PUT /v1/leads/{id}`: the attributes it set (None clears) and its created_at, if given."""

    lead_id: str
    attributes: dict[str, Any]
    created_at: datetime | None = None


class Inbox:
    """The API's append log over the lead-record store's database; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def of(cls, records: RecordStore) -> Inbox:
        return cls(records.engine)

    # -- writes ---------------------------------------------------------------------------
    def add_events(self, events: Sequence[InboxEvent]) -> list[tuple[int, str]]:
        """Store the events not seen before in one transaction; returns the new rows' (id, lead_id).

        A repeat of an `event_id` (in the store or earlier in `events`) is skipped, so
        `len(events) - len(new)` are duplicates.
        """
        if not events:
            return []
        now = datetime.now(UTC)
        first: dict[str, InboxEvent] = {}
        for e in events:
            first.setdefault(e.event_id, e)  # the first copy wins, in call order
        unique = list(first.values())
        rows = [
            {
                "event_id": e.event_id,
                "lead_id": e.lead_id,
                "type": e.type,
                "occurred_at": _utc(e.occurred_at),
                "value": e.value,
                "received_at": now,
                "pushed": False,
            }
            for e in unique
        ]
        insert = _insert(self.engine, events_table).on_conflict_do_nothing(index_elements=["event_id"])
        with self.engine.begin() as conn:
            got = conn.execute(insert.returning(events_table.c.id, events_table.c.lead_id), rows)
            return sorted((int(r[0]), str(r[1])) for r in got)

    def add_lead(self, update: LeadUpdate) -> int:
        """Store one lead update; returns its id."""
        row = {
            "lead_id": update.lead_id,
            "created_at": None if update.created_at is None else _utc(update.created_at),
            "attributes": json.dumps(update.attributes, allow_nan=False, default=str),
            "received_at": datetime.now(UTC),
            "pushed": False,
        }
        with self.engine.begin() as conn:
            return int(conn.execute(leads_table.insert().values(**row).returning(leads_table.c.id)).scalar_one())

    def mark_pushed(self, lead_ids: Sequence[int] = (), event_ids: Sequence[int] = ()) -> None:
        """Record that the online store has these rows."""
        with self.engine.begin() as conn:
            for table, ids in ((leads_table, lead_ids), (events_table, event_ids)):
                for chunk in _chunks(list(ids)):
                    conn.execute(table.update().where(table.c.id.in_(chunk)).values(pushed=True))

    # -- reads ----------------------------------------------------------------------------
    def events(self, lead_ids: Sequence[str] | None = None, after_id: int = 0, upto_id: int | None = None) -> pd.DataFrame:
        """Event rows (EVENT_COLUMNS), by id; optionally of some leads and within (after_id, upto_id]."""
        query = sa.select(*[events_table.c[c] for c in EVENT_COLUMNS]).where(events_table.c.id > after_id)
        if upto_id is not None:
            query = query.where(events_table.c.id <= upto_id)
        frame = self._read(query, events_table, lead_ids, EVENT_COLUMNS)
        frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
        frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
        for column in ("event_id", "lead_id", "type"):
            frame[column] = frame[column].astype("string")
        return frame

    def lead_updates(
        self, lead_ids: Sequence[str] | None = None, after_id: int = 0, upto_id: int | None = None
    ) -> pd.DataFrame:
        """Lead update rows (LEAD_COLUMNS; `attributes` a dict), oldest first."""
        query = sa.select(*[leads_table.c[c] for c in LEAD_COLUMNS]).where(leads_table.c.id > after_id)
        if upto_id is not None:
            query = query.where(leads_table.c.id <= upto_id)
        frame = self._read(query, leads_table, lead_ids, LEAD_COLUMNS)
        frame["attributes"] = [json.loads(a) for a in frame["attributes"]]
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
        frame["lead_id"] = frame["lead_id"].astype("string")
        return frame

    def watermarks(self) -> tuple[int, int]:
        """The newest (lead update id, event id): a snapshot the offline build reads up to."""
        with self.engine.connect() as conn:
            leads = conn.execute(sa.select(sa.func.max(leads_table.c.id))).scalar()
            events = conn.execute(sa.select(sa.func.max(events_table.c.id))).scalar()
        return int(leads or 0), int(events or 0)

    def unpushed(self) -> tuple[list[str], list[str]]:
        """Leads with lead updates, and leads with events, that the online store has not taken yet."""
        with self.engine.connect() as conn:
            leads = conn.execute(sa.select(leads_table.c.lead_id).where(~leads_table.c.pushed).distinct()).scalars()
            lead_list = [str(x) for x in leads]
            events = conn.execute(sa.select(events_table.c.lead_id).where(~events_table.c.pushed).distinct()).scalars()
            return lead_list, [str(x) for x in events]

    def lead_ids_received_since(self, since: datetime | pd.Timestamp, events: bool) -> list[str]:
        """Leads with events (or lead updates) received at or after `since`."""
        table = events_table if events else leads_table
        query = sa.select(table.c.lead_id).where(table.c.received_at >= _utc(since)).distinct()
        with self.engine.connect() as conn:
            return [str(x) for x in conn.execute(query).scalars()]

    def knows(self, lead_id: str) -> bool:
        """Whether the API has created or updated this lead before."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(leads_table.c.id).where(leads_table.c.lead_id == lead_id).limit(1)).first() is not None

    def _read(self, query: Any, table: sa.Table, lead_ids: Sequence[str] | None, columns: list[str]) -> pd.DataFrame:
        rows: list[Any] = []
        with self.engine.connect() as conn:
            if lead_ids is None:
                rows = list(conn.execute(query.order_by(table.c.id)))
            else:
                for chunk in _chunks(sorted(set(lead_ids))):
                    rows += conn.execute(query.where(table.c.lead_id.in_(chunk)).order_by(table.c.id)).all()
                rows.sort(key=lambda r: r[0])
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _insert(engine: Engine, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING (SQLite and PostgreSQL both do)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"the inbox needs SQLite or PostgreSQL, not {engine.dialect.name}")


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i : i + _IN_CHUNK] for i in range(0, len(values), _IN_CHUNK)]


def _utc(value: datetime | pd.Timestamp) -> datetime:
    return utc_timestamp(value).to_pydatetime()
