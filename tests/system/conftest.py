"""Fixtures of the fault suites: the proxy to PostgreSQL, and a fresh database behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import create_postgres_database, drop_postgres_database, postgres_url
from tests.support.faults import Link


@pytest.fixture
def link() -> Iterator[Link]:
    base = postgres_url()
    assert base is not None
    target = make_url(base)
    proxy = Link(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
async def database_behind(link: Link, worker_tag: str) -> AsyncIterator[str]:
    """A fresh database, and its URL through the proxy."""
    name = f"todo_faults_{worker_tag}"
    url = await create_postgres_database(name)
    try:
        yield make_url(url).set(port=link.port).render_as_string(hide_password=False)
    finally:
        await drop_postgres_database(name)
