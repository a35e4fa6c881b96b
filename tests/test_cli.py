"""The `todo-api` command's defaults."""

from __future__ import annotations

import os

import pytest

from tests.support.databases import make_settings
from todo_api.cli import _default_workers

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
