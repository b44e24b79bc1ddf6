"""One module per schema version, oldest first (Alembic reads `revision` and `down_revision`)."""
