"""The first schema: sales feedback and the latest score per lead.

Stores made before migrations existed already hold these tables (created by SQLAlchemy's
`create_all`); they are left as they are and only stamped.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("event_id", sa.String(200), unique=True, nullable=True),
            sa.Column("lead_id", sa.String(200), nullable=False, index=True),
            sa.Column("stage", sa.String(64), nullable=False),
            sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reason", sa.String(200), nullable=True),
            sa.Column("actor", sa.String(200), nullable=True),
            sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "latest_scores" not in existing:
        op.create_table(
            "latest_scores",
            sa.Column("lead_id", sa.String(200), primary_key=True),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("mql_passed", sa.Boolean, nullable=False),
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.String(50), nullable=False),
            sa.Column("definitions_version", sa.String(100), nullable=False),
            sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("latest_scores")
    op.drop_table("feedback")
