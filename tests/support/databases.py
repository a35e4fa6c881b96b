"""The databases the suite runs on: SQLite always, PostgreSQL when TEST_DATABASE_URL names one
(directly, or through a transaction-pooling PgBouncer when DB_POOLER=pgbouncer)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from todo_api.config import Settings

POSTGRES_ENV = "TEST_DATABASE_URL"
# Set (DB_POOLER=pgbouncer) when TEST_DATABASE_URL is a transaction-pooling PgBouncer: the same
# suite then runs through it, except the tests of what only a direct connection does.
THROUGH_POOLER = os.environ.get("DB_POOLER") == "pgbouncer"


def make_settings(**values: Any) -> Settings:
    """Settings for a test: never read from a developer's `.env` file."""
    return Settings(_env_file=None, **values)


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


requires_postgres = pytest.mark.skipif(
    postgres_url() is None, reason=f"{POSTGRES_ENV} is not set: PostgreSQL tests are skipped"
)


def libpq_dsn(url: str) -> str:
    """A URL asyncpg.connect accepts, whatever scheme the caller used."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_postgres_database(name: str) -> str:
    """A fresh database beside TEST_DATABASE_URL's; returns its URL."""
    base = postgres_url()
    assert base is not None
    admin = await asyncpg.connect(libpq_dsn(base))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(name: str) -> None:
    base = postgres_url()
    assert base is not None
    admin = await asyncpg.connect(libpq_dsn(base))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_postgres_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database beside TEST_DATABASE_URL's (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = await create_postgres_database(name)
    try:
        yield url
    finally:
        await drop_postgres_database(name)
