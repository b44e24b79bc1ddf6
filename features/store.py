"""The feature store's three uses: build it, read point-in-time training sets, serve online.

- `build_features`: canonical tables → Feast sources (events streamed by chunks of leads) → `apply`
  → the online views written in batches (`features.streamed`; on SQLite by columns, `features.online_write`)
  (`samepage features`).
- `training_frame`: (lead_id, as_of) rows → features exactly as known then, via
  `get_historical_features`, keeping every requested row.
- `OnlineFeatures`: the same feature service through `get_online_features`, with request overrides.
Both read paths finish features with `features.derive.derive`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from features.activity import (
    EARLIER,
    SECONDS,
    TYPES,
    counters,
    engagement_at,
)
from features.derive import FeatureColumns, derive, known_rows  # FeatureColumns: importable from here too
from features.feast_repo import (
    ACTIVITY_VIEW,
    ATTRIBUTES_VIEW,
    DEFAULT_SERVICE,
    ONLINE_VIEWS,
    apply_objects,
    attribute_kinds,
    feast_objects,
    open_store,
)
from features.freshness import tables_signature, write_manifest
from features.live import LiveFeatures
from features.online_read import SqliteColumns, proto_column
from features.streamed import materialize_view, write_workspace_sources
from features.transform import CHUNK_LEADS, LEAD_ID, TIMESTAMP, has_engagement
from samepage.data.live import workspace_parts
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.progress import step
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.values import utc_timestamp

_ROW = "samepage_row_"


@dataclass
class FeatureBuildSummary:
    """What `build_features` did, for the CLI to print."""

    n_leads: int
    n_events: int
    n_attribute_rows: int
    n_engagement_rows: int
    feature_views: list[str]
    feature_service: str
    materialized_until: datetime
    repo_dir: Path
    online_store: str = "sqlite"
    seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        until = pd.Timestamp(self.materialized_until).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"{self.n_leads:,} leads and {self.n_events:,} events -> {self.n_attribute_rows:,} attribute rows"
            f" and {self.n_engagement_rows:,} engagement rows; views {', '.join(self.feature_views)};"
            f" service {self.feature_service}; {self.online_store} online store up to {until}"
            f" ({sum(self.seconds.values()):.1f} s; repo {self.repo_dir})"
        )


def build_features(
    settings: Settings,
    defs: Definitions,
    progress: bool = True,
    until: datetime | None = None,
    console: Console | None = None,
    leads_per_chunk: int = CHUNK_LEADS,
) -> FeatureBuildSummary:
    """Read the workspace's canonical tables, write the Feast sources, apply, materialize.

    Materializes every row up to `until` (default: now, UTC) into the online store. The events
    are streamed by chunks of `leads_per_chunk` leads, so memory stays bounded at any scale.
    """
    records = RecordStore.from_settings(settings)
    try:
        inbox = Inbox.of(records)
        started = datetime.now(UTC)
        signature = tables_signature(settings.data_dir)  # before reading: a concurrent import leaves it stale
        snapshot = inbox.watermarks()
        leads, batches = workspace_parts(settings.data_dir, inbox, snapshot)
        end = utc_timestamp(until or started)
        timings: dict[str, float] = {}
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            shown = bar if progress else None
            with step(shown, f"Transforming {len(leads):,} leads and their events", timings) as advance:
                written, n_events = write_workspace_sources(settings, defs, leads, batches, end, advance, leads_per_chunk)
                del leads
            with step(shown, "Applying feature definitions (feast apply)", timings):
                store = open_store(settings)
                entity, views, service = feast_objects(
                    settings, defs, written.attribute_kinds, with_engagement=written.with_engagement
                )
                apply_objects(store, entity, views, service)
            with step(shown, f"Materializing to the {settings.online_store} online store", timings):
                start = written.first_timestamp
                if settings.online_store == "redis":
                    _clear_redis(store)
                online = [v for v in views if v in ONLINE_VIEWS]
                live = LiveFeatures(settings, defs, inbox)
                # Ingestion waits while the rows it would update are replaced, then catches up on
                # what arrived after the snapshot: no event is lost between the two.
                with live.writing():
                    if start is not None and start <= end:
                        for name in online:
                            materialize_view(store, settings, name, start, end)
                    live.catch_up(since=started, now=end)
        write_manifest(settings, started, snapshot, signature)
    finally:
        records.close()
    return FeatureBuildSummary(
        n_leads=written.n_attribute_rows,
        n_events=n_events,
        n_attribute_rows=written.n_attribute_rows,
        n_engagement_rows=written.n_engagement_rows,
        feature_views=list(views),
        feature_service=service.name,
        materialized_until=end.to_pydatetime(),
        repo_dir=settings.feature_repo_dir,
        online_store=settings.online_store,
        seconds=timings,
    )


def _clear_redis(store: FeatureStore) -> None:
    """Drop the project's lead rows from Redis before a full rebuild.

    Feast's Redis store keeps a stored row unless the new one has a LATER timestamp, so a lead
    whose attributes changed (same created_at) or who got an older event would stay stale.
    """
    from feast.infra.online_stores.redis import RedisOnlineStore

    RedisOnlineStore().delete_entity_values(store.config, [LEAD_ID])


# -- offline: point-in-time training frames ---------------------------------------------------
def describe_features(defs: Definitions) -> pd.DataFrame:
    """One row per model feature: key, label (plain words), kind, group, type."""
    return pd.DataFrame(
        [
            {"key": f.key, "label": f.label, "kind": f.kind, "group": f.group, "type": f.type or "number"}
            for f in defs.features
        ]
    )


def labelled(frame: pd.DataFrame, defs: Definitions) -> pd.DataFrame:
    """The same frame with two-level columns (feature key, plain-words label) for reading."""
    labels = defs.feature_labels
    out = frame.copy()
    out.columns = pd.MultiIndex.from_tuples([(c, labels.get(c, "")) for c in frame.columns])
    return out


def _entity_frame(entity_df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (LEAD_ID, "as_of") if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity_df: missing columns {missing} (needs lead_id and as_of)")
    ids = entity_df[LEAD_ID]
    if ids.isna().any():
        raise ValueError(f"entity_df: lead_id is missing in row {int(np.flatnonzero(ids.isna().to_numpy())[0]) + 1}")
    try:
        as_of = pd.to_datetime(entity_df["as_of"], utc=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"entity_df: as_of is not a time ({exc})") from None
    if as_of.isna().any():
        raise ValueError(f"entity_df: as_of is missing in row {int(np.flatnonzero(as_of.isna().to_numpy())[0]) + 1}")
    return pd.DataFrame(
        {
            LEAD_ID: ids.astype("string").astype(object).reset_index(drop=True),
            TIMESTAMP: as_of.dt.as_unit("ns").reset_index(drop=True),
        }
    )


def _column_values(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return series.to_numpy()


def training_frame(
    settings: Settings,
    defs: Definitions,
    entity_df: pd.DataFrame,
    feature_service: str | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """Features of each (lead_id, as_of) row exactly as known at as_of — the data scientist's entry point.

    `entity_df` needs `lead_id` and `as_of` (naive times are taken as UTC); a lead may appear at
    several as-of times (training's snapshots), each row read as of its own time.
    Returns the same rows in the same order: `lead_id`, `as_of` (UTC), then `defs.feature_keys`
    (categories as str/None, everything else float, missing as NaN). Nothing after `as_of` is
    used. Rows Feast drops (no feature row yet) come back with missing values instead.
    `frame.attrs["labels"]` maps each feature key to its plain-words label and
    `frame.attrs["feature_service"]` names the service read; `labelled(frame, defs)` shows the
    labels as a second column level and `describe_features(defs)` lists them. `store`: the Feast store
    to read (default: the repo's; bench/training_frame.py passes `file_offline_store`'s).
    """
    entities = _entity_frame(entity_df)
    n = len(entities)
    service_name = feature_service or DEFAULT_SERVICE
    raw: dict[str, np.ndarray] = {}
    if n:
        store = store or open_store(settings)
        service = _service(store, service_name, settings)
        # Feast keeps one answer per (lead, time): ask for each pair once, then spread back.
        codes, pairs = pd.factorize(pd.MultiIndex.from_arrays([entities[LEAD_ID], entities[TIMESTAMP]]))
        unique = pd.DataFrame({LEAD_ID: pairs.get_level_values(0), TIMESTAMP: pairs.get_level_values(1)})
        unique[_ROW] = np.arange(len(unique))
        # One retrieval per view: the file store drops an entity row when a view has rows for the
        # lead but none at or before as_of, which would also lose the other view's values.
        for projection in service.feature_view_projections:
            if projection.name == ACTIVITY_VIEW:  # the online form of the engagement rows
                continue
            refs = [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
            got = store.get_historical_features(entity_df=unique, features=refs).to_df()
            got = got.drop_duplicates(_ROW).set_index(_ROW).reindex(np.arange(len(unique)))
            for f in projection.features:
                raw[f.name] = _column_values(got[f.name])[codes]
    values = derive(raw, _column_values(entities[TIMESTAMP]), defs)
    frame = pd.DataFrame({LEAD_ID: entities[LEAD_ID].to_numpy(), "as_of": entities[TIMESTAMP]})
    for key in defs.feature_keys:
        frame[key] = values[key]
    frame.index = entity_df.index
    frame.attrs["labels"] = defs.feature_labels
    frame.attrs["feature_service"] = service_name
    frame.attrs["definitions_version"] = defs.version_string
    return frame


def _service(store: FeatureStore, name: str, settings: Settings) -> Any:
    try:
        return store.get_feature_service(name)
    except Exception as exc:  # Feast raises its own FeatureServiceNotFoundException
        raise RuntimeError(
            f"feature service {name!r} is not in {settings.feature_repo_dir}: run `samepage features` first ({exc})"
        ) from None


# -- online: serving ----------------------------------------------------------------------------
class OnlineFeatures:
    """Online feature vectors for serving; create once and keep (it holds the Feast store).

    `get` reads the service's attribute fields and the lead's recent activity with one
    `get_online_features` call, counts the engagement windows as of `now` (so counts age
    without any rewrite, and include what `features.live` pushed a moment ago), applies the
    caller's overrides (attribute names like `industry` or feature keys; coerced to the
    feature's type, ValueError naming the field otherwise) and derives the features as of
    `now` with the same code as `training_frame`.
    """

    def __init__(self, settings: Settings, defs: Definitions, feature_service: str | None = None) -> None:
        self.defs = defs
        self.settings = settings
        self.feature_service = feature_service or DEFAULT_SERVICE
        self._store = open_store(settings)
        self._service = _service(self._store, self.feature_service, settings)
        self.attribute_kinds = attribute_kinds(self._store)
        self._attribute_names = list(self.attribute_kinds)
        self._attribute_refs = [f"{ATTRIBUTES_VIEW}:{name}" for name in self._attribute_names]
        self._keys = defs.feature_keys
        self._counters = counters(defs)
        # What serving reads: the service's attribute fields, and recent activity for the counts.
        self._refs = [
            f"{p.name_to_use()}:{f.name}"
            for p in self._service.feature_view_projections
            if p.name == ATTRIBUTES_VIEW
            for f in p.features
        ]
        if has_engagement(defs):
            self._refs += [f"{ACTIVITY_VIEW}:{name}" for name in (TYPES, SECONDS, EARLIER)]
        # The same fields by view, for the online store's own read (see `raw`).
        by_view: dict[str, list[str]] = {}
        for ref in self._refs:
            view_name, _, name = ref.partition(":")
            by_view.setdefault(view_name, []).append(name)
        self._views = [(self._store.get_feature_view(v), names) for v, names in by_view.items()]
        self._sqlite = SqliteColumns(self._store, LEAD_ID, self._views) if settings.online_store == "sqlite" else None

    @property
    def refs(self) -> list[str]:
        """The `view:field` references `raw` reads online."""
        return list(self._refs)

    def raw(self, lead_ids: Sequence[str], now: pd.Timestamp) -> dict[str, list[Any] | np.ndarray]:
        """The fields `derive` reads for these leads as of `now`, one column per field, in request order.

        SQLite: one query per view of the Feast store's table for only these fields
        (`features.online_read.SqliteColumns`; Feast's own `online_read` builds a proto and a datetime per
        stored field and lead). Other stores: `get_online_features` (Feast's Redis store pipelines there;
        its plain `online_read` took 2.9 s for 1,000 leads against 0.19 s).
        Columns come straight from the stored values: floats as float64 arrays (NaN where the store has nothing), timestamps as
        datetime64[s] arrays (NaT), anything else as the Python values `to_dict` gives (None where
        missing). The activity lists become the engagement fields `lead_engagement` would hold at
        `now` (`features.activity.engagement_at`). Ids may repeat and come in any order.
        """
        ids = [str(i) for i in lead_ids]
        raw = self._read_sqlite(ids) if self.settings.online_store == "sqlite" else self._read_feast(ids)
        if TYPES in raw:
            as_of = np.full(len(ids), utc_timestamp(now).value / 1e9)
            types, seconds, earlier = raw.pop(TYPES), raw.pop(SECONDS), raw.pop(EARLIER)
            raw.update(engagement_at(types, seconds, earlier, as_of, self.defs, self._counters))  # type: ignore[arg-type]
        return raw

    def columns(
        self,
        lead_ids: Sequence[str],
        overrides: Sequence[dict[str, Any] | None] | None = None,
        now: pd.Timestamp | None = None,
    ) -> FeatureColumns:
        """The derived features of these leads, one array per feature key, in request order (no DataFrame:
        serving's hot path reads these arrays straight into the encoder and the explanation)."""
        if overrides is not None and len(overrides) != len(lead_ids):
            raise ValueError(f"overrides: {len(overrides)} given for {len(lead_ids)} leads")
        when = pd.Timestamp.now(tz="UTC") if now is None else utc_timestamp(now)
        raw = self.raw(lead_ids, when) if lead_ids else {}
        known = known_rows(raw, len(lead_ids))
        as_of = np.full(len(lead_ids), when.tz_convert("UTC").tz_localize(None).to_datetime64())
        values = derive(raw, as_of, self.defs, overrides, self.attribute_kinds)
        return FeatureColumns({key: values[key] for key in self._keys}, known)

    def _read_sqlite(self, ids: list[str]) -> dict[str, list[Any] | np.ndarray]:
        assert self._sqlite is not None  # made in __init__ for the SQLite store
        return {LEAD_ID: ids, **self._sqlite.read(ids)}

    def _read_feast(self, ids: list[str]) -> dict[str, list[Any] | np.ndarray]:
        proto = self._store.get_online_features(features=self._refs, entity_rows=[{LEAD_ID: i} for i in ids]).proto
        names = proto.metadata.feature_names.val
        return {name: proto_column(vector.values) for name, vector in zip(names, proto.results, strict=True)}

    def get(
        self,
        lead_ids: list[str],
        overrides: list[dict[str, Any] | None] | None = None,
        now: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """One row per requested id, in order: `defs.feature_keys` plus `known` (the store had it)."""
        got = self.columns(lead_ids, overrides, now)
        return pd.DataFrame({**got.values, "known": got.known}, index=pd.RangeIndex(len(lead_ids)))

    def attributes(self, lead_id: str) -> dict[str, Any] | None:
        """Every stored attribute of the lead ("who the lead is"), or None for an unknown lead."""
        got = self._store.get_online_features(features=self._attribute_refs, entity_rows=[{LEAD_ID: lead_id}]).to_dict()
        if got.get("created_at", [None])[0] is None:
            return None
        return {name: got[name][0] for name in self._attribute_names}
