"""On PostgreSQL, every order of the list is an index scan of the user's rows that stops after one
page: no sequential scan of the table, no sort of the user's whole set (the issue's
"fast and flat as data grows"). Checked with EXPLAIN on a user holding many tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    make_settings,
    postgres_url,
)
from todo_api.data.tasks import listing_statement
from todo_api.db.connect import create_database
from todo_api.db.database import Database
from todo_api.db.migrations import upgrade
from todo_api.db.postgres import PostgresDatabase
from todo_api.schemas.listing import TaskListQuery
from todo_api.services import listing

pytestmark = [
    pytest.mark.postgres_only,
    # Plans are read on a direct connection (the statements as the direct path compiles them).
    pytest.mark.direct_postgres,
    pytest.mark.skipif(postgres_url() is None, reason="TEST_DATABASE_URL is not set"),
]

HEAVY_USER = "heavy"
HEAVY_TASKS = 30_000
# Every sort, and the index that must serve it (read forwards or backwards).
SORT_INDEXES = {
    "created_at": "ix_tasks_user_id_created_at_id",
    "-created_at": "ix_tasks_user_id_created_at_id",
    "updated_at": "ix_tasks_user_id_updated_at_id",
    "-updated_at": "ix_tasks_user_id_updated_at_id",
    "priority": "ix_tasks_user_id_priority_id",
    "-priority": "ix_tasks_user_id_priority_id",
    "title": "ix_tasks_user_id_title_id",
    "-title": "ix_tasks_user_id_title_id",
    "due_at": "ix_tasks_user_id_due_asc_id",
    "-due_at": "ix_tasks_user_id_due_desc_id",
}

# 30,000 tasks for one user, as many again spread over 300 others; a third have no due date.
SEED = """
INSERT INTO tasks (id, user_id, title, description, completed, priority, due_at, tags, tag_keys,
                   completed_at, created_at, updated_at)
SELECT gen_random_uuid(),
       CASE WHEN i <= $1 THEN 'heavy' ELSE 'user' || (i % 300) END,
       'task ' || lpad((i % 5000)::text, 5, '0'),
       CASE WHEN i % 2 = 0 THEN 'notes ' || i END,
       i % 2 = 0,
       1 + i % 3,
       CASE WHEN i % 3 = 0 THEN NULL ELSE now() + (i % 900 - 450) * interval '1 hour' END,
       '{}', '{}',
       CASE WHEN i % 2 = 0 THEN now() END,
       now() - i * interval '1 second',
       now() - (i % 7000) * interval '1 second'
FROM generate_series(1, $1 * 2) AS i
"""


@pytest.fixture(scope="module")
async def seeded(worker_tag: str) -> AsyncIterator[tuple[Database, str]]:
    """A database of this module's own: the heavy user's rows, analysed."""
    name = f"todo_plans_{worker_tag}"
    url = await create_postgres_database(name)
    database = create_database(make_settings(database_url=url))
    try:
        await upgrade(database.engine)
        conn = await asyncpg.connect(libpq_dsn(url))
        try:
            await conn.execute(SEED, HEAVY_TASKS)
            await conn.execute("ANALYZE tasks")
        finally:
            await conn.close()
        yield database, url
    finally:
        await database.dispose()
        await drop_postgres_database(name)


async def explain(seeded: tuple[Database, str], query: TaskListQuery) -> dict[str, Any]:
    database, url = seeded
    assert isinstance(database, PostgresDatabase)
    page = listing.plan_list(user_id=HEAVY_USER, query=query)
    sql, args = database.compiler.prepare(*listing_statement(page))
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        document = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    finally:
        await conn.close()
    root: dict[str, Any] = orjson.loads(document)[0]["Plan"]
    return root


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


def assert_index_scan_without_sort(plan: dict[str, Any], index: str) -> None:
    kinds = [node["Node Type"] for node in nodes(plan)]
    assert "Seq Scan" not in kinds, kinds
    assert not any("Sort" in kind for kind in kinds), kinds
    assert plan["Node Type"] == "Limit", kinds
    scans = [node for node in nodes(plan) if node["Node Type"] in {"Index Scan", "Index Only Scan"}]
    assert [scan["Index Name"] for scan in scans] == [index], kinds


async def a_cursor_deep_in(seeded: tuple[Database, str], query: TaskListQuery) -> str:
    """A cursor about halfway through the heavy user's listing in `query`'s order."""
    database, _ = seeded
    page = listing.plan_list(user_id=HEAVY_USER, query=query)
    statement, params = listing_statement(page)
    rows = await database.fetch(statement.offset(HEAVY_TASKS // 2), {**params, "limit": 1})
    [row] = rows
    return listing.cursor_after(row, user_id=HEAVY_USER, query=query, page=page)


class TestListPlans:
    @pytest.mark.parametrize("sort", list(SORT_INDEXES))
    async def test_first_page_reads_one_index_in_order(
        self, seeded: tuple[Database, str], sort: str
    ) -> None:
        plan = await explain(seeded, TaskListQuery(sort=sort))

        assert_index_scan_without_sort(plan, SORT_INDEXES[sort])

    @pytest.mark.parametrize("sort", list(SORT_INDEXES))
    async def test_a_deep_page_starts_inside_the_index(
        self, seeded: tuple[Database, str], sort: str
    ) -> None:
        first = TaskListQuery(sort=sort)
        cursor = await a_cursor_deep_in(seeded, first)

        plan = await explain(seeded, TaskListQuery(sort=sort, cursor=cursor))

        assert_index_scan_without_sort(plan, SORT_INDEXES[sort])
        # The position is an index condition (a range start), not a filter over skipped rows.
        # The indexes of the list orders hold live tasks only; `updated_at`'s also holds the
        # tombstones a sync reads, which a plain listing skips.
        [scan] = [n for n in nodes(plan) if n["Node Type"] in {"Index Scan", "Index Only Scan"}]
        if sort.removeprefix("-") == "updated_at":
            assert scan.get("Filter") == "(deleted_at IS NULL)", scan
        else:
            assert "Filter" not in scan, scan
        assert "ROW(" in scan["Index Cond"], scan["Index Cond"]


class TestSyncPlan:
    async def test_a_sync_reads_the_changes_since_from_the_updated_at_index(
        self, seeded: tuple[Database, str]
    ) -> None:
        since = datetime.now(UTC) - timedelta(days=1)
        plan = await explain(seeded, TaskListQuery(updated_since=since, include_deleted=True))

        assert_index_scan_without_sort(plan, "ix_tasks_user_id_updated_at_id")
        [scan] = [n for n in nodes(plan) if n["Node Type"] in {"Index Scan", "Index Only Scan"}]
        assert "updated_at >" in scan["Index Cond"], scan
        assert "Filter" not in scan, scan


class TestSearchPlan:
    async def test_search_reads_the_users_trigram_indexes(
        self, seeded: tuple[Database, str]
    ) -> None:
        plan = await explain(seeded, TaskListQuery(q="04999"))

        kinds = [node["Node Type"] for node in nodes(plan)]
        indexes = {node.get("Index Name") for node in nodes(plan)}
        assert "Seq Scan" not in kinds, kinds
        assert {"ix_tasks_user_id_title_trgm", "ix_tasks_user_id_description_trgm"} <= indexes
