"""The lead-record store's schema is migrated by Alembic, also from stores made before migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from samepage import records
from samepage.records import Feedback, RecordStore, schema_revision
from tests.conftest import IN_CI
from tests.utils.postgres import fresh_schema

HEAD = "0004"  # 0004: answer vocabularies (compact latest-score payloads)


def _feedback(lead_id: str) -> Feedback:
    return Feedback(lead_id=lead_id, stage="sal", occurred_at=datetime(2026, 11, 1, tzinfo=UTC), event_id=f"e-{lead_id}")


def test_a_new_store_is_at_the_head_revision(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    assert schema_revision(store.engine) == HEAD
    assert store.add_feedback(_feedback("L-1"))
    store.close()


def test_a_store_made_before_migrations_keeps_its_rows_and_is_stamped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    engine = sa.create_engine(url)
    records.feedback_table.metadata.create_all(engine)  # how earlier versions made the schema
    with engine.begin() as conn:
        conn.execute(
            records.feedback_table.insert().values(
                event_id="old", lead_id="L-old", stage="sal", occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )  # fmt: skip
    assert schema_revision(engine) is None
    engine.dispose()

    store = RecordStore(url)
    assert schema_revision(store.engine) == HEAD
    assert store.feedback("L-old")["event_id"].tolist() == ["old"]
    store.close()


@pytest.mark.services
def test_postgresql_store_is_migrated() -> None:
    with fresh_schema(IN_CI) as url:
        store = RecordStore(url)
        assert schema_revision(store.engine) == HEAD
        assert store.add_feedback(_feedback("L-pg")) and not store.add_feedback(_feedback("L-pg"))
        store.close()
