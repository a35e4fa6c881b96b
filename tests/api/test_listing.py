"""The task list's query parameters and keyset pages, the summary, and clearing completed tasks.

Everything goes through HTTP; large or precisely timed data sets are written straight into the
table (one statement) so their order can be computed here and compared with the listing's.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import orjson
import pytest

from tests.factories import JSON, assert_problem, create_task
from todo_api.db.database import Database
from todo_api.models.task import tasks
from todo_api.schemas.listing import TaskListQuery
from todo_api.services import cursors, listing

URL = "/api/alice/tasks"
SORTS = [
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_at",
    "-due_at",
    "priority",
    "-priority",
    "title",
    "-title",
]
PRIORITY_RANKS = {"low": 1, "medium": 2, "high": 3}
LINK_NEXT = re.compile(r'^<(?P<url>[^>]*)>; rel="next"$')
BASE = datetime(2026, 1, 1, tzinfo=UTC)
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

Params = list[tuple[str, str]]
Row = dict[str, Any]
# The listing whose cursors TestCursorValidity tampers with.
CURSOR_PARAMS: Params = [
    ("priority", "low"),
    ("priority", "high"),
    ("q", "task"),
    ("sort", "title"),
]


# --- Rows written straight into the table ---------------------------------------------------


def task_row(
    user_id: str = "alice",
    *,
    title: str = "task",
    description: str | None = None,
    completed: bool = False,
    priority: int = 2,
    due_at: datetime | None = None,
    tags: Sequence[str] = (),
    created_at: datetime = BASE,
    updated_at: datetime | None = None,
    task_id: uuid.UUID | None = None,
) -> Row:
    return {
        "id": task_id or uuid.uuid4(),
        "user_id": user_id,
        "title": title,
        "description": description,
        "completed": completed,
        "priority": priority,
        "due_at": due_at,
        "tags": list(tags),
        "tag_keys": [tag.casefold() for tag in tags],
        "completed_at": created_at if completed else None,
        "created_at": created_at,
        "updated_at": updated_at or created_at,
    }


def random_row(rng: random.Random, user_id: str = "alice") -> Row:
    """A task whose every sort key is drawn from a few values, so ties are everywhere; about 30%
    have no due date. Timestamps carry microseconds, which a cursor must keep."""
    created = BASE + timedelta(
        seconds=rng.randrange(40), microseconds=rng.choice([0, 1, 500_000, 999_999])
    )
    updated = created + timedelta(microseconds=rng.choice([0, 0, 1, 250_000, 3_000_000]))
    due = None
    if rng.random() >= 0.3:
        due = BASE + timedelta(days=rng.randrange(-15, 15), microseconds=rng.choice([0, 7]))
    completed = rng.random() < 0.4
    return task_row(
        user_id,
        title=f"task {rng.randrange(120):04d}",
        completed=completed,
        priority=rng.randint(1, 3),
        due_at=due,
        created_at=created,
        updated_at=updated,
        task_id=uuid.UUID(int=rng.getrandbits(128), version=4),
    )


async def insert_rows(db: Database, rows: Sequence[Row]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(tasks.insert(), list(rows))


def expected_order(rows: Sequence[Row], sort: str) -> list[str]:
    """The ids of `rows` in the order `sort` promises: `id` breaks ties in the same direction,
    tasks without a due date come last either way, priority by rank (low < medium < high)."""
    field = sort.removeprefix("-")
    descending = sort.startswith("-")

    def key(row: Row) -> tuple[Any, ...]:
        if field == "due_at":
            missing = row["due_at"] is None
            # Reversed for a descending order, so a missing date must then rank lowest.
            return (missing != descending, row["due_at"] or BASE, row["id"])
        return (row[field], row["id"])

    return [str(row["id"]) for row in sorted(rows, key=key, reverse=descending)]


# --- Listing through HTTP ---------------------------------------------------------------------


def next_link(response: httpx.Response) -> str | None:
    """The URL of the `Link: <URL>; rel="next"` header, or None when there is none."""
    header = response.headers.get("link")
    if header is None:
        return None
    match = LINK_NEXT.match(header)
    assert match is not None, header
    return match["url"]


def cursor_of(link: str) -> str:
    cursors = [value for name, value in parse_qsl(urlsplit(link).query) if name == "cursor"]
    assert len(cursors) == 1, link
    return cursors[0]


async def list_tasks(
    client: httpx.AsyncClient, params: Params | None = None, *, url: str = URL
) -> list[JSON]:
    response = await client.get(url, params=[*(params or [])])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: list[JSON] = response.json()
    assert isinstance(body, list)
    return body


async def list_ids(
    client: httpx.AsyncClient, params: Params | None = None, *, url: str = URL
) -> list[str]:
    return [task["id"] for task in await list_tasks(client, params, url=url)]


async def list_titles(client: httpx.AsyncClient, params: Params | None = None) -> list[str]:
    return [task["title"] for task in await list_tasks(client, params)]


async def all_pages(
    client: httpx.AsyncClient, params: Params, *, url: str = URL, max_pages: int = 100
) -> list[list[JSON]]:
    """Every page of a listing, following the `next` links from the first."""
    response = await client.get(url, params=[*params])
    pages: list[list[JSON]] = []
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = next_link(response)
        if link is None:
            return pages
        assert len(pages) < max_pages, "the next links never end"
        response = await client.get(link)


def query_id(value: object) -> str | None:
    """A readable test id for a list of query parameters (the query string, shortened)."""
    if isinstance(value, list):
        return urlencode(value)[:32]
    return None


def ids_of(pages: Sequence[Sequence[JSON]]) -> list[str]:
    return [task["id"] for page in pages for task in page]


# --- Filters ----------------------------------------------------------------------------------


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


# --- Order ------------------------------------------------------------------------------------


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


# --- Validation -------------------------------------------------------------------------------


class TestInvalidParameters:
    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ([("completed", "maybe")], "completed"),
            ([("overdue", "sometimes")], "overdue"),
            ([("priority", "urgent")], "priority"),
            ([("priority", "low"), ("priority", "urgent")], "priority"),
            ([("sort", "foo")], "sort"),
            ([("sort", "id")], "sort"),
            ([("sort", "+title")], "sort"),
            ([("sort", "--title")], "sort"),
            ([("limit", "0")], "limit"),
            ([("limit", "-1")], "limit"),
            ([("limit", "501")], "limit"),
            ([("limit", "abc")], "limit"),
            ([("limit", "1.5")], "limit"),
            ([("due_before", "2026-01-01T10:00:00")], "due_before"),
            ([("due_after", "2026-01-01T10:00:00")], "due_after"),
            ([("due_before", "0.5")], "due_before"),
            ([("due_after", "yesterday")], "due_after"),
            ([("due_before", "2026-13-01")], "due_before"),
            ([("tag", "x" * 51)], "tag"),
            ([("tag", "ok"), ("tag", "y" * 51)], "tag"),
            ([("tag", "")], "tag"),
            ([("q", "milk\x01")], "q"),
            ([("q", "\x7f")], "q"),
            ([("q", "x" * 201)], "q"),
            ([("tags", "x")], "tags"),
            ([("page", "2")], "page"),
            ([("offset", "10")], "offset"),
            ([("cursor", "x" * 2049)], "cursor"),
        ],
        ids=query_id,
    )
    async def test_invalid_value_names_the_parameter(
        self, client: httpx.AsyncClient, params: Params, field: str
    ) -> None:
        await create_task(client)

        response = await client.get(URL, params=[*params])

        assert_problem(response, 400, fields=[field])

    async def test_every_invalid_parameter_is_named(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            URL, params=[("sort", "foo"), ("limit", "0"), ("completed", "maybe"), ("page", "2")]
        )

        assert_problem(response, 400, fields=["sort", "limit", "completed", "page"])

    async def test_too_many_tags_are_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.get(URL, params=[("tag", f"t{n}") for n in range(21)])

        assert_problem(response, 400, fields=["tag"])

    @pytest.mark.parametrize("limit", ["1", "500"])
    async def test_limit_bounds_are_accepted(self, client: httpx.AsyncClient, limit: str) -> None:
        await create_task(client, title="one")
        await create_task(client, title="two")

        tasks_listed = await list_tasks(client, [("limit", limit)])

        assert len(tasks_listed) == min(int(limit), 2)


# --- Pages ------------------------------------------------------------------------------------


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


class TestCursorValidity:
    @pytest.fixture
    async def cursor(self, client: httpx.AsyncClient, db: Database) -> str:
        """The cursor after the first page (3 tasks) of `CURSOR_PARAMS` over 12 tasks."""
        rng = random.Random(11)
        await insert_rows(
            db, [task_row(title=f"task {n:02d}", priority=rng.choice([1, 3])) for n in range(12)]
        )
        response = await client.get(URL, params=[*CURSOR_PARAMS, ("limit", "3")])
        link = next_link(response)
        assert link is not None
        return cursor_of(link)

    @pytest.mark.parametrize(
        "params",
        [
            [("priority", "low"), ("q", "task"), ("sort", "title")],
            [("priority", "low"), ("priority", "high"), ("q", "task"), ("sort", "-title")],
            [("priority", "low"), ("priority", "high"), ("q", "task"), ("sort", "created_at")],
            [("priority", "low"), ("priority", "high"), ("sort", "title")],
            [("priority", "low"), ("priority", "high"), ("q", "tas"), ("sort", "title")],
            [("priority", "low"), ("priority", "high"), ("q", "task")],
            [*CURSOR_PARAMS, ("completed", "false")],
            [*CURSOR_PARAMS, ("tag", "x")],
            [*CURSOR_PARAMS, ("overdue", "false")],
            [*CURSOR_PARAMS, ("due_before", "2030-01-01")],
            [*CURSOR_PARAMS, ("due_after", "2020-01-01")],
            [],
        ],
    )
    async def test_cursor_with_other_filters_or_order_is_refused(
        self, client: httpx.AsyncClient, cursor: str, params: Params
    ) -> None:
        response = await client.get(URL, params=[*params, ("limit", "3"), ("cursor", cursor)])

        assert_problem(response, 400, fields=["cursor"])

    async def test_changing_only_the_limit_is_allowed(
        self, client: httpx.AsyncClient, cursor: str
    ) -> None:
        everything = await list_titles(client, [*CURSOR_PARAMS, ("limit", "100")])

        response = await client.get(
            URL, params=[*CURSOR_PARAMS, ("limit", "5"), ("cursor", cursor)]
        )

        assert response.status_code == 200, response.text
        assert [task["title"] for task in response.json()] == everything[3:8]
        rest = await all_pages(client, [*CURSOR_PARAMS, ("limit", "100"), ("cursor", cursor)])
        assert [task["title"] for task in rest[0]] == everything[3:]
        assert len(rest) == 1

    async def test_only_the_exact_text_issued_is_accepted(
        self, client: httpx.AsyncClient, cursor: str
    ) -> None:
        respellings = [
            cursor + "=",
            cursor + "==",
            " " + cursor,
            cursor + "\n",
            cursor.replace("-", "+").replace("_", "/"),
        ]
        statuses = {}
        for other in respellings:
            if other == cursor:
                continue
            response = await client.get(URL, params=[*CURSOR_PARAMS, ("cursor", other)])
            statuses[repr(other)] = response.status_code
            if response.status_code == 400:
                assert_problem(response, 400, fields=["cursor"])

        assert statuses
        assert set(statuses.values()) == {400}, statuses

    async def test_every_changed_character_is_refused(
        self, client: httpx.AsyncClient, cursor: str
    ) -> None:
        accepted = []
        for position, character in enumerate(cursor):
            # Flipping the top bit of the 6-bit value always changes the decoded bytes.
            other = BASE64URL[BASE64URL.index(character) ^ 32]
            tampered = cursor[:position] + other + cursor[position + 1 :]
            response = await client.get(URL, params=[*CURSOR_PARAMS, ("cursor", tampered)])
            if response.status_code != 400:
                accepted.append((position, response.status_code))
            else:
                assert_problem(response, 400, fields=["cursor"])

        assert accepted == []

    @pytest.mark.parametrize(
        "mangle",
        [
            pytest.param(lambda c: c[:-1], id="last-character-dropped"),
            pytest.param(lambda c: c[:-4], id="four-characters-dropped"),
            pytest.param(lambda c: c[: len(c) // 2], id="half"),
            pytest.param(lambda c: c[1:], id="first-character-dropped"),
            pytest.param(lambda c: c + "A", id="character-appended"),
            pytest.param(lambda c: c[::-1], id="reversed"),
        ],
    )
    async def test_truncated_or_extended_cursor_is_refused(
        self, client: httpx.AsyncClient, cursor: str, mangle: Callable[[str], str]
    ) -> None:
        response = await client.get(URL, params=[*CURSOR_PARAMS, ("cursor", mangle(cursor))])

        assert_problem(response, 400, fields=["cursor"])

    async def test_payload_with_a_stale_checksum_is_refused(
        self, client: httpx.AsyncClient, cursor: str
    ) -> None:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # Keep the checksum, point the payload one task further (a plausible forgery).
        checksum, payload = raw[:12], orjson.loads(raw[12:])
        payload["k"] = "task 05"
        forged = base64.urlsafe_b64encode(checksum + orjson.dumps(payload)).rstrip(b"=").decode()

        response = await client.get(URL, params=[*CURSOR_PARAMS, ("cursor", forged)])

        assert_problem(response, 400, fields=["cursor"])

    @pytest.mark.parametrize(
        "cursor_value",
        [
            "abc",
            "not-a-cursor",
            "!!!!",
            "x" * 100,
            "é",
            "%00",
            base64.urlsafe_b64encode(b"garbage" * 10).decode(),
            base64.urlsafe_b64encode(bytes(range(256))).rstrip(b"=").decode(),
            base64.urlsafe_b64encode(
                b"\x00" * 12 + orjson.dumps({"v": 1, "o": "title", "k": "task 05", "i": "x"})
            ).decode(),
        ],
    )
    @pytest.mark.usefixtures("cursor")
    async def test_foreign_cursor_is_refused(
        self, client: httpx.AsyncClient, cursor_value: str
    ) -> None:
        response = await client.get(URL, params=[*CURSOR_PARAMS, ("cursor", cursor_value)])

        assert_problem(response, 400, fields=["cursor"])


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


# --- Summary ----------------------------------------------------------------------------------


class TestStats:
    async def test_counts_only_the_users_own_tasks(self, client: httpx.AsyncClient) -> None:
        now = datetime.now(UTC)
        past = (now - timedelta(hours=1)).isoformat()
        future = (now + timedelta(days=2)).isoformat()
        await create_task(client, title="done", priority="low", completed=True)
        await create_task(client, title="overdue", priority="medium", due_at=past)
        await create_task(
            client, title="late but done", priority="high", due_at=past, completed=True
        )
        await create_task(client, title="upcoming", priority="high", due_at=future)
        await create_task(client, title="someday", priority="medium")
        for completed in (True, False):
            await create_task(
                client, "bob", title="bob's", priority="high", due_at=past, completed=completed
            )
        await create_task(client, "alice2", title="not alice", priority="low")

        response = await client.get(f"{URL}/stats")

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "total": 5,
            "completed": 2,
            "pending": 3,
            "overdue": 1,
            "by_priority": {"low": 1, "medium": 2, "high": 2},
        }

    async def test_unknown_user_has_zero_everywhere(self, client: httpx.AsyncClient) -> None:
        await create_task(client, "bob", title="bob's", priority="low", completed=True)

        response = await client.get("/api/nobody/tasks/stats")

        assert response.status_code == 200
        assert response.json() == {
            "total": 0,
            "completed": 0,
            "pending": 0,
            "overdue": 0,
            "by_priority": {"low": 0, "medium": 0, "high": 0},
        }

    async def test_counts_follow_changes(self, client: httpx.AsyncClient) -> None:
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        task = await create_task(client, title="late", priority="low", due_at=past)
        before = (await client.get(f"{URL}/stats")).json()

        done = await client.patch(f"{URL}/{task['id']}/complete", json={"completed": True})
        after = (await client.get(f"{URL}/stats")).json()

        assert done.status_code == 200
        assert (before["completed"], before["pending"], before["overdue"]) == (0, 1, 1)
        assert (after["completed"], after["pending"], after["overdue"]) == (1, 0, 0)
        assert after["by_priority"] == {"low": 1, "medium": 0, "high": 0}


# --- Clearing completed tasks -----------------------------------------------------------------


class TestClearCompleted:
    async def test_deletes_only_the_users_completed_tasks(self, client: httpx.AsyncClient) -> None:
        await create_task(client, title="done 1", completed=True)
        await create_task(client, title="done 2", completed=True, priority="high")
        kept = await create_task(client, title="open", completed=False)
        bobs = await create_task(client, "bob", title="bob's done", completed=True)

        response = await client.delete(URL, params={"completed": "true"})

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"deleted": 2}
        assert await list_tasks(client) == [kept]
        assert await list_tasks(client, url="/api/bob/tasks") == [bobs]
        again = await client.delete(URL, params={"completed": "true"})
        assert again.status_code == 200
        assert again.json() == {"deleted": 0}

    @pytest.mark.parametrize(
        "params",
        [[], [("completed", "false")], [("completed", "maybe")], [("completed", "")]],
    )
    async def test_without_completed_true_deletes_nothing(
        self, client: httpx.AsyncClient, params: Params
    ) -> None:
        done = await create_task(client, title="done", completed=True)
        open_ = await create_task(client, title="open")

        response = await client.delete(URL, params=[*params])

        assert_problem(response, 400, fields=["completed"])
        assert sorted(await list_ids(client)) == sorted([done["id"], open_["id"]])


class TestForgedCursors:
    """A cursor with a valid checksum but values the service never issues (the checksum key is
    no secret) is still a 400 naming the cursor, never a 500 or a wrong page."""

    @pytest.mark.parametrize(
        ("sort", "key", "task_id"),
        [
            ("priority", True, uuid.uuid4()),
            ("priority", 99, uuid.uuid4()),
            ("priority", "high", uuid.uuid4()),
            ("title", "a\0b", uuid.uuid4()),
            ("title", "", uuid.uuid4()),
            ("title", 5, uuid.uuid4()),
            ("created_at", "0001-01-01T00:00:00+05:00", uuid.uuid4()),
            ("created_at", "2026-01-01T00:00:00", uuid.uuid4()),
            ("created_at", None, uuid.uuid4()),
            ("due_at", "yesterday", uuid.uuid4()),
            ("created_at", "2026-01-01T00:00:00+00:00", 5),
            ("created_at", "2026-01-01T00:00:00+00:00", "not-a-uuid"),
        ],
    )
    async def test_values_never_issued_are_refused(
        self, client: httpx.AsyncClient, sort: str, key: Any, task_id: Any
    ) -> None:
        query = TaskListQuery(sort=sort)
        forged = cursors.encode(
            cursors.Position(key=key, task_id=task_id),
            order=listing.sort_of(query).removeprefix("-"),
            fingerprint=listing.listing_fingerprint("alice", query),
        )

        response = await client.get(URL, params={"sort": sort, "cursor": forged})

        assert_problem(response, 400, fields=["cursor"])

    async def test_another_users_cursor_is_refused(self, client: httpx.AsyncClient) -> None:
        for user_id in ("alice", "bob"):
            for n in range(3):
                await create_task(client, user_id=user_id, title=f"task {n}")
        first = await client.get(URL, params={"limit": "1"})
        link = next_link(first)
        assert link is not None

        response = await client.get(
            "/api/bob/tasks", params={"limit": "1", "cursor": cursor_of(link)}
        )

        assert_problem(response, 400, fields=["cursor"])


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
