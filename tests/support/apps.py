"""Applications on the test's database with settings of the test's own, and clients for them."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from todo_api.config import Settings
from todo_api.db.database import Database
from todo_api.main import create_app


def database_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def build_app(db: Database | None, settings: Settings) -> FastAPI:
    """An application on the test's database, as conftest's `app` fixture builds one."""
    application = create_app(settings)
    application.state.database = db
    return application


async def close_app(application: FastAPI) -> None:
    """What the lifespan does on shutdown for the parts a test app owns."""
    await application.state.guard.close()
    application.dependency_overrides.clear()


def client_for(
    application: FastAPI, *, client_address: tuple[str, int] = ("127.0.0.1", 51000)
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=client_address)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
