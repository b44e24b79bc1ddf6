"""The offline side of live ingestion: the canonical tables as imports AND the API made them.

`workspace_tables` folds the inbox (`samepage.inbox`) into what `read_tables` gives, with the
import's merge rules: a lead update sets the attributes it names (None clears one) and keeps
the rest, a new lead takes its `created_at` (or the time the API first heard of it), and events
are appended. Features, training and reports read this, so API leads and events are seen
exactly like imported ones. Imports and API writes never touch the same files, so neither can
lose the other's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from samepage.data.parsing import attribute_kind, coerce
from samepage.inbox import Inbox
from samepage.tables import (
    EVENT_COLUMNS,
    LEAD_KEYS,
    CanonicalTables,
    empty_events,
    empty_stages,
    has_data,
    read_tables,
    table_path,
)

INBOX_ID = "inbox_id"  # the events' inbox row id (NaN for imported events)
EVENT_BATCH_ROWS = 250_000  # events per batch when streamed (`workspace_parts`)
_ABSENT = object()


def workspace_tables(
    data_dir: Path, inbox: Inbox, upto: tuple[int, int] | None = None
) -> CanonicalTables:
    """Canonical tables with the inbox folded in (up to the `(lead update id, event id)` snapshot).

    Events carry an extra `inbox_id` column. Without imported leads the leads come from the
    inbox alone; with neither, `FileNotFoundError` as from `read_tables`.
    """
    leads_upto, events_upto = upto if upto is not None else inbox.watermarks()
    updates = inbox.lead_updates(upto_id=leads_upto)
    if not has_data(data_dir) and len(updates):
        tables = CanonicalTables(leads=_no_leads(), events=empty_events(), stages=empty_stages())
    else:
        tables = read_tables(data_dir)
    tables.leads = fold_lead_updates(tables.leads, updates)
    events = inbox.events(upto_id=events_upto)
    imported = tables.events[EVENT_COLUMNS].assign(**{INBOX_ID: np.nan})
    if len(events):
        api = events[EVENT_COLUMNS].assign(**{INBOX_ID: events["id"].astype("float64")})
        imported = pd.concat([imported.astype(api.dtypes.to_dict()), api], ignore_index=True)
    tables.events = imported
    return tables


def workspace_parts(
    data_dir: Path, inbox: Inbox, upto: tuple[int, int] | None = None, batch_rows: int = EVENT_BATCH_ROWS
) -> tuple[pd.DataFrame, Iterator[pd.DataFrame]]:
    """`workspace_tables`' leads, and its events (without `value`) as batches of at most `batch_rows`
    in the same order: for builds that stream the events in bounded memory.

    The events file is opened here, with the leads, so both come from the same set of tables
    even if an import replaces them while the batches are read.
    """
    leads_upto, events_upto = upto if upto is not None else inbox.watermarks()
    updates = inbox.lead_updates(upto_id=leads_upto)
    events_file: pq.ParquetFile | None = None
    if not has_data(data_dir) and len(updates):
        leads = _no_leads()
    else:
        leads = read_tables(data_dir, events=False).leads
        path = table_path(data_dir, "events")
        events_file = pq.ParquetFile(path) if path.exists() else None
    return fold_lead_updates(leads, updates), _event_batches(events_file, inbox, events_upto, batch_rows)


def _event_batches(
    events_file: pq.ParquetFile | None, inbox: Inbox, upto_id: int, batch_rows: int
) -> Iterator[pd.DataFrame]:
    columns = [c for c in EVENT_COLUMNS if c != "value"]
    if events_file is not None:
        with events_file:
            for batch in events_file.iter_batches(batch_size=batch_rows, columns=columns):
                yield batch.to_pandas().assign(**{INBOX_ID: np.nan})
    after = 0
    while after < upto_id:  # the inbox by id ranges, so a large one is never read at once
        last = min(after + batch_rows, upto_id)
        events = inbox.events(after_id=after, upto_id=last)
        if len(events):
            yield events[columns].assign(**{INBOX_ID: events["id"].astype("float64")})
        after = last


def _no_leads() -> pd.DataFrame:
    return pd.DataFrame({"lead_id": pd.Series(dtype="string"), "created_at": pd.Series(dtype="datetime64[ns, UTC]")})


def lead_events(data_dir: Path, inbox: Inbox, lead_id: str, limit: int = 50) -> pd.DataFrame:
    """A lead's most recent events, newest first: occurred_at, type, value, source (`import` or `api`)."""
    parts = []
    path = table_path(data_dir, "events")
    if path.exists():
        imported = pd.read_parquet(path, filters=[("lead_id", "==", lead_id)], columns=EVENT_COLUMNS)
        parts.append(imported.assign(source="import"))
    api = inbox.events([lead_id])
    if len(api):
        parts.append(api[EVENT_COLUMNS].assign(source="api"))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=[*EVENT_COLUMNS, "source"])
    frame = pd.concat(parts, ignore_index=True)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame.sort_values("occurred_at", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def fold_lead_updates(leads: pd.DataFrame, updates: pd.DataFrame) -> pd.DataFrame:
    """Apply lead updates (inbox `LEAD_COLUMNS`, oldest first) to a leads table, as an import would."""
    if updates.empty:
        return leads
    folded: dict[str, dict[str, Any]] = {}
    first_heard: dict[str, pd.Timestamp] = {}
    for lead_id, created_at, attributes, received_at in zip(
        updates["lead_id"], updates["created_at"], updates["attributes"], updates["received_at"], strict=True
    ):
        row = folded.setdefault(str(lead_id), {})
        first_heard.setdefault(str(lead_id), received_at.floor("s"))  # to the second, as online
        if not pd.isna(created_at):
            row["created_at"] = created_at
        row.update(attributes)
    known = leads["lead_id"].astype("string")
    index = {lead: i for i, lead in enumerate(known.tolist())}
    new_ids = [lead for lead in folded if lead not in index]
    for i, lead in enumerate(new_ids):
        index[lead] = len(leads) + i
    columns = list(leads.columns) + sorted({c for row in folded.values() for c in row} - set(leads.columns))
    out: dict[str, list[Any]] = {}
    for column in columns:
        base = leads[column].astype(object).tolist() if column in leads.columns else [None] * len(leads)
        base += [None] * len(new_ids)
        for lead, row in folded.items():
            value = row.get(column, _ABSENT)
            if value is not _ABSENT:
                base[index[lead]] = value
        out[column] = base
    out["lead_id"] = [*known.tolist(), *new_ids]
    created = out["created_at"]
    for i, lead in enumerate(new_ids):
        if created[len(leads) + i] is None:
            created[len(leads) + i] = first_heard[lead]
    frame = pd.DataFrame(out, columns=columns)
    frame["lead_id"] = frame["lead_id"].astype("string")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    for column in columns:
        if column in LEAD_KEYS:
            continue
        kind = attribute_kind(leads[column]) if column in leads.columns else attribute_kind(frame[column])
        frame[column] = coerce(frame[column], kind)
    return frame
