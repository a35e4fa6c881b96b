"""The task list's cursors: only the exact text issued, for the same listing, is accepted; a
tampered, truncated, foreign or forged one is a 400 naming the cursor, never a 500."""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.support.factories import assert_problem, create_task
from tests.support.listing import (
    URL,
    Params,
    all_pages,
    cursor_of,
    insert_rows,
    list_titles,
    next_link,
    task_row,
)
from todo_api.db.database import Database
from todo_api.schemas.listing import TaskListQuery
from todo_api.services import cursors, listing

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The listing whose cursors TestCursorValidity tampers with.
CURSOR_PARAMS: Params = [
    ("priority", "low"),
    ("priority", "high"),
    ("q", "task"),
    ("sort", "title"),
]


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


class TestCursorsAtTombstones:
    """A page that ends on a tombstone (its title erased) has a next page like any other."""

    @pytest.mark.parametrize("sort", ["title", "-title"])
    async def test_a_title_listing_with_tombstones_walks_through_them(
        self, client: httpx.AsyncClient, sort: str
    ) -> None:
        created = [await create_task(client, title=f"task {n}") for n in range(4)]
        for task in created[1:3]:
            gone = await client.delete(f"{URL}/{task['id']}")
            assert gone.status_code == 204, gone.text

        pages = await all_pages(
            client, [("include_deleted", "true"), ("sort", sort), ("limit", "1")]
        )

        listed = [task["id"] for page in pages for task in page]
        tombstones = sorted(task["id"] for task in created[1:3])
        live = [created[0]["id"], created[3]["id"]]
        # Erased titles sort before every title: first by title, last by -title.
        expected = [*tombstones, *live] if sort == "title" else [*live[::-1], *tombstones[::-1]]
        assert listed == expected
        assert [len(page) for page in pages] == [1, 1, 1, 1]

    async def test_an_erased_title_is_a_position_only_where_tombstones_are_listed(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client, title="task")
        for include_deleted, status in ((True, 200), (False, 400)):
            query = TaskListQuery(sort="title", include_deleted=include_deleted)
            cursor = cursors.encode(
                cursors.Position(key="", task_id=uuid.UUID(int=0)),
                order="title",
                fingerprint=listing.listing_fingerprint("alice", query),
            )
            params = {"sort": "title", "cursor": cursor}
            if include_deleted:
                params["include_deleted"] = "true"

            response = await client.get(URL, params=params)

            assert response.status_code == status, response.text
            if status == 200:
                assert [row["id"] for row in response.json()] == [task["id"]]
            else:
                assert_problem(response, 400, fields=["cursor"])
