"""The build's two steps that grow with the data, in bounded memory: the Feast sources from the
events streamed by chunks of leads, and the online views written in batches (`features.online_write`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore

from features.activity import ACTIVITY_SOURCE, activity_chunk
from features.online_write import SqliteViewWriter
from features.partition import LeadChunk, partitioned
from features.transform import CHUNK_LEADS, TIMESTAMP, SourceSummary, has_engagement, source_path, sources_dir, write_sources
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_events, empty_stages

ONLINE_BATCH_ROWS = 50_000  # rows per online write (one transaction): bounds the memory of the row conversion


def materialize_view(store: FeatureStore, settings: Settings, view: str, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """What `store.materialize` does for one of our one-row-per-lead views, batch by batch.

    The rows with start <= event_timestamp <= end (materialize's own window) go to the online
    store `ONLINE_BATCH_ROWS` at a time, and the interval is recorded in the registry as materialize
    records it. Each batch is written as `write_to_online_store` writes it: on the SQLite store by
    `SqliteViewWriter` (the same rows, built by columns), on Redis and PostgreSQL by Feast itself.
    Not `materialize` itself: its file offline store reads the whole source into Dask, which hashes
    list columns by pickling them (20,000 leads: 13.7 of its 18.4 s) and holds every row at once.
    Materialize also keeps the latest row per lead; these sources have one (`lead_id` is unique in
    both), so there is nothing to choose.
    """
    writer = SqliteViewWriter(store, view) if settings.online_store == "sqlite" else None
    lower, upper = pa.scalar(start, type=pa.timestamp("ns", "UTC")), pa.scalar(end, type=pa.timestamp("ns", "UTC"))
    with pq.ParquetFile(source_path(settings, view)) as source:
        for batch in source.iter_batches(batch_size=ONLINE_BATCH_ROWS):
            stamps = batch.column(TIMESTAMP)
            kept = batch.filter(pc.and_(pc.greater_equal(stamps, lower), pc.less_equal(stamps, upper)))
            if kept.num_rows and writer is not None:
                writer.write(kept)
            elif kept.num_rows:
                store.write_to_online_store(view, kept.to_pandas())
    store.registry.apply_materialization(store.get_feature_view(view), store.project, start.to_pydatetime(), end.to_pydatetime())


def write_workspace_sources(
    settings: Settings,
    defs: Definitions,
    leads: pd.DataFrame,
    batches: Iterable[pd.DataFrame],
    now: pd.Timestamp,
    on_progress: Callable[[int, int], None] | None = None,
    leads_per_chunk: int = CHUNK_LEADS,
) -> tuple[SourceSummary, int]:
    """The Feast sources of `workspace_parts`' leads and event batches, and the number of events.

    The events go to disk by chunks of `leads_per_chunk` leads first (`features.partition`), then
    the engagement and activity rows are computed one chunk in memory at a time.
    """
    with partitioned(batches, leads_per_chunk, under=sources_dir(settings)) as events:
        activity: Callable[[LeadChunk], pa.Table] = partial(activity_chunk, events=events, defs=defs, now=now)
        written = write_sources(
            CanonicalTables(leads=leads, events=empty_events(), stages=empty_stages()),
            defs,
            sources_dir(settings),
            on_progress=on_progress,
            events=events,
            per_chunk={ACTIVITY_SOURCE: activity} if has_engagement(defs) else None,
        )
    return written, events.n_events
