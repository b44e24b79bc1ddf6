"""The lead-record store: sales feedback (stage changes), and the latest score per lead.

SQLite in WAL mode by default, PostgreSQL by configuration (`SAMEPAGE_RECORDS_URL`), through
SQLAlchemy Core. Feedback is committed before a caller is answered and is idempotent on
`event_id`; `stage_history` merges it with the imported stages so the next training sees it.
The schema is versioned with Alembic (`samepage/migrations/`): opening a store migrates it to head.
The tables below describe the head schema for queries; the migrations are its history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from samepage.settings import Settings
from samepage.tables import STAGE_COLUMNS
from samepage.values import utc_timestamp

ID_CHUNK = 500  # lead ids per IN (...) query: well inside every driver's limit on bound parameters

_metadata = sa.MetaData()

feedback_table = sa.Table(
    "feedback",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(200), unique=True, nullable=True),
    sa.Column("lead_id", sa.String(200), nullable=False, index=True),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

scores_table = sa.Table(
    "latest_scores",
    _metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("mql_passed", sa.Boolean, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("definitions_version", sa.String(100), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)
# Built once (an expanding IN): the per-score trend look-up reuses SQLAlchemy's compiled form.
_PREVIOUS_SCORES = sa.select(scores_table.c.lead_id, scores_table.c.score, scores_table.c.scored_at).where(
    scores_table.c.lead_id.in_(sa.bindparam("ids", expanding=True))
)


@dataclass(frozen=True)
class Feedback:
    """One stage change recorded by sales (or marketing automation)."""

    lead_id: str
    stage: str
    occurred_at: datetime
    reason: str | None = None
    event_id: str | None = None
    actor: str | None = None


class RecordStore:
    """Feedback and latest scores; one instance per process, safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        migrate(self.engine)
        self._upsert = _upsert_scores(self.engine.dialect.name)  # built once: the writer saves every 50 ms

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordStore:
        if settings.records_url is None:
            settings.home_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.records_database_url)

    def close(self) -> None:
        self.engine.dispose()

    # -- feedback -------------------------------------------------------------------------
    def add_feedback(self, fb: Feedback) -> bool:
        """Store durably; False when `event_id` was recorded before (nothing is written then)."""
        row = {
            "event_id": fb.event_id,
            "lead_id": fb.lead_id,
            "stage": fb.stage,
            "occurred_at": _utc(fb.occurred_at),
            "reason": fb.reason,
            "actor": fb.actor,
            "recorded_at": datetime.now(UTC),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(feedback_table.insert().values(**row))
        except IntegrityError:
            if fb.event_id is None:
                raise
            return False
        return True

    def feedback(self, lead_id: str | None = None) -> pd.DataFrame:
        """Feedback rows (STAGE_COLUMNS plus event_id, actor, recorded_at), oldest first."""
        query = sa.select(feedback_table).order_by(feedback_table.c.occurred_at, feedback_table.c.id)
        if lead_id is not None:
            query = query.where(feedback_table.c.lead_id == lead_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        cols = [*STAGE_COLUMNS, "event_id", "actor", "recorded_at"]
        frame = pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols)
        for c in ("occurred_at", "recorded_at"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        for c in ("lead_id", "stage", "reason", "event_id", "actor"):
            frame[c] = frame[c].astype("string")
        return frame

    # -- scores -----------------------------------------------------------------------------
    def save_scores(self, rows: list[dict[str, Any]]) -> None:
        """Upsert the latest score per lead; each row holds the scores_table columns, payload a dict
        or its JSON text (callers with a faster serializer pass text)."""
        if not rows:
            return
        values = [
            {
                **r,
                "payload": r["payload"] if isinstance(r["payload"], str) else json.dumps(r["payload"], default=str),
                "scored_at": _utc(r["scored_at"]),
            }
            for r in rows
        ]
        upsert = self._upsert
        with self.engine.begin() as conn:
            if upsert is None:
                conn.execute(scores_table.delete().where(scores_table.c.lead_id.in_([v["lead_id"] for v in values])))
                conn.execute(scores_table.insert(), values)
            else:  # one statement: 2.6x faster than delete + insert for 20,000 rows on SQLite here
                conn.execute(upsert, values)

    def latest_score(self, lead_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scores_table).where(scores_table.c.lead_id == lead_id)).mappings().first()
        if row is None:
            return None
        return {**row, "payload": json.loads(row["payload"]), "scored_at": _utc(row["scored_at"])}

    def previous_scores(self, lead_ids: list[str]) -> dict[str, tuple[float, datetime]]:
        """(score, scored_at) of the latest score kept for each of these leads that has one (for `trend`)."""
        out: dict[str, tuple[float, datetime]] = {}
        unique = list(dict.fromkeys(lead_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(unique), ID_CHUNK):
                chunk = unique[start : start + ID_CHUNK]
                for row in conn.execute(_PREVIOUS_SCORES, {"ids": chunk}):
                    out[row.lead_id] = (float(row.score), _utc(row.scored_at))
        return out

    def previous_scores_all(self) -> dict[str, tuple[float, datetime]]:
        """`previous_scores` of every lead with one, in one read (`score --all` asks for them all)."""
        query = sa.select(scores_table.c.lead_id, scores_table.c.score, scores_table.c.scored_at)
        with self.engine.connect() as conn:
            return {row.lead_id: (float(row.score), _utc(row.scored_at)) for row in conn.execute(query)}

    def latest_scores(self) -> pd.DataFrame:
        """Every lead's latest score (no payload), for reports."""
        cols = [c.name for c in scores_table.columns if c.name != "payload"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*[scores_table.c[c] for c in cols])).mappings().all()
        frame = pd.DataFrame([dict(r) for r in rows], columns=cols)
        frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
        return frame


def stage_history(settings: Settings, stages: pd.DataFrame, store: RecordStore | None = None) -> pd.DataFrame:
    """Imported stages plus recorded feedback, in one frame with STAGE_COLUMNS, by lead and time."""
    if store is None:
        owned = RecordStore.from_settings(settings)
        try:
            fb = owned.feedback()[STAGE_COLUMNS]
        finally:
            owned.close()
    else:
        fb = store.feedback()[STAGE_COLUMNS]
    frames = [f for f in (stages[STAGE_COLUMNS], fb) if len(f)]
    if not frames:
        return stages[STAGE_COLUMNS].copy()
    merged = pd.concat(frames, ignore_index=True)
    merged["occurred_at"] = pd.to_datetime(merged["occurred_at"], utc=True)
    return merged.sort_values(["lead_id", "occurred_at"], kind="stable").reset_index(drop=True)


MIGRATIONS = Path(__file__).with_name("migrations")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to `revision` with Alembic (in one transaction where the database allows)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the store is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer; FULL sync makes a commit survive power loss.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _upsert_scores(dialect: str) -> Any:
    """`INSERT ... ON CONFLICT (lead_id) DO UPDATE` where the database has it (SQLite, PostgreSQL), else None."""
    from sqlalchemy.dialects import postgresql, sqlite

    inserts: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    if dialect not in inserts:
        return None
    statement = inserts[dialect](scores_table)
    replaced = {c.name: statement.excluded[c.name] for c in scores_table.columns if c.name != "lead_id"}
    return statement.on_conflict_do_update(index_elements=[scores_table.c.lead_id], set_=replaced)


def _utc(value: datetime | pd.Timestamp) -> datetime:
    return utc_timestamp(value).to_pydatetime()
