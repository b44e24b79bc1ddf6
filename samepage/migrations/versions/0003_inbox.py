"""The inbox: leads and engagement events marketing automation sent through the API.

An append log beside sales feedback: every `PUT /v1/leads/{id}` adds a lead update, every
accepted event a row (unique on `event_id`). `pushed` marks rows the online store has taken.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_leads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
    )
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("lead_id", sa.String(200), nullable=False, index=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
    )


def downgrade() -> None:
    op.drop_table("inbox_events")
    op.drop_table("inbox_leads")
