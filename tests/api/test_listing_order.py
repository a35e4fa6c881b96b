"""The task list's order: every `sort`, ties broken by id in the same direction, tasks without a
due date last."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.support.factories import create_task
from tests.support.listing import (
    BASE,
    SORTS,
    expected_order,
    insert_rows,
    list_ids,
    list_titles,
    task_row,
)
from todo_api.db.database import Database


class TestSortOrder:
    async def test_default_is_newest_first(self, client: httpx.AsyncClient, db: Database) -> None:
        rows = [task_row(created_at=BASE + timedelta(seconds=n % 3)) for n in range(7)]
        await insert_rows(db, rows)

        assert await list_ids(client) == expected_order(rows, "-created_at")
        assert await list_ids(client) == await list_ids(client, [("sort", "-created_at")])

    async def test_priority_ranks_high_over_medium_over_low(
        self, client: httpx.AsyncClient
    ) -> None:
        for priority in ("medium", "high", "low"):
            await create_task(client, title=priority, priority=priority)

        assert await list_titles(client, [("sort", "-priority")]) == ["high", "medium", "low"]
        assert await list_titles(client, [("sort", "priority")]) == ["low", "medium", "high"]

    @pytest.mark.parametrize("sort", ["due_at", "-due_at"])
    async def test_tasks_without_due_date_come_last(
        self, client: httpx.AsyncClient, sort: str
    ) -> None:
        await create_task(client, title="none 1")
        await create_task(client, title="march", due_at="2026-03-01T00:00:00Z")
        await create_task(client, title="none 2")
        await create_task(client, title="may", due_at="2026-05-01T00:00:00+02:00")

        titles = await list_titles(client, [("sort", sort)])

        dated = ["march", "may"] if sort == "due_at" else ["may", "march"]
        assert titles[:2] == dated
        assert sorted(titles[2:]) == ["none 1", "none 2"]

    @pytest.mark.parametrize("sort", SORTS)
    async def test_id_breaks_ties_in_the_same_direction(
        self, client: httpx.AsyncClient, db: Database, sort: str
    ) -> None:
        rows = [
            task_row(title="same", priority=3, due_at=BASE + timedelta(days=1)) for _ in range(6)
        ]
        await insert_rows(db, rows)

        ids = await list_ids(client, [("sort", sort)])

        by_id = sorted(str(row["id"]) for row in rows)
        assert ids == (list(reversed(by_id)) if sort.startswith("-") else by_id)
