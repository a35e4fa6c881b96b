"""The summary of a user's tasks: `GET /api/{user_id}/tasks/stats`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.support.factories import create_task
from tests.support.listing import URL


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
