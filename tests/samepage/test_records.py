"""The lead-record store: durable, idempotent feedback; latest scores; merged stage history."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pandas as pd
import pytest

from samepage.records import Feedback, RecordStore, stage_history
from samepage.settings import Settings
from tests.conftest import IN_CI, make_stage
from tests.utils.postgres import fresh_schema


def make_feedback(**overrides: object) -> Feedback:
    values: dict = {"lead_id": "L-1", "stage": "sal", "occurred_at": datetime(2026, 3, 1, tzinfo=UTC)}
    values.update(overrides)
    return Feedback(**values)


def test_feedback_is_idempotent_on_event_id(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    assert store.add_feedback(make_feedback(event_id="e-1")) is True
    assert store.add_feedback(make_feedback(event_id="e-1", stage="sql")) is False
    rows = store.feedback("L-1")
    assert rows["stage"].tolist() == ["sal"]


def test_feedback_without_event_id_is_always_new(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    assert store.add_feedback(make_feedback()) and store.add_feedback(make_feedback())
    assert len(store.feedback()) == 2


def test_feedback_is_durable_for_another_process(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    store.add_feedback(make_feedback(event_id="e-9", reason=None, actor="rep@example.com"))
    code = (
        "from samepage.records import RecordStore; import sys; "
        f"s = RecordStore({settings.records_database_url!r}); "
        "print(s.feedback()['event_id'].tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "e-9" in out.stdout


def test_concurrent_feedback_loses_nothing(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)

    def worker(n: int) -> None:
        for i in range(25):
            store.add_feedback(make_feedback(lead_id=f"L-{n}", event_id=f"{n}-{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.feedback()) == 200


def test_stage_history_merges_imported_and_feedback(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    store.add_feedback(make_feedback(stage="disqualified", reason="student", occurred_at=datetime(2026, 2, 1, tzinfo=UTC)))
    imported = pd.DataFrame([make_stage(), make_stage(lead_id="L-2")])
    merged = stage_history(settings, imported, store)
    assert merged[merged["lead_id"] == "L-1"]["stage"].tolist() == ["lead", "disqualified"]
    assert merged["occurred_at"].dt.tz is not None


def test_latest_score_upserts(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    row = {
        "lead_id": "L-1", "score": 0.2, "mql_passed": False, "model_name": "sql_likelihood",
        "model_version": "1", "definitions_version": "1.0.0+abc", "scored_at": datetime.now(UTC),
        "payload": {"score": 0.2},
    }
    store.save_scores([row])
    store.save_scores([{**row, "score": 0.7, "payload": {"score": 0.7}}])
    latest = store.latest_score("L-1")
    assert latest is not None and latest["score"] == 0.7 and latest["payload"] == {"score": 0.7}
    assert len(store.latest_scores()) == 1


@pytest.mark.services
def test_postgres_record_store_round_trip() -> None:
    """Runs against the machine's PostgreSQL (in a schema of its own) when CI=true; elsewhere only if it answers."""
    with fresh_schema(IN_CI) as url:
        store = RecordStore(url)
        event_id = f"pg-{datetime.now(UTC).timestamp()}"
        assert store.add_feedback(make_feedback(lead_id="PG-1", event_id=event_id))
        assert not store.add_feedback(make_feedback(lead_id="PG-1", event_id=event_id))
        assert event_id in store.feedback("PG-1")["event_id"].tolist()
        assert_scores_are_replaced(store)
        store.close()


def assert_scores_are_replaced(store: RecordStore) -> None:
    """A lead scored again keeps one row, the newest; a batch of new and known leads is kept whole."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    row = {"lead_id": "UP-1", "score": 0.2, "mql_passed": False, "model_name": "m", "model_version": "1",
           "definitions_version": "1+abc", "scored_at": at, "payload": {"score": 0.2}}
    store.save_scores([row])
    store.save_scores([{**row, "score": 0.9, "mql_passed": True, "payload": {"score": 0.9}}, {**row, "lead_id": "UP-2"}])
    latest = store.latest_score("UP-1")
    assert latest is not None and latest["score"] == 0.9 and latest["mql_passed"] and latest["payload"] == {"score": 0.9}
    assert store.previous_scores_all()["UP-1"] == (0.9, at) and store.previous_scores_all()["UP-2"] == (0.2, at)
    kept = store.latest_scores()
    assert sorted(kept["lead_id"].tolist()).count("UP-1") == 1


def test_scores_are_replaced(settings: Settings) -> None:
    store = RecordStore.from_settings(settings)
    assert_scores_are_replaced(store)
    store.close()


def test_previous_scores_of_many_leads(settings: Settings) -> None:
    """More ids than one IN (...) query takes: every lead with a kept score, none without."""
    from samepage.records import ID_CHUNK

    store = RecordStore.from_settings(settings)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {"lead_id": f"L-{i}", "score": i / 2000, "mql_passed": False, "model_name": "m", "model_version": "1",
         "definitions_version": "1+abc", "scored_at": at, "payload": "{}"}
        for i in range(ID_CHUNK + 10)
    ]
    store.save_scores(rows)
    got = store.previous_scores([r["lead_id"] for r in rows] + ["never-scored", "L-3"])
    store.close()
    assert len(got) == len(rows) and "never-scored" not in got
    assert got["L-3"] == (3 / 2000, at) and got[f"L-{ID_CHUNK + 9}"][0] == (ID_CHUNK + 9) / 2000


def test_a_new_sqlite_store_has_large_pages_and_an_old_one_keeps_its_own(settings: Settings, tmp_path) -> None:
    import sqlite3

    from samepage.records import SQLITE_PAGE_SIZE

    def page_size(path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    store = RecordStore.from_settings(settings)
    store.add_feedback(Feedback("L-1", "sql", datetime(2026, 1, 2, tzinfo=UTC), event_id="e-1"))
    store.close()
    assert SQLITE_PAGE_SIZE == 8192 and page_size(settings.home_dir / "records.db") == SQLITE_PAGE_SIZE
    # A store made with SQLite's default pages (an earlier version) opens, migrates and keeps them.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
    before = page_size(old)
    assert before != SQLITE_PAGE_SIZE
    kept = RecordStore(f"sqlite:///{old}")
    assert kept.add_feedback(Feedback("L-1", "sql", datetime(2026, 1, 2, tzinfo=UTC), event_id="e-1"))
    assert not kept.feedback("L-1").empty
    kept.close()
    assert page_size(old) == before
