"""The task list's keyset pages: `Link: rel="next"` headers that visit every matching task once,
in order, whatever the sort and whatever changes between pages.

Large or precisely timed data sets are written straight into the table (one statement) so their
order can be computed here and compared with the listing's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.support.factories import create_task
from tests.support.listing import (
    BASE,
    SORTS,
    URL,
    Params,
    Row,
    all_pages,
    cursor_of,
    expected_order,
    ids_of,
    insert_rows,
    next_link,
    random_row,
    task_row,
)
from todo_api.db.database import Database


class TestPageLinks:
    async def test_default_page_is_one_hundred(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        rows = [task_row(created_at=BASE + timedelta(seconds=n)) for n in range(101)]
        await insert_rows(db, rows)

        pages = await all_pages(client, [])

        assert [len(page) for page in pages] == [100, 1]
        assert ids_of(pages) == expected_order(rows, "-created_at")

    async def test_next_link_is_the_same_listing_with_a_cursor(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        await insert_rows(
            db,
            [
                task_row(title=f"école {n}", priority=1 + n % 3, tags=["A b"], due_at=BASE)
                for n in range(5)
            ],
        )
        params: Params = [
            ("priority", "high"),
            ("q", "ÉCOLE"),
            ("priority", "low"),
            ("tag", "a B"),
            ("sort", "-title"),
            ("limit", "1"),
            ("due_before", "2030-01-01T00:00:00+01:00"),
        ]

        response = await client.get(URL, params=[*params])

        assert response.status_code == 200, response.text
        link = next_link(response)
        assert link is not None
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.fragment) == ("", "", "")
        assert parts.path == URL
        query = parse_qsl(parts.query, keep_blank_values=True)
        assert sorted(pair for pair in query if pair[0] != "cursor") == sorted(params)
        assert cursor_of(link)

    async def test_no_link_on_the_last_page(self, client: httpx.AsyncClient) -> None:
        for n in range(3):
            await create_task(client, title=f"t{n}")

        exactly = await client.get(URL, params={"limit": 3})
        more = await client.get(URL, params={"limit": 4})
        fewer = await client.get(URL, params={"limit": 2})

        assert "link" not in exactly.headers
        assert "link" not in more.headers
        assert next_link(fewer) is not None

    async def test_empty_listing_has_no_link(self, client: httpx.AsyncClient) -> None:
        response = await client.get(URL, params={"limit": 1})

        assert response.json() == []
        assert "link" not in response.headers

    async def test_links_visit_every_matching_task_once_in_order(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        rng = random.Random(7)
        rows = [random_row(rng) for _ in range(60)]
        await insert_rows(db, [*rows, *(random_row(rng, "bob") for _ in range(20))])
        matching = [row for row in rows if not row["completed"] and row["priority"] != 2]

        pages = await all_pages(
            client,
            [
                ("completed", "false"),
                ("priority", "low"),
                ("priority", "high"),
                ("sort", "due_at"),
                ("limit", "4"),
            ],
        )

        assert all(1 <= len(page) <= 4 for page in pages)
        assert ids_of(pages) == expected_order(matching, "due_at")

    async def test_links_work_for_a_user_id_that_needs_escaping(
        self, client: httpx.AsyncClient
    ) -> None:
        user = "o'neil&co?#%+"
        path = "/api/o'neil&co%3F%23%25+/tasks"
        created = []
        for n in range(5):
            response = await client.post(path, json={"title": f"t{n}"})
            assert response.status_code == 201, response.text
            created.append(response.json())

        pages = await all_pages(client, [("limit", "2")], url=path)

        assert [len(page) for page in pages] == [2, 2, 1]
        assert sorted(ids_of(pages)) == sorted(task["id"] for task in created)
        assert {task["user_id"] for page in pages for task in page} == {user}


class TestKeysetRoundTrips:
    """Every order, page by page, across a whole 1,000-task listing full of ties."""

    @pytest.mark.parametrize("sort", SORTS)
    async def test_pages_cover_the_listing_once_in_order(
        self, client: httpx.AsyncClient, db: Database, sort: str
    ) -> None:
        rng = random.Random(2026)
        rows = [random_row(rng) for _ in range(1000)]
        others = [random_row(rng, "bob") for _ in range(50)]
        await insert_rows(db, [*rows, *others])
        assert sum(row["due_at"] is None for row in rows) in range(250, 350)

        pages = await all_pages(client, [("sort", sort), ("limit", "97")])

        assert [len(page) for page in pages] == [97] * 10 + [30]
        ids = ids_of(pages)
        assert len(set(ids)) == len(ids) == 1000
        assert ids == expected_order(rows, sort)

    @pytest.mark.parametrize(
        ("params", "keep"),
        [
            ([("completed", "true"), ("sort", "-due_at")], lambda row: row["completed"]),
            (
                [("priority", "high"), ("priority", "low"), ("sort", "updated_at")],
                lambda row: row["priority"] != 2,
            ),
            ([("q", "TASK 00"), ("sort", "-priority")], lambda row: row["title"] < "task 0100"),
            (
                [("due_after", "2026-01-01"), ("sort", "title")],
                lambda row: row["due_at"] is not None and row["due_at"] >= BASE,
            ),
        ],
    )
    async def test_filtered_pages_cover_the_listing_once_in_order(
        self, client: httpx.AsyncClient, db: Database, params: Params, keep: Callable[[Row], bool]
    ) -> None:
        rng = random.Random(99)
        rows = [random_row(rng) for _ in range(400)]
        await insert_rows(db, [*rows, *(random_row(rng, "bob") for _ in range(50))])
        matching = [row for row in rows if keep(row)]
        sort = dict(params)["sort"]

        pages = await all_pages(client, [*params, ("limit", "23")])

        assert ids_of(pages) == expected_order(matching, sort)
        assert len(pages) == -(-len(matching) // 23)


class TestPagesUnderConcurrentChanges:
    @pytest.mark.parametrize("sort", SORTS)
    async def test_tasks_present_throughout_appear_exactly_once(
        self, client: httpx.AsyncClient, db: Database, sort: str
    ) -> None:
        rng = random.Random(f"concurrent {sort}")
        initial = [random_row(rng) for _ in range(40)]
        await insert_rows(db, initial)
        known = {str(row["id"]): row for row in initial}
        deleted: set[str] = set()
        seen: list[str] = []

        response = await client.get(URL, params=[("sort", sort), ("limit", "5")])
        while True:
            assert response.status_code == 200, response.text
            page = [task["id"] for task in response.json()]
            assert not deleted & set(page), "a deleted task was listed"
            seen.extend(page)
            link = next_link(response)
            if link is None:
                break
            assert len(seen) < 200, "the next links never end"
            # Between pages: two tasks appear (anywhere in the order) and two disappear, one
            # already listed and one not reached yet.
            added = [random_row(rng) for _ in range(2)]
            await insert_rows(db, added)
            known |= {str(row["id"]): row for row in added}
            listed = [task_id for task_id in seen if task_id not in deleted]
            ahead = [str(r["id"]) for r in initial if str(r["id"]) not in {*seen, *deleted}]
            for victim in (rng.choice(listed), *([rng.choice(ahead)] if ahead else [])):
                gone = await client.delete(f"{URL}/{victim}")
                assert gone.status_code == 204, gone.text
                deleted.add(victim)
            response = await client.get(link)

        assert len(seen) == len(set(seen)), "a task was listed twice"
        survivors = [row for row in initial if str(row["id"]) not in deleted]
        assert {str(row["id"]) for row in survivors} <= set(seen)
        # Everything listed, new tasks included, came in the promised order.
        assert seen == expected_order([known[task_id] for task_id in seen], sort)
        assert len(deleted) > 6


class TestOverdueAcrossPages:
    async def test_a_task_falling_due_while_paging_is_judged_as_on_the_first_page(
        self, client: httpx.AsyncClient
    ) -> None:
        due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        first_task = await create_task(client, title="first", due_at=due)
        second_task = await create_task(client, title="second", due_at=due)

        first = await client.get(URL, params={"overdue": "false", "limit": "1"})
        link = next_link(first)
        assert link is not None
        await asyncio.sleep(
            max(0.0, (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()) + 0.1
        )
        second = await client.get(link)

        # Both were not overdue when the listing began: one listing, one judgement.
        assert [t["id"] for t in first.json()] == [second_task["id"]]
        assert [t["id"] for t in second.json()] == [first_task["id"]]
        # A new listing judges afresh: both are overdue now.
        fresh = await client.get(URL, params={"overdue": "true"})
        assert {t["id"] for t in fresh.json()} == {first_task["id"], second_task["id"]}
