"""Priority, due date, tags and completion time; an index per sort order; trigram search.

Existing tasks keep their data: they become `medium` priority with no due date and no tags, and
a task already completed gets its last change as its completion time (the best record there is).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from todo_api.models.types import UTCDateTime

logger = logging.getLogger("alembic.runtime.migration")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_tasks_user_id_updated_at_id": ["user_id", "updated_at", "id"],
    "ix_tasks_user_id_priority_id": ["user_id", "priority", "id"],
    "ix_tasks_user_id_title_id": ["user_id", "title", "id"],
}
# Due dates as sort keys, missing ones last: the latest instant when ascending, the earliest
# when descending (the same expressions as `due_sort_key`, written out so this revision never
# changes).
DUE_INDEXES = {
    "postgresql": {
        "ix_tasks_user_id_due_asc_id": "COALESCE(due_at, 'infinity'::timestamptz)",
        "ix_tasks_user_id_due_desc_id": "COALESCE(due_at, '-infinity'::timestamptz)",
    },
    "sqlite": {
        "ix_tasks_user_id_due_asc_id": "COALESCE(due_at, '9999-12-31 23:59:59.999999')",
        "ix_tasks_user_id_due_desc_id": "COALESCE(due_at, '0001-01-01 00:00:00.000000')",
    },
}
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
    dialect = bind.dialect.name
    empty_list = sa.text("'{}'" if dialect == "postgresql" else "'[]'")
    # Tags as given (at most 50 characters each) and their case-folded keys (folding can
    # lengthen a tag, so keys are unbounded): arrays on PostgreSQL, JSON on SQLite.
    tags: sa.types.TypeEngine[Any] = (
        postgresql.ARRAY(sa.String(50)) if dialect == "postgresql" else sa.JSON()
    )
    keys: sa.types.TypeEngine[Any] = (
        postgresql.ARRAY(sa.String()) if dialect == "postgresql" else sa.JSON()
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), server_default=sa.text("2"), nullable=False)
        )
        batch.add_column(sa.Column("due_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("tags", tags, server_default=empty_list, nullable=False))
        batch.add_column(sa.Column("tag_keys", keys, server_default=empty_list, nullable=False))
        batch.add_column(sa.Column("completed_at", UTCDateTime(), nullable=True))
        batch.create_check_constraint(op.f("ck_tasks_priority_rank"), "priority BETWEEN 1 AND 3")
    op.execute("UPDATE tasks SET completed_at = updated_at WHERE completed")
    if dialect == "sqlite":
        # Rebuilding the table (batch mode) recreated this index from reflection, which drops
        # its DESC columns; put it back as revision 0001 made it.
        op.drop_index("ix_tasks_user_id_created_at_id", table_name="tasks")
        op.create_index(
            "ix_tasks_user_id_created_at_id",
            "tasks",
            ["user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        )
    if dialect == "postgresql":
        # The defaults only filled the existing rows: the application always sends these values.
        # (SQLite keeps them: dropping a default there means rebuilding the table once more.)
        op.alter_column("tasks", "tags", server_default=None)
        op.alter_column("tasks", "tag_keys", server_default=None)

    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "tasks", columns)
    for name, key in DUE_INDEXES[dialect].items():
        op.create_index(name, "tasks", [sa.text("user_id"), sa.text(key), sa.text("id")])
    if dialect == "postgresql":
        _create_search_indexes(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name in [*DUE_INDEXES[bind.dialect.name], *SORT_INDEXES]:
        op.drop_index(name, table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_priority_rank"), type_="check")
        for column in ("completed_at", "tag_keys", "tags", "due_at", "priority"):
            batch.drop_column(column)


def _create_search_indexes(bind: sa.engine.Connection) -> None:
    """Trigram indexes for search, where the server offers pg_trgm and btree_gin and this role
    may install them; otherwise search stays a scan of the user's rows, and nothing fails."""
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = ANY(:names)"),
        {"names": list(SEARCH_EXTENSIONS)},
    ).scalar()
    if available != len(SEARCH_EXTENSIONS):
        logger.warning("pg_trgm or btree_gin is not offered: search will not be indexed")
        return
    try:
        # One savepoint for the extensions and the indexes: if anything is refused (no
        # privilege, an extension installed in a schema outside the search path), none of it
        # stays and the rest of the migration goes on.
        with bind.begin_nested():
            for extension in SEARCH_EXTENSIONS:
                bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
            for name, column in TRIGRAM_INDEXES.items():
                op.create_index(
                    name,
                    "tasks",
                    ["user_id", column],
                    postgresql_using="gin",
                    postgresql_ops={column: "gin_trgm_ops"},
                )
    except sa.exc.DBAPIError as exc:
        logger.warning("search will not be indexed: %s", type(exc).__name__)
