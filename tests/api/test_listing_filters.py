"""The task list's filters: completed, priority, tag, text search, due dates and overdue, one
at a time and all together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.factories import create_task
from tests.support.listing import Params, list_ids, list_tasks, list_titles


class TestCompletedFilter:
    async def test_true_and_false_split_the_tasks(self, client: httpx.AsyncClient) -> None:
        done = await create_task(client, title="done", completed=True)
        open_ = await create_task(client, title="open", completed=False)

        assert await list_ids(client, [("completed", "true")]) == [done["id"]]
        assert await list_ids(client, [("completed", "false")]) == [open_["id"]]
        assert sorted(await list_ids(client)) == sorted([done["id"], open_["id"]])


class TestPriorityFilter:
    @pytest.mark.parametrize(
        ("wanted", "expected"),
        [
            (["low"], {"a low"}),
            (["high"], {"a high"}),
            (["high", "low"], {"a low", "a high"}),
            (["low", "medium", "high"], {"a low", "a medium", "a high"}),
            (["medium", "medium"], {"a medium"}),
        ],
    )
    async def test_any_of_the_repeated_values(
        self, client: httpx.AsyncClient, wanted: list[str], expected: set[str]
    ) -> None:
        for priority in ("low", "medium", "high"):
            await create_task(client, title=f"a {priority}", priority=priority)

        titles = await list_titles(client, [("priority", name) for name in wanted])

        assert sorted(titles) == sorted(expected)


class TestTagFilter:
    async def test_all_of_the_repeated_tags_case_insensitively(
        self, client: httpx.AsyncClient
    ) -> None:
        await create_task(client, title="both", tags=["Home", "Urgent"])
        await create_task(client, title="home", tags=["home"])
        await create_task(client, title="work", tags=["WORK"])
        await create_task(client, title="none")

        assert sorted(await list_titles(client, [("tag", "HOME")])) == ["both", "home"]
        assert await list_titles(client, [("tag", "home"), ("tag", "uRGENT")]) == ["both"]
        assert await list_titles(client, [("tag", "work")]) == ["work"]
        assert await list_titles(client, [("tag", "home"), ("tag", "work")]) == []
        assert await list_titles(client, [("tag", "hom")]) == []

    async def test_non_ascii_tags_compare_case_insensitively(
        self, client: httpx.AsyncClient
    ) -> None:
        school = await create_task(client, title="school", tags=["école"])
        await create_task(client, title="other", tags=["ecole"])

        assert await list_ids(client, [("tag", "ÉCOLE")]) == [school["id"]]

    async def test_returned_tags_keep_their_spelling(self, client: httpx.AsyncClient) -> None:
        await create_task(client, title="both", tags=["Home", "Urgent"])

        [task] = await list_tasks(client, [("tag", "home")])

        assert task["tags"] == ["Home", "Urgent"]


class TestSearch:
    async def test_finds_text_in_title_or_description_case_insensitively(
        self, client: httpx.AsyncClient
    ) -> None:
        await create_task(client, title="Buy MILK", description=None)
        await create_task(client, title="Groceries", description="eggs and milk")
        await create_task(client, title="Call mum", description="about the bill")

        assert sorted(await list_titles(client, [("q", "milk")])) == ["Buy MILK", "Groceries"]
        assert await list_titles(client, [("q", "CALL M")]) == ["Call mum"]
        assert await list_titles(client, [("q", "ILL")]) == ["Call mum"]
        assert await list_titles(client, [("q", "bread")]) == []

    @pytest.mark.parametrize(
        ("query", "expected"),
        [("ÉCOLE", ["Aller à l'école"]), ("école", ["Aller à l'école"]), ("ÇA", ["Ça va"])],
    )
    async def test_non_ascii_text_matches_case_insensitively(
        self, client: httpx.AsyncClient, query: str, expected: list[str]
    ) -> None:
        await create_task(client, title="Aller à l'école")
        await create_task(client, title="Ça va")
        await create_task(client, title="ecole sans accent")

        assert await list_titles(client, [("q", query)]) == expected

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("%", ["100% done"]),
            ("100%", ["100% done"]),
            ("_", ["snake_case"]),
            ("e_c", ["snake_case"]),
            ("\\", ["C:\\temp"]),
            ("%_", []),
        ],
    )
    async def test_like_wildcards_are_literal(
        self, client: httpx.AsyncClient, query: str, expected: list[str]
    ) -> None:
        for title in ("100% done", "100 done", "snake_case", "snakexcase", "C:\\temp", "C:temp"):
            await create_task(client, title=title)

        assert await list_titles(client, [("q", query)]) == expected

    @pytest.mark.parametrize("blank", ["", "   "])
    async def test_blank_query_is_ignored(self, client: httpx.AsyncClient, blank: str) -> None:
        first = await create_task(client, title="one")
        second = await create_task(client, title="two", description=None)

        ids = await list_ids(client, [("q", blank)])

        assert sorted(ids) == sorted([first["id"], second["id"]])


class TestDueFilters:
    @pytest.fixture
    async def due(self, client: httpx.AsyncClient) -> dict[str, str]:
        """Tasks due at the start of March 2nd (UTC), just before it, after it, and never."""
        titles = {
            "before": "2026-03-01T23:59:59.999999Z",
            "at": "2026-03-02T00:00:00Z",
            "after": "2026-03-02T12:00:00Z",
        }
        for title, due_at in titles.items():
            await create_task(client, title=title, due_at=due_at)
        await create_task(client, title="never")
        return titles

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ([("due_before", "2026-03-02T00:00:00Z")], ["before"]),
            ([("due_before", "2026-03-02T00:00:00.000001Z")], ["at", "before"]),
            ([("due_after", "2026-03-02T00:00:00Z")], ["after", "at"]),
            ([("due_after", "2026-03-02T00:00:00.000001Z")], ["after"]),
            # Offsets name the same instants.
            ([("due_before", "2026-03-02T01:00:00+01:00")], ["before"]),
            ([("due_after", "2026-03-01T19:00:00-05:00")], ["after", "at"]),
            # A date is the start of that day in UTC.
            ([("due_before", "2026-03-02")], ["before"]),
            ([("due_after", "2026-03-02")], ["after", "at"]),
            ([("due_after", "2026-03-03")], []),
            # Both: a half-open range.
            ([("due_after", "2026-03-02"), ("due_before", "2026-03-02T12:00:00Z")], ["at"]),
            (
                [("due_after", "2026-03-01"), ("due_before", "2026-04-01")],
                ["after", "at", "before"],
            ),
        ],
    )
    @pytest.mark.usefixtures("due")
    async def test_before_is_strict_and_after_is_inclusive(
        self,
        client: httpx.AsyncClient,
        params: Params,
        expected: list[str],
    ) -> None:
        assert sorted(await list_titles(client, params)) == expected


class TestOverdueFilter:
    async def test_true_is_past_due_and_open_false_is_everything_else(
        self, client: httpx.AsyncClient
    ) -> None:
        now = datetime.now(UTC)
        past = (now - timedelta(days=1)).isoformat()
        future = (now + timedelta(days=1)).isoformat()
        await create_task(client, title="overdue", due_at=past)
        await create_task(client, title="done late", due_at=past, completed=True)
        await create_task(client, title="upcoming", due_at=future)
        await create_task(client, title="no date")
        await create_task(client, title="done, no date", completed=True)

        assert await list_titles(client, [("overdue", "true")]) == ["overdue"]
        assert sorted(await list_titles(client, [("overdue", "false")])) == [
            "done late",
            "done, no date",
            "no date",
            "upcoming",
        ]


class TestCombinedFilters:
    async def test_every_filter_must_hold(self, client: httpx.AsyncClient) -> None:
        fields: dict[str, Any] = {
            "title": "Report",
            "description": "quarterly figures",
            "priority": "high",
            "tags": ["Work"],
            "due_at": "2099-03-10T09:00:00Z",
        }
        match = await create_task(client, **fields)
        for change in (
            {"completed": True},
            {"priority": "low"},
            {"tags": ["home"]},
            {"title": "Memo", "description": "other"},
            {"due_at": "2099-04-10T09:00:00Z"},
            {"due_at": None},
        ):
            await create_task(client, **(fields | change))
        await create_task(client, "bob", **fields)

        ids = await list_ids(
            client,
            [
                ("completed", "false"),
                ("priority", "high"),
                ("priority", "medium"),
                ("tag", "work"),
                ("q", "QUARTERLY"),
                ("due_after", "2099-03-01"),
                ("due_before", "2099-04-01"),
                ("overdue", "false"),
                ("sort", "title"),
                ("limit", "10"),
            ],
        )

        assert ids == [match["id"]]

    async def test_other_users_tasks_never_appear(self, client: httpx.AsyncClient) -> None:
        mine = await create_task(client, title="milk", tags=["x"], priority="high")
        await create_task(client, "bob", title="milk", tags=["x"], priority="high")
        await create_task(client, "alice2", title="milk", tags=["x"], priority="high")

        for params in ([], [("q", "milk")], [("tag", "x")], [("sort", "title")]):
            assert await list_ids(client, params) == [mine["id"]]
