"""Answer vocabularies: a model's feature keys and labels, stored once for the compact latest scores.

`latest_scores.payload` keeps a score's explanation as arrays in the model's feature order with the
id of its vocabulary (`samepage.answers`); this table holds each vocabulary once, keyed by a hash of
its content. Payloads stored whole before this revision stay as they are and read back unchanged.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_vocabularies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("answer_vocabularies")
