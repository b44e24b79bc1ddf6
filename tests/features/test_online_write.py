"""The SQLite online write (`features.online_write`) stores exactly the rows Feast's `write_to_online_store`
stores: the same table rows, byte for byte and in the same order, after first writes, upserts and
batches with nothing to write; and the stores answer the same afterwards."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from feast.infra.online_stores.sqlite import _table_id

from features.feast_repo import ACTIVITY_VIEW, ATTRIBUTES_VIEW, open_store
from features.online_read import SqliteColumns
from features.online_write import SqliteViewWriter
from features.store import build_features
from features.transform import LEAD_ID, TIMESTAMP, source_path
from samepage.definitions import Definitions
from samepage.demo import generate_demo
from samepage.settings import Settings
from samepage.tables import CanonicalTables, write_tables
from tests.conftest import DEFINITIONS_FILE
from tests.utils.builders import make_event, make_lead

NOW = pd.Timestamp("2026-12-01T00:00:00Z")
ODD_IDS = ["lead ü/42", "東京-7", "quote\"s and 'apostrophes'", "x" * 300, "tab\tand\nnewline"]
LONG = "ü" * 100 + "東京"  # 206 bytes: a two-byte length
LONG_ITEMS: dict[str, list[object]] = {  # list items of every length and sign protobuf encodes differently
    "string": ["", LONG, "a", *(["page_view"] * 20)],
    "int64": [0, 1, 127, 128, 16_383, 16_384, 2**40, 2**63 - 1, -1, -(2**63), *range(100)],
}
Write = Callable[[FeatureStore, str, pa.Table], None]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> tuple[Settings, Definitions]:
    """120 demo leads and a few odd ids, with a boolean and a second time attribute, built once."""
    home: Path = tmp_path_factory.mktemp("online-write") / "workspace"
    settings = Settings(home=home, definitions=DEFINITIONS_FILE, _env_file=None)
    demo = generate_demo(definitions, n_leads=120, seed=11, end=NOW)
    odd = pd.DataFrame([make_lead(lead_id=i, created_at=NOW - pd.Timedelta(days=3 + j)) for j, i in enumerate(ODD_IDS)])
    leads = pd.concat([demo.leads, odd], ignore_index=True)
    leads["is_customer"] = np.arange(len(leads)) % 2 == 0  # a boolean attribute
    leads["renewal_at"] = leads["created_at"] + pd.Timedelta("400D")  # a second time attribute
    odd_events = pd.DataFrame([make_event(lead_id=i, occurred_at=NOW - pd.Timedelta(hours=5)) for i in ODD_IDS])
    events = pd.concat([demo.events, odd_events], ignore_index=True)
    write_tables(settings.data_dir, CanonicalTables(leads, events, demo.stages))
    build_features(settings, definitions, progress=False, until=NOW)
    return settings, definitions


def _feast(store: FeatureStore, view: str, rows: pa.Table) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nanoseconds discarded, empty batches
        store.write_to_online_store(view, rows.to_pandas())


def _ours(store: FeatureStore, view: str, rows: pa.Table) -> None:
    writer = SqliteViewWriter(store, view)
    assert writer.direct
    writer.write(rows)


def _holes(table: pa.Table, every: int, offset: int) -> pa.Table:
    """Every feature column with missing values in every `every`-th row from `offset` (null; NaN in floats
    one row further), empty and long strings and lists, -0.0 and infinities where they fit."""
    n = table.num_rows
    rows = np.arange(n)
    for i, name in enumerate(table.column_names):
        if name in (LEAD_ID, TIMESTAMP):
            continue
        column = table.column(i).combine_chunks()
        kind = column.type
        if pa.types.is_float64(kind):
            numbers = column.to_numpy(zero_copy_only=False).copy()
            numbers[rows % every == (offset + 1) % every] = np.nan  # NaN, not null
            numbers[rows % every == (offset + 2) % every] = -0.0
            numbers[rows % (2 * every) == (offset + 3) % (2 * every)] = np.inf
            numbers[rows % (2 * every) == (offset + 4) % (2 * every)] = -1e-300
            column = pa.array(numbers, mask=column.is_null().to_numpy(zero_copy_only=False))
        elif pa.types.is_string(kind):
            column = pc.if_else(pa.array(rows % every == (offset + 1) % every), pa.scalar(""), column)
            column = pc.if_else(pa.array(rows % every == (offset + 2) % every), pa.scalar(LONG), column)
        elif pa.types.is_list(kind):
            odd = LONG_ITEMS[str(kind.value_type)]
            column = pc.if_else(pa.array(rows % every == (offset + 1) % every), pa.array([[]] * n, kind), column)
            column = pc.if_else(pa.array(rows % every == (offset + 2) % every), pa.array([odd] * n, kind), column)
        gone = pa.array(rows % every == offset % every)
        column = pc.if_else(gone, pa.scalar(None, column.type), column)
        table = table.set_column(i, name, column)
    return table


def _changed(table: pa.Table) -> pa.Table:
    """The same leads with other values and later times (what an upsert replaces)."""
    out = _holes(table, 4, 1)
    for i, name in enumerate(out.column_names):
        column = out.column(i)
        if pa.types.is_float64(column.type):
            out = out.set_column(i, name, pc.add(column, 0.5))
        elif pa.types.is_string(column.type) and name != LEAD_ID:
            out = out.set_column(i, name, pc.binary_join_element_wise(column, pa.scalar("-2"), ""))
        elif pa.types.is_boolean(column.type):
            out = out.set_column(i, name, pc.invert(column))
        elif pa.types.is_timestamp(column.type):
            out = out.set_column(i, name, pc.add(column, pa.scalar(pd.Timedelta("1D 3s 5us"), pa.duration("ns"))))
    return out


def _all_missing(table: pa.Table) -> pa.Table:
    for i, name in enumerate(table.column_names):
        if name not in (LEAD_ID, TIMESTAMP):
            table = table.set_column(i, name, pa.nulls(table.num_rows, table.column(i).type))
    return table


def _rows(settings: Settings, table: str) -> list[tuple[object, ...]]:
    """Every stored row as SQLite holds it (no type detection), in insertion (rowid) order."""
    conn = sqlite3.connect(settings.feature_repo_dir / "online_store.db")
    try:
        return conn.execute(
            "SELECT rowid, entity_key, feature_name, value, value_text, typeof(value_text), vector_value,"
            f' event_ts, typeof(event_ts), created_ts, typeof(created_ts) FROM "{table}" ORDER BY rowid'
        ).fetchall()
    finally:
        conn.close()


def _written(settings: Settings, view: str, write: Write, batches: list[pa.Table]) -> list[list[tuple[object, ...]]]:
    """The view's table after each batch, written from an empty table by `write`."""
    store = open_store(settings)
    table = _table_id(store.config.project, store.get_feature_view(view))
    conn = sqlite3.connect(settings.feature_repo_dir / "online_store.db")
    with conn:
        conn.execute(f'DELETE FROM "{table}"')
    conn.close()
    after = []
    for batch in batches:
        write(store, view, batch)
        after.append(_rows(settings, table))
    return after


def _source(settings: Settings, view: str) -> pa.Table:
    return pq.read_table(source_path(settings, view))


@pytest.mark.parametrize("view", [ATTRIBUTES_VIEW, ACTIVITY_VIEW])
def test_rows_equal_feasts_byte_for_byte(built: tuple[Settings, Definitions], view: str) -> None:
    """First writes with holes of every kind, an upsert of changed values, leads twice in one batch, batches
    with nothing to write."""
    settings, _ = built
    source = _source(settings, view)
    assert set(ODD_IDS) <= set(source.column(LEAD_ID).to_pylist())
    first = _holes(source, 3, 0)
    twice = pa.concat_tables([first.slice(0, 4), _changed(first).slice(0, 4)])  # a lead twice in a batch: the last wins
    batches = [first, _changed(first).slice(5, 60), twice, _all_missing(source.slice(0, 10)), source.slice(0, 0)]
    theirs = _written(settings, view, _feast, batches)
    ours = _written(settings, view, _ours, batches)
    assert len(theirs[0]) == source.num_rows * (source.num_columns - 2)
    assert theirs[1] != theirs[0]  # the upsert replaced rows
    for step, (mine, feasts) in enumerate(zip(ours, theirs, strict=True)):
        assert len(mine) == len(feasts), step
        for row, (a, b) in enumerate(zip(mine, feasts, strict=True)):
            assert a == b, (step, row)


@pytest.mark.parametrize("view", [ATTRIBUTES_VIEW, ACTIVITY_VIEW])
def test_the_stores_answer_the_same_after_both(built: tuple[Settings, Definitions], view: str) -> None:
    settings, _ = built
    source = _holes(_source(settings, view), 3, 2)
    ids = [*reversed(source.column(LEAD_ID).to_pylist()), "not stored", ODD_IDS[0]]
    answers = []
    for write in (_feast, _ours):
        _written(settings, view, write, [source])
        store = open_store(settings)
        feature_view = store.get_feature_view(view)
        names = [f.name for f in feature_view.features]
        online = store.get_online_features(
            features=[f"{view}:{name}" for name in names], entity_rows=[{LEAD_ID: i} for i in ids]
        ).to_dict()
        columns = SqliteColumns(store, LEAD_ID, [(feature_view, names)]).read(ids)
        answers.append((online, {name: list(values) for name, values in columns.items()}))
    (feast_online, feast_columns), (our_online, our_columns) = answers
    assert our_online == feast_online
    assert our_columns.keys() == feast_columns.keys()
    for name in feast_columns:
        pd.testing.assert_series_equal(pd.Series(our_columns[name]), pd.Series(feast_columns[name]), obj=name)


def test_a_type_it_does_not_build_is_written_by_feast(built: tuple[Settings, Definitions]) -> None:
    """A number column that arrives as int64 (no column-wise path here): Feast writes that batch, the same rows."""
    settings, _ = built
    source = _source(settings, ATTRIBUTES_VIEW)
    i = source.column_names.index("employees")
    batch = source.set_column(i, "employees", pc.cast(pc.fill_null(source.column(i), 0.0), pa.int64()))
    handed: list[int] = []

    def through_writer(store: FeatureStore, view: str, rows: pa.Table) -> None:
        feasts = store.write_to_online_store

        def spy(name: str, frame: pd.DataFrame) -> None:
            handed.append(len(frame))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                feasts(name, frame)

        setattr(store, "write_to_online_store", spy)  # noqa: B010
        SqliteViewWriter(store, view).write(rows)

    ours = _written(settings, ATTRIBUTES_VIEW, through_writer, [batch])
    assert handed == [batch.num_rows]
    assert ours == _written(settings, ATTRIBUTES_VIEW, _feast, [batch])
