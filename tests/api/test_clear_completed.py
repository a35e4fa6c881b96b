"""Clearing a user's completed tasks: `DELETE /api/{user_id}/tasks?completed=true`."""

from __future__ import annotations

import httpx
import pytest

from tests.support.factories import assert_problem, create_task
from tests.support.listing import URL, Params, list_ids, list_tasks


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
