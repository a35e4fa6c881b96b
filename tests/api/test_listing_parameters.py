"""The task list's query parameters refused: every invalid value is a 400 naming its parameter."""

from __future__ import annotations

import httpx
import pytest

from tests.support.factories import assert_problem, create_task
from tests.support.listing import URL, Params, list_tasks, query_id


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
