"""A version number on each task, for ETags and conditional writes.

Existing tasks start at version 1.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases: SQLite's batch mode would rebuild the table and lose the
# expression indexes of revision 0002 (reflection does not see them).


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )


def downgrade() -> None:
    op.execute("ALTER TABLE tasks DROP COLUMN version")
