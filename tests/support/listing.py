"""The task list under test: rows written straight into the table (one statement), the order a
sort promises for them, and listings read through HTTP, page by page along the `next` links."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.support.factories import JSON
from todo_api.db.database import Database
from todo_api.models.task import tasks

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

Params = list[tuple[str, str]]
Row = dict[str, Any]


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
