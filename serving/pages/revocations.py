"""Signed-out page sessions, kept in the lead-record store so that every worker refuses them.

A row lives until the session would have expired anyway; each sign-out prunes the rows past that.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
revoked_sessions = sa.Table(  # made by migration 0002
    "revoked_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


def revoke(engine: Engine, session_id: str, expires_at: datetime, now: datetime) -> None:
    """Refuse this session id from now on (idempotent: signing out twice is one row)."""
    with engine.begin() as conn:
        conn.execute(revoked_sessions.delete().where(revoked_sessions.c.expires_at < now))
    try:
        with engine.begin() as conn:
            conn.execute(revoked_sessions.insert().values(session_id=session_id, expires_at=expires_at))
    except sa.exc.IntegrityError:  # already signed out (twice, or from two tabs at once)
        pass


def is_revoked(engine: Engine, session_id: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(sa.select(revoked_sessions.c.session_id).where(revoked_sessions.c.session_id == session_id))
        return row.first() is not None
