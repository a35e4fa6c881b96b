"""The `todo-api` command's defaults."""

from __future__ import annotations

import os

import pytest

from tests.support.databases import make_settings
from todo_api.cli import KEEP_ALIVE_S, _default_workers, keep_alive_s
from todo_api.errors import DB_RETRY_AFTER_SECONDS

SECRET = "a-secret-that-is-at-least-32-bytes-long"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


class TestDefaultWorkers:
    def test_development_serves_with_one_worker(self) -> None:
        assert _default_workers(make_settings(database_url=POSTGRES)) == 1

    def test_production_serves_with_one_worker_per_cpu(self) -> None:
        settings = make_settings(
            database_url=POSTGRES, environment="production", auth_jwt_secret=SECRET
        )

        assert _default_workers(settings) == (os.cpu_count() or 1)

    @pytest.mark.parametrize("environment", ["development", "production"])
    def test_sqlite_serves_with_one_worker(self, environment: str) -> None:
        settings = make_settings(environment=environment, auth_jwt_secret=SECRET)

        assert _default_workers(settings) == 1


class TestKeepAlive:
    """An idle connection outlives the longest Retry-After the service may send."""

    @pytest.mark.parametrize(
        ("rate_limit", "longest_retry_after"),
        [("0", DB_RETRY_AFTER_SECONDS), ("600/minute", 60), ("2/hour", 3600), ("5/day", 86400)],
    )
    def test_is_longer_than_every_retry_after(
        self, rate_limit: str, longest_retry_after: int
    ) -> None:
        settings = make_settings(auth_jwt_secret=SECRET, rate_limit=rate_limit)

        assert keep_alive_s(settings) > longest_retry_after
        assert keep_alive_s(settings) >= KEEP_ALIVE_S  # never below what the proxy keeps

    def test_the_default_budget_keeps_the_proxys_75_s(self) -> None:
        assert keep_alive_s(make_settings(auth_jwt_secret=SECRET)) == KEEP_ALIVE_S == 75
