"""Priority, due date, tags and completion time; an index per sort order; trigram search.

Existing tasks keep their data: they become `medium` priority with no due date and no tags, and
a task already completed gets its last change as its completion time (the best record there is).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from todo_api.models.types import TagList, UTCDateTime, due_sort_key

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_tasks_user_id_updated_at_id": ["user_id", "updated_at", "id"],
    "ix_tasks_user_id_priority_id": ["user_id", "priority", "id"],
    "ix_tasks_user_id_title_id": ["user_id", "title", "id"],
}
DUE_INDEXES = {"ix_tasks_user_id_due_asc_id": True, "ix_tasks_user_id_due_desc_id": False}
# Search indexes: trigrams of the text, after the owner (so a search reads only the user's own
# matches). They need pg_trgm and btree_gin, which not every PostgreSQL offers, so the models
# do not declare them; without them search is a scan of the user's rows.
TRIGRAM_INDEXES = {
    "ix_tasks_user_id_title_trgm": "title",
    "ix_tasks_user_id_description_trgm": "description",
}
SEARCH_EXTENSIONS = ("pg_trgm", "btree_gin")


def upgrade() -> None:
    bind = op.get_bind()
    empty_list = "'{}'" if bind.dialect.name == "postgresql" else "'[]'"
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), server_default=sa.text("2"), nullable=False)
        )
        batch.add_column(sa.Column("due_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("tags", TagList(), server_default=sa.text(empty_list), nullable=False)
        )
        batch.add_column(
            sa.Column("tag_keys", TagList(), server_default=sa.text(empty_list), nullable=False)
        )
        batch.add_column(sa.Column("completed_at", UTCDateTime(), nullable=True))
        batch.create_check_constraint(op.f("ck_tasks_priority_rank"), "priority BETWEEN 1 AND 3")
    op.execute("UPDATE tasks SET completed_at = updated_at WHERE completed")
    if bind.dialect.name == "postgresql":
        # The defaults only filled the existing rows: the application always sends these values.
        # (SQLite keeps them: dropping a default there means rebuilding the table once more.)
        op.alter_column("tasks", "tags", server_default=None)
        op.alter_column("tasks", "tag_keys", server_default=None)

    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "tasks", columns)
    table = sa.table("tasks", sa.column("user_id"), sa.column("due_at"), sa.column("id"))
    for name, ascending in DUE_INDEXES.items():
        key = due_sort_key(table.c.due_at, ascending=ascending)
        op.create_index(name, "tasks", [table.c.user_id, key, table.c.id])

    if bind.dialect.name == "postgresql" and _search_extensions_installed(bind):
        for name, column in TRIGRAM_INDEXES.items():
            op.create_index(
                name,
                "tasks",
                ["user_id", column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name in [*DUE_INDEXES, *SORT_INDEXES]:
        op.drop_index(name, table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_priority_rank"), type_="check")
        for column in ("completed_at", "tag_keys", "tags", "due_at", "priority"):
            batch.drop_column(column)


def _search_extensions_installed(bind: sa.engine.Connection) -> bool:
    """Whether pg_trgm and btree_gin are (or could now be) installed."""
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = ANY(:names)"),
        {"names": list(SEARCH_EXTENSIONS)},
    ).scalar()
    if available != len(SEARCH_EXTENSIONS):
        return False
    try:
        with bind.begin_nested():
            for extension in SEARCH_EXTENSIONS:
                bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
    except sa.exc.DBAPIError:
        # Offered but not ours to install (no privilege): search still works, as a scan.
        return False
    return True
