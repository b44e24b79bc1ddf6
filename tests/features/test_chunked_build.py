"""The streamed build (events on disk by chunks of leads, online views written in batches) gives
exactly what the in-memory path and Feast's own `materialize` give, on demo data with API events."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import streamed as streamed_build
from features.activity import ACTIVITY_SOURCE, activity_chunk, activity_rows, activity_table
from features.feast_repo import ACTIVITY_VIEW, ATTRIBUTES_VIEW, file_offline_store
from features.partition import partitioned
from features.store import OnlineFeatures, build_features
from features.transform import ATTRIBUTES_SOURCE, ENGAGEMENT_SOURCE, write_sources
from samepage.data.live import workspace_parts, workspace_tables
from samepage.definitions import Definitions
from samepage.demo import generate_demo
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_events, empty_stages, write_tables
from tests.conftest import DEFINITIONS_FILE
from tests.utils.builders import make_inbox_event

NOW = pd.Timestamp("2026-12-01T00:00:00Z")


@pytest.fixture
def workspace(tmp_path: Path, definitions: Definitions) -> tuple[Settings, Inbox]:
    """300 demo leads, plus API events: for a demo lead (within and beyond the window) and a new lead."""
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    tables = generate_demo(definitions, n_leads=300, seed=5, end=NOW)
    write_tables(settings.data_dir, tables)
    inbox = Inbox.of(RecordStore.from_settings(settings))
    lead = str(tables.leads["lead_id"].iloc[7])
    inbox.add_events(
        [
            make_inbox_event(event_id="a", lead_id=lead, type="demo_request", occurred_at=NOW - pd.Timedelta("2.5D")),
            make_inbox_event(event_id="b", lead_id=lead, type="page_view", occurred_at=NOW - pd.Timedelta(days=300)),
            make_inbox_event(event_id="c", lead_id="API-1", type="email_click", occurred_at=NOW - pd.Timedelta("1h")),
        ]
    )
    return settings, inbox


def _read(path: Path) -> pa.Table:
    return pq.read_table(path)


@pytest.mark.parametrize(("leads_per_chunk", "batch_rows"), [(37, 997), (1_000, 50_000)])
def test_streamed_sources_equal_the_in_memory_ones(
    workspace: tuple[Settings, Inbox], definitions: Definitions, tmp_path: Path, leads_per_chunk: int, batch_rows: int
) -> None:
    settings, inbox = workspace
    tables = workspace_tables(settings.data_dir, inbox)
    whole = tmp_path / "whole"
    activity = activity_table(activity_rows(tables.events, definitions, NOW))
    write_sources(tables, definitions, whole, extra={ACTIVITY_SOURCE: activity})

    streamed = tmp_path / "streamed"
    leads, batches = workspace_parts(settings.data_dir, inbox, batch_rows=batch_rows)
    with partitioned(batches, leads_per_chunk, under=tmp_path) as events:
        assert len(events) == -(-events.n_leads // leads_per_chunk)
        assert events.n_events == len(tables.events)
        per_chunk = {ACTIVITY_SOURCE: partial(activity_chunk, events=events, defs=definitions, now=NOW)}
        written = write_sources(
            CanonicalTables(leads, empty_events(), empty_stages()), definitions, streamed, events=events, per_chunk=per_chunk
        )
    assert written.n_attribute_rows == len(tables.leads) == 300  # API-1 has events, no lead row
    for name in (ATTRIBUTES_SOURCE, ENGAGEMENT_SOURCE):
        assert _read(streamed / f"{name}.parquet").equals(_read(whole / f"{name}.parquet")), name
    # Activity rows come in lead id order within each chunk: the same rows, ordered per chunk.
    got, expected = _read(streamed / f"{ACTIVITY_SOURCE}.parquet"), _read(whole / f"{ACTIVITY_SOURCE}.parquet")
    assert got.sort_by("lead_id").equals(expected.sort_by("lead_id"))
    assert got.num_rows == expected.num_rows == len(set(tables.events["lead_id"]))
    held = expected.to_pandas().set_index("lead_id")["inbox_event_ids"]
    assert sum(len(ids) for ids in held) == 2  # the 300-day-old API event is only in the earlier time


def _online(settings: Settings, defs: Definitions, ids: list[str]) -> dict[str, object]:
    return OnlineFeatures(settings, defs).raw(ids, NOW)


def test_online_rows_equal_feasts_own_materialize(workspace: tuple[Settings, Inbox], definitions: Definitions) -> None:
    settings, inbox = workspace
    build_features(settings, definitions, progress=False, until=NOW, leads_per_chunk=37)
    ids = [*workspace_tables(settings.data_dir, inbox).leads["lead_id"].astype(str), "API-1", "nobody"]
    streamed = _online(settings, definitions, ids)
    # Feast's materialize of the same sources over them (SQLite upserts): any row written
    # differently, or missing, would now differ.
    start = pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime()
    views = [ATTRIBUTES_VIEW, ACTIVITY_VIEW]
    # Through Feast's file offline store: its DuckDB store (the repo's) reads the views' timestamp
    # columns back as text in materialize, which Feast 0.67 then fails to convert.
    file_offline_store(settings).materialize(start_date=start, end_date=NOW.to_pydatetime(), feature_views=views)
    materialized = _online(settings, definitions, ids)
    assert streamed.keys() == materialized.keys()
    for key, values in streamed.items():
        pd.testing.assert_series_equal(pd.Series(list(values)), pd.Series(list(materialized[key])), obj=key)


def test_rows_after_the_build_time_stay_out_of_the_online_store(
    workspace: tuple[Settings, Inbox], definitions: Definitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, inbox = workspace
    leads = workspace_tables(settings.data_dir, inbox).leads
    until = leads["created_at"].sort_values().iloc[150]
    monkeypatch.setattr(streamed_build, "ONLINE_BATCH_ROWS", 16)
    build_features(settings, definitions, progress=False, until=until, leads_per_chunk=50)
    known = OnlineFeatures(settings, definitions).get(leads["lead_id"].astype(str).tolist(), now=NOW)["known"]
    np.testing.assert_array_equal(known.to_numpy(), (leads["created_at"] <= until).to_numpy())
