"""Latest scores in the record store: what `save_scores` stores and the reads give back are what
SQLAlchemy Core's per-row upsert and pandas' UTC conversion (the implementation before the driver-level
executemany) give, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from samepage.records import UPSERT_ROWS, RecordStore, _utc, scores_table
from samepage.settings import Settings
from samepage.values import utc_timestamp
from tests.conftest import IN_CI
from tests.utils.postgres import fresh_schema

PARIS = ZoneInfo("Europe/Paris")
# Every form a scored_at comes in: aware (UTC, fixed offset, a zone, both sides of a DST fold), naive
# (taken as UTC), the scorer's ISO text, pandas Timestamps.
STAMPS: list[Any] = [
    datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 11, 1, 9, 30, 15, 123456),
    datetime(2026, 11, 1, 4, 30, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 7, 14, 12, 0, tzinfo=PARIS),
    datetime(2026, 10, 25, 2, 30, tzinfo=PARIS),
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
    datetime(2026, 11, 1, 9, 30, tzinfo=ZoneInfo("UTC")),
    datetime(2026, 11, 1, 9, 30, fold=1),
    datetime(2026, 11, 1, 9, 30, fold=1, tzinfo=UTC),
    "2026-12-06T08:39:25.050854Z",
    "2026-12-06T08:39:25+02:00",
    "2026-12-06 08:39:25",
    pd.Timestamp("2026-05-01T10:00:00", tz="America/New_York"),
    pd.Timestamp("2026-05-01T10:00:00.000001"),
]


def make_score(lead_id: str = "L-1", **overrides: Any) -> dict[str, Any]:
    """A save_scores row as `serving.writer.score_row` makes it (payload as JSON text)."""
    row = {
        "lead_id": lead_id,
        "score": 0.25,
        "mql_passed": False,
        "model_name": "sql_likelihood",
        "model_version": "3",
        "definitions_version": "1.1.0+abc",
        "scored_at": "2026-12-06T08:39:25.050854Z",
        "payload": json.dumps({"lead_id": lead_id, "score": 0.25}),
    }
    row.update(overrides)
    return row


def varied_scores(n: int, tag: str = "") -> list[dict[str, Any]]:
    """n rows cycling through every timestamp form, dict and text payloads, float and int scores, bool and numpy flags."""
    rows = []
    for i in range(n):
        payload: Any = {"i": i, "at": datetime(2026, 1, 1, tzinfo=UTC), "tag": tag} if i % 2 else json.dumps({"i": i})
        score: Any = [i / (n + 1), 1, 0.125, 0.1 + 0.2][i % 4]  # numpy floats: psycopg2 never took them
        flag: Any = [True, False, np.True_][i % 3]
        rows.append(make_score(f"L-{i:04d}", score=score, mql_passed=flag, scored_at=STAMPS[i % len(STAMPS)], payload=payload))
    return rows


def reference_save(store: RecordStore, rows: list[dict[str, Any]]) -> None:
    """save_scores as it was: SQLAlchemy Core's upsert, executemany of dicts, pandas' UTC per row."""
    values = [
        {
            **r,
            "payload": r["payload"] if isinstance(r["payload"], str) else json.dumps(r["payload"], default=str),
            "scored_at": utc_timestamp(r["scored_at"]).to_pydatetime(),
        }
        for r in rows
    ]
    insert: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[store.engine.dialect.name](scores_table)
    replaced = {c.name: insert.excluded[c.name] for c in scores_table.columns if c.name != "lead_id"}
    with store.engine.begin() as conn:
        conn.execute(insert.on_conflict_do_update(index_elements=[scores_table.c.lead_id], set_=replaced), values)


def stored(store: RecordStore) -> list[tuple[Any, ...]]:
    """The table as the driver reads it, with SQLite's storage class of each value (REAL, INTEGER, TEXT)."""
    names = ", ".join(c.name for c in scores_table.columns)
    types = ", ".join(f"typeof({c.name})" for c in scores_table.columns) if store.engine.dialect.name == "sqlite" else "1"
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {names}, {types} FROM latest_scores ORDER BY lead_id")]


def reads(store: RecordStore, lead_ids: list[str]) -> dict[str, Any]:
    """Everything the store gives back about scores, with the exact type of every time."""
    latest = {lid: store.latest_score(lid) for lid in lead_ids}
    previous = store.previous_scores(lead_ids)
    every = store.previous_scores_all()
    frame = store.latest_scores().sort_values("lead_id").reset_index(drop=True)
    times = [v["scored_at"] for v in latest.values() if v] + [at for _, at in [*previous.values(), *every.values()]]
    return {
        "latest": latest,
        "previous": previous,
        "all": every,
        "frame": frame,
        "time types": {(type(t), t.tzinfo) for t in times},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def stores(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[RecordStore, RecordStore]]:
    """Two empty stores of one kind: one written by save_scores, one by `reference_save`."""
    if request.param == "sqlite":
        pair = (RecordStore(f"sqlite:///{settings.home_dir}/new.db"), RecordStore(f"sqlite:///{settings.home_dir}/old.db"))
        yield pair
        for s in pair:
            s.close()
        return
    with fresh_schema(IN_CI) as first, fresh_schema(IN_CI) as second:
        pair = (RecordStore(first), RecordStore(second))
        yield pair
        for s in pair:
            s.close()


@pytest.mark.parametrize("portable", [False, True], ids=["upsert", "delete-insert"])
def test_saved_scores_read_back_as_before(stores: tuple[RecordStore, RecordStore], portable: bool) -> None:
    """Saved, replaced (a batch of new and known leads, one lead twice: the last row wins) and read back:
    the same stored values, of the same types, and the same reads, as the implementation before; also
    by the delete-and-insert kept for a database without ON CONFLICT."""
    new, old = stores
    if portable:
        new._upsert = None
    first = varied_scores(2 * UPSERT_ROWS + 7)  # whole multi-row statements and a remainder
    again = varied_scores(UPSERT_ROWS + 3, tag="again")[::-1]
    again = [{**r, "score": 0.9, "mql_passed": True, "scored_at": STAMPS[(i + 3) % len(STAMPS)]} for i, r in enumerate(again)]
    again += [make_score("L-0001", score=0.5, scored_at="2027-01-01T00:00:00Z"), make_score("L-new")]
    for batch in (first, again, [make_score("L-0002", payload={"only": "dict"}, scored_at=datetime(2027, 2, 1))]):
        new.save_scores(batch)
        reference_save(old, batch)
    assert stored(new) == stored(old)
    ids = [r["lead_id"] for r in first] + ["L-new", "never-scored"]
    got, expected = reads(new, ids), reads(old, ids)
    pd.testing.assert_frame_equal(got.pop("frame"), expected.pop("frame"))
    assert got == expected
    assert got["time types"] == {(datetime, UTC)}
    assert got["all"]["L-0001"] == (0.5, datetime(2027, 1, 1, tzinfo=UTC))
    assert got["latest"]["L-0002"]["payload"] == {"only": "dict"}
    assert got["latest"]["L-0003"]["payload"] == {"i": 3, "at": "2026-01-01 00:00:00+00:00", "tag": "again"}
    assert len(got["all"]) == len(first) + 1


def test_reads_convert_times_as_pandas_did(stores: tuple[RecordStore, RecordStore]) -> None:
    """previous_scores_all, previous_scores and latest_score against pandas' conversion of the raw column."""
    new, _ = stores
    new.save_scores(varied_scores(len(STAMPS) * 2))
    with new.engine.connect() as conn:
        raw = {r.lead_id: (r.score, r.scored_at) for r in conn.execute(sa.select(scores_table))}
    expected = {lid: (float(s), utc_timestamp(at).to_pydatetime()) for lid, (s, at) in raw.items()}
    assert new.previous_scores_all() == expected
    assert new.previous_scores(list(raw)) == expected
    assert {lid: (v["score"], v["scored_at"]) for lid in raw if (v := new.latest_score(lid))} == expected


def test_a_failing_batch_leaves_the_scores_as_they_were(stores: tuple[RecordStore, RecordStore]) -> None:
    """One transaction per call: a row the database refuses after whole statements went through writes nothing."""
    new, _ = stores
    new.save_scores([make_score("L-0000", score=0.1)])
    before = stored(new)
    rows = varied_scores(2 * UPSERT_ROWS + 1)
    rows[-1]["model_name"] = None  # NOT NULL, in the last statement
    with pytest.raises(sa.exc.IntegrityError):
        new.save_scores(rows)
    assert stored(new) == before


def test_utc_is_pandas_utc_timestamp() -> None:
    """The record store's conversion of one time to UTC, against `utc_timestamp` (the value and its tzinfo)."""
    for value in STAMPS:
        got, expected = _utc(value), utc_timestamp(value).to_pydatetime()
        assert (got, type(got), got.tzinfo, got.fold) == (expected, type(expected), expected.tzinfo, expected.fold), value
