"""Alembic migrations of the lead-record store's schema; `RecordStore` runs them up to head on open."""
