"""Conditional reads through real HTTP: `If-None-Match` on a task, 304 while its version is
current."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.conditional import assert_tagged, if_none_match, task_at_version, url
from tests.support.factories import assert_problem, create_task


class TestIfNoneMatch:
    async def test_current_version_is_not_modified(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match('"2"'))

        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == '"2"'

    async def test_old_version_gets_the_task(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match('"1"'))

        assert assert_tagged(response) == task

    @pytest.mark.parametrize(
        "value",
        ["*", 'W/"3"', '"1", "3"', '"1",W/"3"', '"3",'],
        ids=["any", "weak", "list", "weak-in-list", "trailing-comma"],
    )
    async def test_matching_tags_are_not_modified(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task), headers=if_none_match(value))

        assert response.status_code == 304, response.text
        assert response.content == b""
        assert response.headers["etag"] == '"3"'

    @pytest.mark.parametrize(
        "value",
        ['"1", "2"', '"abc"', '""', '"99999999999"'],
        ids=["other-versions", "opaque", "empty-tag", "huge"],
    )
    async def test_tags_not_naming_the_version_get_the_task(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task), headers=if_none_match(value))

        assert assert_tagged(response) == task

    async def test_a_change_ends_not_modified(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Before")
        assert (await client.get(url(task), headers=if_none_match('"1"'))).status_code == 304

        await client.patch(url(task), json={"title": "After"})
        response = await client.get(url(task), headers=if_none_match('"1"'))

        body = assert_tagged(response)
        assert (body["title"], body["version"]) == ("After", 2)

    @pytest.mark.parametrize("value", ['"1"', "*"])
    async def test_unknown_task_is_not_found(self, client: httpx.AsyncClient, value: str) -> None:
        response = await client.get(
            f"/api/alice/tasks/{uuid.uuid4()}", headers=if_none_match(value)
        )

        assert_problem(response, 404)

    async def test_another_users_task_is_not_found(self, client: httpx.AsyncClient) -> None:
        theirs = await create_task(client, "bob")

        response = await client.get(f"/api/alice/tasks/{theirs['id']}", headers=if_none_match("*"))

        assert_problem(response, 404)

    @pytest.mark.parametrize("value", ['"1" "2"', "a b", "", "3", "2'K+0e<,"])
    async def test_malformed_header_is_refused(self, client: httpx.AsyncClient, value: str) -> None:
        task = await create_task(client)

        response = await client.get(url(task), headers=if_none_match(value))

        assert_problem(response, 400, fields=["If-None-Match"])
