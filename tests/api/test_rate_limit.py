"""Request budgets: the boundary, the headers, the window reset, and one budget shared by two
instances through a real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import assert_problem, unique_user
from tests.support.jwks import SilentServer
from tests.support.tokens import SECRET, bearer, challenge, hs256_token
from todo_api.auth.ratelimit import RETRY_AFTER_MAX_S
from todo_api.cli import KEEP_ALIVE_S
from todo_api.db.database import Database

REDIS_URL = "redis://127.0.0.1:6379"
RATE_LIMIT = re.compile(r'^"default";r=(\d+);t=(\d+)$')

MakeApp = Callable[..., FastAPI]
# Budgets are fixed windows aligned on the clock: a test whose requests straddle the end of a
# minute sees a fresh budget halfway through. No test here takes this long.
MINUTE_MARGIN_S = 3.0


@pytest.fixture(autouse=True)
async def _not_at_the_end_of_a_minute() -> None:
    """Each test starts at least MINUTE_MARGIN_S before a per-minute window ends."""
    left = 60 - time.time() % 60
    if left < MINUTE_MARGIN_S:
        await asyncio.sleep(left + 0.05)


@pytest.fixture
async def make_app(db: Database) -> AsyncIterator[MakeApp]:
    """Builds apps on the test's database with the given settings; closes them after."""
    made: list[FastAPI] = []

    def build(**values: Any) -> FastAPI:
        application = build_app(db, make_settings(database_url=database_url(db), **values))
        made.append(application)
        return application

    yield build
    for application in made:
        await close_app(application)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Opens clients on an app, from a given client address; closes them after."""
    async with AsyncExitStack() as stack:

        def open_client(
            application: FastAPI, address: tuple[str, int] = ("127.0.0.1", 51000)
        ) -> httpx.AsyncClient:
            client = client_for(application, client_address=address)
            stack.push_async_callback(client.aclose)
            return client

        yield open_client


def budget(response: httpx.Response) -> tuple[int, int]:
    """(remaining, seconds to reset) from the `RateLimit` header."""
    match = RATE_LIMIT.match(response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    return int(match[1]), int(match[2])


def assert_rate_limited(response: httpx.Response, *, window: int) -> None:
    body = assert_problem(response, 429)
    assert body["type"] == "/problems/rate-limited"
    assert body["detail"] == "The request budget is spent; retry after the time given."
    remaining, reset = budget(response)
    assert remaining == 0
    assert 1 <= reset <= window
    assert response.headers["retry-after"] == str(min(reset, RETRY_AFTER_MAX_S))


async def forget_user(application: FastAPI, user_id: str) -> None:
    """Remove this test's key from the shared store (and nothing else)."""
    await application.state.guard.limiter.forget(f"user:{user_id}")


def token(user_id: str) -> dict[str, str]:
    return bearer(hs256_token(user_id))


class TestBudgetBoundary:
    async def test_the_request_after_the_limit_is_429_with_the_headers(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="3/minute", auth_jwt_secret=SECRET))

        responses = [await client.get("/api/alice/tasks", headers=token("alice")) for _ in range(4)]

        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        for response in responses:
            assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert [budget(r)[0] for r in responses[:3]] == [2, 1, 0]
        for response in responses[:3]:
            assert 1 <= budget(response)[1] <= 60
            assert "retry-after" not in response.headers
        assert_rate_limited(responses[3], window=60)

    async def test_an_hourly_budget_says_retry_within_the_keep_alive(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        """The true reset is in `RateLimit`; `Retry-After` stays under the idle keep-alive, so
        a client that waits it out finds its connection open (and is told again)."""
        client = clients(make_app(rate_limit="2/hour", auth_jwt_secret=SECRET))

        responses = [await client.get("/api/alice/tasks", headers=token("alice")) for _ in range(3)]

        refused = responses[2]
        assert refused.status_code == 429
        _, reset = budget(refused)
        assert refused.headers["retry-after"] == str(min(reset, RETRY_AFTER_MAX_S))
        assert RETRY_AFTER_MAX_S < KEEP_ALIVE_S

    async def test_every_operation_spends_the_same_budget(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="3/minute", auth_jwt_secret=SECRET))
        created = await client.post(
            "/api/alice/tasks", json={"title": "Keep"}, headers=token("alice")
        )
        url = f"/api/alice/tasks/{created.json()['id']}"
        await client.get(url, headers=token("alice"))
        await client.patch(url, json={"title": "Kept"}, headers=token("alice"))

        refused = await client.delete(url, headers=token("alice"))

        assert_rate_limited(refused, window=60)

    async def test_a_refused_write_changes_nothing(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        application = make_app(rate_limit="2/minute", auth_jwt_secret=SECRET)
        client = clients(application)
        created = await client.post(
            "/api/alice/tasks", json={"title": "Keep"}, headers=token("alice")
        )
        url = f"/api/alice/tasks/{created.json()['id']}"
        await client.get(url, headers=token("alice"))

        refused = await client.put(url, json={"title": "Lost"}, headers=token("alice"))

        assert_rate_limited(refused, window=60)
        reader = clients(make_app(rate_limit="0", auth_jwt_secret=SECRET))
        assert (await reader.get(url, headers=token("alice"))).json() == created.json()

    async def test_the_budget_comes_back_when_the_window_ends(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="2/second", auth_jwt_secret=SECRET))
        # Windows are fixed seconds: start just after one begins, so that the three requests
        # share it even on a loaded machine (one straddling a boundary would be allowed).
        await asyncio.sleep(1.02 - time.time() % 1)
        for _ in range(2):
            assert (await client.get("/api/alice/tasks", headers=token("alice"))).status_code == 200
        refused = await client.get("/api/alice/tasks", headers=token("alice"))
        assert_rate_limited(refused, window=1)

        await asyncio.sleep(int(refused.headers["retry-after"]) + 0.1)
        response = await client.get("/api/alice/tasks", headers=token("alice"))

        assert response.status_code == 200
        assert budget(response)[0] == 1


class TestBudgetKeys:
    async def test_each_user_has_a_budget_of_their_own(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="2/minute", auth_jwt_secret=SECRET))
        for _ in range(2):
            await client.get("/api/alice/tasks", headers=token("alice"))
        alice = await client.get("/api/alice/tasks", headers=token("alice"))

        bob = await client.get("/api/bob/tasks", headers=token("bob"))

        assert_rate_limited(alice, window=60)
        assert bob.status_code == 200
        assert budget(bob)[0] == 1

    async def test_anonymous_requests_are_limited_per_client_address(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        application = make_app(rate_limit="2/minute")
        first = clients(application, ("192.0.2.1", 40000))
        second = clients(application, ("192.0.2.2", 40000))
        for _ in range(2):
            assert (await first.get("/api/alice/tasks")).status_code == 200

        refused = await first.get("/api/bob/tasks")
        other_address = await second.get("/api/alice/tasks")

        assert_rate_limited(refused, window=60)
        assert other_address.status_code == 200
        assert budget(other_address)[0] == 1

    async def test_bad_tokens_spend_the_client_address_budget(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        application = make_app(rate_limit="2/minute", auth_jwt_secret=SECRET)
        client = clients(application, ("192.0.2.7", 40000))
        guesses = [
            await client.get("/api/alice/tasks", headers=bearer(f"guess-{n}")) for n in range(3)
        ]

        valid = await client.get("/api/alice/tasks", headers=token("alice"))

        assert [r.status_code for r in guesses] == [401, 401, 429]
        assert [budget(r)[0] for r in guesses] == [1, 0, 0]
        assert guesses[0].headers["www-authenticate"] == challenge("malformed token")
        assert_rate_limited(guesses[2], window=60)
        assert valid.status_code == 200
        assert budget(valid)[0] == 1

    async def test_a_forbidden_request_spends_the_callers_budget(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="2/minute", auth_jwt_secret=SECRET))
        forbidden = await client.get("/api/bob/tasks", headers=token("alice"))

        own = await client.get("/api/alice/tasks", headers=token("alice"))
        bob = await client.get("/api/bob/tasks", headers=token("bob"))

        assert_problem(forbidden, 403)
        assert budget(forbidden)[0] == 1
        assert budget(own)[0] == 0
        assert budget(bob)[0] == 1


class TestNoLimit:
    @pytest.mark.parametrize("value", ["0", "off"])
    async def test_zero_turns_the_limit_and_its_headers_off(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient], value: str
    ) -> None:
        application = make_app(rate_limit=value, auth_jwt_secret=SECRET)
        client = clients(application)

        responses = [await client.get("/api/alice/tasks", headers=token("alice")) for _ in range(5)]

        assert application.state.guard.limiter is None
        assert [r.status_code for r in responses] == [200] * 5
        for response in responses:
            assert "ratelimit" not in response.headers
            assert "ratelimit-policy" not in response.headers

    async def test_health_is_never_limited(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(make_app(rate_limit="1/minute"))

        responses = [await client.get("/health/live") for _ in range(3)]

        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "ratelimit" not in responses[-1].headers


class TestSharedBudget:
    async def test_two_instances_share_one_budget_through_redis(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        user = unique_user()
        settings: dict[str, Any] = {
            "rate_limit": "3/minute",
            "auth_jwt_secret": SECRET,
            "redis_url": REDIS_URL,
        }
        first_app, second_app = make_app(**settings), make_app(**settings)
        first, second = clients(first_app), clients(second_app)
        url = f"/api/{user}/tasks"
        try:
            responses = [
                await instance.get(url, headers=token(user))
                for instance in (first, second, first, second)
            ]
        finally:
            await forget_user(first_app, user)

        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [budget(r)[0] for r in responses] == [2, 1, 0, 0]
        assert_rate_limited(responses[3], window=60)

    async def test_without_redis_each_instance_counts_alone(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        first = clients(make_app(rate_limit="2/minute", auth_jwt_secret=SECRET))
        second = clients(make_app(rate_limit="2/minute", auth_jwt_secret=SECRET))
        for _ in range(2):
            await first.get("/api/alice/tasks", headers=token("alice"))

        response = await second.get("/api/alice/tasks", headers=token("alice"))

        assert response.status_code == 200
        assert budget(response)[0] == 1

    async def test_an_unreachable_redis_lets_requests_through(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        client = clients(
            make_app(rate_limit="1/minute", auth_jwt_secret=SECRET, redis_url="redis://127.0.0.1:1")
        )

        responses = [await client.get("/api/alice/tasks", headers=token("alice")) for _ in range(3)]

        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "ratelimit" not in responses[-1].headers

    async def test_a_silent_redis_is_given_up_on_quickly_and_left_alone(
        self, make_app: MakeApp, clients: Callable[..., httpx.AsyncClient]
    ) -> None:
        with SilentServer() as silent:
            redis_url = silent.url.replace("http://", "redis://").split("/.well-known")[0]
            client = clients(
                make_app(rate_limit="1/minute", auth_jwt_secret=SECRET, redis_url=redis_url)
            )

            responses = [
                await client.get("/api/alice/tasks", headers=token("alice")) for _ in range(5)
            ]

            # Served (fail open); after the first timeout the next requests do not wait on it.
            assert [r.status_code for r in responses] == [200] * 5
            assert silent.connections == 1

    async def test_shutting_an_app_down_releases_its_redis_connections(self, db: Database) -> None:
        user, client_name = unique_user(), unique_user("todo-api-test")
        settings = make_settings(
            database_url=database_url(db),
            rate_limit="3/minute",
            auth_jwt_secret=SECRET,
            redis_url=f"{REDIS_URL}/0?client_name={client_name}",
        )
        application = build_app(db, settings)
        async with application.router.lifespan_context(application):
            async with client_for(application) as client:
                response = await client.get(f"/api/{user}/tasks", headers=token(user))
            connected = await redis_clients_named(client_name)
            await forget_user(application, user)

        assert budget(response)[0] == 2
        assert connected >= 1
        assert await redis_clients_named(client_name, settle=True) == 0


async def redis_clients_named(name: str, *, settle: bool = False) -> int:
    """How many connections Redis holds for clients with this name (waiting for them to go)."""
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(20 if settle else 1):
            count = sum(1 for entry in await admin.client_list() if entry["name"] == name)
            if count == 0 or not settle:
                return count
            await asyncio.sleep(0.05)
        return count
    finally:
        await admin.aclose()
