"""A throw-away schema on the machine's PostgreSQL for record-store tests (fails under CI when unreachable)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_schema(in_ci: bool) -> Iterator[str]:
    """Yield a SQLAlchemy URL whose search_path is a new, empty schema; drop it afterwards."""
    schema = f"sp_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if in_ci:
            pytest.fail(f"PostgreSQL is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    try:
        yield f"{SERVER_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
