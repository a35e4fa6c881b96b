"""Tombstones and per-user change clocks, for incremental sync.

The indexes of the list orders become partial, over live tasks only, so tombstones cost a
listing nothing; the `updated_at` one stays whole, since a sync reads tombstones through it.

A deleted task becomes a tombstone (`deleted_at` set; title, description, tags and due date
erased) instead of disappearing,
so a client syncing with `updated_since` learns of the deletion. On PostgreSQL every change
takes its instant from `todo_change_instant`, which advances the user's row of `user_clocks`
under a lock held until the change commits: a user's changes commit in the order of their
`updated_at`. Existing users' clocks start at their latest change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from todo_api.models.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported, so this revision never changes. PL/pgSQL rather than SQL:
# its statement's plan is cached per connection instead of made at every call.
CHANGE_INSTANT_FUNCTION = """
CREATE OR REPLACE FUNCTION todo_change_instant(owner varchar, proposed timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    instant timestamptz;
BEGIN
    INSERT INTO user_clocks AS clock (user_id, changed_at) VALUES (owner, proposed)
    ON CONFLICT (user_id) DO UPDATE
        SET changed_at = GREATEST(EXCLUDED.changed_at, clock.changed_at + INTERVAL '1 microsecond')
    RETURNING clock.changed_at INTO instant;
    RETURN instant;
END
$$
"""


# The list indexes of revisions 0001 and 0002 (columns as SQL), all but updated_at's.
LIST_INDEXES = {
    "ix_tasks_user_id_created_at_id": {
        "postgresql": "user_id, created_at DESC, id DESC",
        "sqlite": "user_id, created_at DESC, id DESC",
    },
    "ix_tasks_user_id_priority_id": {
        "postgresql": "user_id, priority, id",
        "sqlite": "user_id, priority, id",
    },
    "ix_tasks_user_id_title_id": {
        "postgresql": "user_id, title, id",
        "sqlite": "user_id, title, id",
    },
    "ix_tasks_user_id_due_asc_id": {
        "postgresql": "user_id, COALESCE(due_at, 'infinity'::timestamptz), id",
        "sqlite": "user_id, COALESCE(due_at, '9999-12-31 23:59:59.999999'), id",
    },
    "ix_tasks_user_id_due_desc_id": {
        "postgresql": "user_id, COALESCE(due_at, '-infinity'::timestamptz), id",
        "sqlite": "user_id, COALESCE(due_at, '0001-01-01 00:00:00.000000'), id",
    },
}
LIVE = "deleted_at IS NULL"


def _recreate_list_indexes(dialect: str, *, live_only: bool) -> None:
    for name, columns in LIST_INDEXES.items():
        op.execute(f"DROP INDEX {name}")
        where = f" WHERE {LIVE}" if live_only else ""
        op.execute(f"CREATE INDEX {name} ON tasks ({columns[dialect]}){where}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Plain ALTER TABLE: SQLite's batch mode would rebuild the table and lose the expression
    # indexes of revision 0002.
    op.add_column("tasks", sa.Column("deleted_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_tasks_deleted_at",
        "tasks",
        ["deleted_at"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
    )
    _recreate_list_indexes(dialect, live_only=True)
    op.create_table(
        "user_clocks",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_clocks")),
    )
    if dialect == "postgresql":
        op.execute(
            "INSERT INTO user_clocks (user_id, changed_at) "
            "SELECT user_id, max(updated_at) FROM tasks GROUP BY user_id"
        )
        op.execute(CHANGE_INSTANT_FUNCTION)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS todo_change_instant(varchar, timestamptz)")
    op.drop_table("user_clocks")
    # Tombstones were deletions: before this revision, deleted tasks were gone.
    op.execute("DELETE FROM tasks WHERE deleted_at IS NOT NULL")
    _recreate_list_indexes(dialect, live_only=False)
    op.drop_index("ix_tasks_deleted_at", table_name="tasks")
    op.execute("ALTER TABLE tasks DROP COLUMN deleted_at")
