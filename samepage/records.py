"""The lead-record store: sales feedback (stage changes), and the latest score per lead.

SQLite in WAL mode by default, PostgreSQL by configuration (`SAMEPAGE_RECORDS_URL`), through
SQLAlchemy Core. Feedback is committed before a caller is answered and is idempotent on
`event_id`; `stage_history` merges it with the imported stages so the next training sees it.
The schema is versioned with Alembic (`samepage/migrations/`): opening a store migrates it to head.
The tables below describe the head schema for queries; the migrations are its history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from samepage.answers import Vocabulary, expand
from samepage.settings import Settings
from samepage.tables import STAGE_COLUMNS
from samepage.values import utc_timestamp

ID_CHUNK = 500  # lead ids per IN (...) query: well inside every driver's limit on bound parameters
SQLITE_PAGE_SIZE = 8192  # bytes, for a new SQLite store (see _make_engine)
UPSERT_ROWS = 100  # rows per upsert statement: 800 parameters, inside SQLite's oldest limit (999)

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
# A scoring model's feature keys and labels, once per content (`samepage.answers`): compact payloads name one by id.
# Made by migration 0004; kept out of `_metadata`, which describes what stores made before migrations hold.
vocabularies_table = sa.Table(
    "answer_vocabularies",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)
_SCORE_COLUMNS = [c.name for c in scores_table.columns]
_AT = _SCORE_COLUMNS.index("scored_at")
_ALL_PREVIOUS_SCORES = f"SELECT lead_id, score, scored_at FROM {scores_table.name}"  # on the driver's cursor
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
        dialect = self.engine.dialect
        # Built once: the writer saves every 50 ms.
        self._upsert = _upsert_text(dialect, UPSERT_ROWS)
        # What SQLAlchemy would do to each value before the driver gets it (SQLite: a float, 0/1, the time as text).
        processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in scores_table.columns}
        self._bind_stamp = processors.pop("scored_at") or _same
        self._processors = [(_SCORE_COLUMNS.index(name), p) for name, p in processors.items() if p is not None]
        # Vocabularies known to be in the store (written or read by this process): a few per model, never dropped.
        self._vocabularies: dict[str, Vocabulary] = {}

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
    def save_scores(self, rows: list[dict[str, Any]], vocabularies: Iterable[Vocabulary] = ()) -> None:
        """Upsert the latest score per lead in one transaction (of a lead given twice, the last row
        wins); each row holds the scores_table columns, payload a dict or its JSON text (callers
        with a faster serializer pass text). `vocabularies`: those the compact payloads name
        (`samepage.answers`), stored in the same transaction unless stored already."""
        if not rows:
            return
        latest = list({r["lead_id"]: _score_values(r) for r in rows}.values())
        new = {v.id: v for v in vocabularies if v.id not in self._vocabularies}
        if self._upsert is None:
            values = [dict(zip(_SCORE_COLUMNS, v, strict=True)) for v in latest]
            with self.engine.begin() as conn:
                self._add_vocabularies(conn, new)
                conn.execute(scores_table.delete().where(scores_table.c.lead_id.in_([v[0] for v in latest])))
                conn.execute(scores_table.insert(), values)
            self._vocabularies.update(new)  # committed
            return
        # The statement's text and each value through the bind processor SQLAlchemy would apply,
        # straight to the driver: SQLAlchemy's per-row parameter handling cost as much as SQLite's
        # insert, and PostgreSQL took a round trip per row. Deduplicated above because one
        # multi-row upsert may not touch a row twice there.
        stamps: dict[datetime, Any] = {}  # scored_at in UTC -> as bound: a chunk of `score --all` shares one
        params = [self._bound(v, stamps) for v in latest]
        full = len(params) - len(params) % UPSERT_ROWS
        with self.engine.begin() as conn:
            self._add_vocabularies(conn, new)
            if full:
                batches = [_flat(params[i : i + UPSERT_ROWS]) for i in range(0, full, UPSERT_ROWS)]
                conn.exec_driver_sql(self._upsert, batches)
            if full < len(params):
                rest = _upsert_text(self.engine.dialect, len(params) - full)
                assert rest is not None, "the same dialect as self._upsert"
                conn.exec_driver_sql(rest, _flat(params[full:]))
        self._vocabularies.update(new)  # committed

    def _add_vocabularies(self, conn: sa.Connection, new: dict[str, Vocabulary]) -> None:
        """Insert each vocabulary unless a row of its id is there (another process may have stored it)."""
        if not new:
            return
        rows = [{"id": v.id, "features": v.text(), "recorded_at": datetime.now(UTC)} for v in new.values()]
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            conn.execute(insert(vocabularies_table).on_conflict_do_nothing(index_elements=["id"]), rows)
            return
        there = set(conn.execute(sa.select(vocabularies_table.c.id).where(vocabularies_table.c.id.in_(list(new)))).scalars())
        if missing := [r for r in rows if r["id"] not in there]:
            conn.execute(vocabularies_table.insert(), missing)

    def vocabulary(self, vocabulary_id: str) -> Vocabulary:
        """A stored vocabulary by id (cached); KeyError when the store has none of that id."""
        known = self._vocabularies.get(vocabulary_id)
        if known is not None:
            return known
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(vocabularies_table.c.features).where(vocabularies_table.c.id == vocabulary_id)).scalar()
        if text is None:
            raise KeyError(f"the record store has no answer vocabulary {vocabulary_id!r}")
        vocab = Vocabulary.from_text(text)
        if vocab.id != vocabulary_id:
            raise ValueError(f"answer vocabulary {vocabulary_id!r}: its stored content hashes to {vocab.id!r}")
        self._vocabularies[vocabulary_id] = vocab
        return vocab

    def _bound(self, values: tuple[Any, ...], stamps: dict[datetime, Any]) -> tuple[Any, ...]:
        """scores_table values as the driver gets them from SQLAlchemy (`stamps`: the times bound so far)."""
        out = list(values)
        at = out[_AT]
        if at not in stamps:
            stamps[at] = self._bind_stamp(at)
        out[_AT] = stamps[at]
        for i, process in self._processors:
            out[i] = process(out[i])
        return tuple(out)

    def latest_score(self, lead_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scores_table).where(scores_table.c.lead_id == lead_id)).mappings().first()
        if row is None:
            return None
        payload = json.loads(row["payload"])
        exp = payload.get("explanation") if isinstance(payload, dict) else None
        if isinstance(exp, dict) and "vocabulary" in exp:  # compact: the ScoreOut answer as it was given
            payload = expand(payload, {exp["vocabulary"]: self.vocabulary(exp["vocabulary"])})
        return {**row, "payload": payload, "scored_at": _utc(row["scored_at"])}

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
        # The driver's own cursor: 1M rows here (SQLite) took 4.4 s through SQLAlchemy's rows and result
        # processors, 2.5 s this way; `_utc` converts each distinct time once.
        with self.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(_ALL_PREVIOUS_SCORES)
                return {lead_id: (float(score), _utc(at)) for lead_id, score, at in cursor}
            finally:
                cursor.close()

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
            # Takes effect only on a new file (before WAL and the first table): a stored answer is ~2.1 KB,
            # one to a 4 KB page; 8 KB pages hold three, and saving 200,000 took 2.6-3.0 s, not 4.1-4.5 s.
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            # WAL lets readers run beside the writer; FULL sync makes a commit survive power loss.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _upsert_text(dialect: sa.Dialect, rows: int) -> str | None:
    """`INSERT ... VALUES (...) x rows ON CONFLICT (lead_id) DO UPDATE` as SQLAlchemy's `on_conflict_do_update`
    writes it, with the driver's positional markers; None where the database (SQLite and PostgreSQL have it)
    or the driver's parameter style does not fit (scores are then deleted and inserted)."""
    markers = {"qmark": "?", "format": "%s", "pyformat": "%s"}
    if dialect.name not in ("sqlite", "postgresql") or dialect.paramstyle not in markers:
        return None
    quote = dialect.identifier_preparer.quote
    names = [quote(c) for c in _SCORE_COLUMNS]
    row = f"({', '.join([markers[dialect.paramstyle]] * len(names))})"
    replaced = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    return (
        f"INSERT INTO {quote(scores_table.name)} ({', '.join(names)}) VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({names[0]}) DO UPDATE SET {replaced}"
    )


def _score_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A save_scores row as scores_table values, in column order: payload as JSON text, scored_at in UTC."""
    payload = row["payload"]
    return (
        row["lead_id"],
        row["score"],
        row["mql_passed"],
        row["model_name"],
        row["model_version"],
        row["definitions_version"],
        _utc(row["scored_at"]),
        payload if isinstance(payload, str) else json.dumps(payload, default=str),
    )


def _same(value: Any) -> Any:
    return value


def _flat(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(chain.from_iterable(rows))


def _utc(value: datetime | pd.Timestamp | str) -> datetime:
    """`utc_timestamp` as a datetime: a naive value is UTC, an aware one is converted. Without pandas for
    a datetime (most of the time of reading every lead's score went there), once per text (a chunk of
    `score --all` shares one `scored_at`)."""
    if type(value) is datetime and not value.fold:  # pandas sets fold to 0: a folded time goes its way
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is UTC:
            return value
        if value.utcoffset() is not None:
            return value.astimezone(UTC)
    if isinstance(value, str):
        return _utc_text(value)
    return utc_timestamp(value).to_pydatetime()


@lru_cache(maxsize=256)
def _utc_text(value: str) -> datetime:
    return utc_timestamp(value).to_pydatetime()
