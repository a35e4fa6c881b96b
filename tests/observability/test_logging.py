"""Logs as the service writes them (`configure_logging`): JSON lines that parse, one access line
per request with what an operator needs, uvicorn's records in the same format, and no token or
request body anywhere, even at DEBUG."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import assert_problem
from tests.support.observability import access_lines, json_lines
from tests.support.tokens import SECRET, bearer, hs256_token
from todo_api.db.database import Database
from todo_api.observability.accesslog import flush_access_log, install_writer
from todo_api.observability.logging import configure_logging

# Made at import and used minutes later in a full run: valid for an hour, not five minutes.
TOKEN = hs256_token("alice", ttl=3600)
BODY_SECRET = "s3cr3t-PASSWORD-xyz"
CLIENT = ("203.0.113.7", 41234)
TOUCHED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "sqlalchemy.engine",
    "aiosqlite",
    "alembic.runtime.plugins",
)
JSON = dict[str, Any]


def written(capsys: pytest.CaptureFixture[str]) -> str:
    """What the service wrote to stderr, once the access log's writer thread has caught up."""
    flush_access_log()
    return capsys.readouterr().err


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure_logging` changes process-wide state; put it back after each test."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    loggers = [logging.getLogger(name) for name in TOUCHED_LOGGERS]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    yield
    install_writer(None)
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for logger, handlers, logger_level, propagate, disabled in saved:
        logger.handlers[:] = handlers
        logger.setLevel(logger_level)
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.fixture
async def app(db: Database) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url=database_url(db), auth_jwt_secret=SECRET)
    application = build_app(db, settings)
    yield application
    await close_app(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, client_address=CLIENT) as http:
        yield http


class TestJsonLines:
    async def test_the_access_line_names_the_route_status_duration_user_and_client(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        created = await client.post("/api/alice/tasks", json={"title": "x"}, headers=bearer(TOKEN))
        task_id = created.json()["id"]
        configure_logging(make_settings(log_format="json"))

        response = await client.get(
            f"/api/alice/tasks/{task_id}",
            headers={**bearer(TOKEN), "X-Request-ID": "trace-access-1"},
        )

        assert response.status_code == 200
        [line] = access_lines(json_lines(written(capsys)))
        assert line["level"] == "info"
        assert line["request_id"] == "trace-access-1"
        assert line["http_method"] == "GET"
        assert line["route"] == "/api/{user_id}/tasks/{task_id}"
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["user_id"] == "alice"
        assert line["client"] == "203.0.113.7:41234"
        assert line["message"].startswith("GET /api/{user_id}/tasks/{task_id} 200 ")
        assert task_id not in json.dumps(line)  # the template, never the raw path

    async def test_an_anonymous_request_has_no_user(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(make_settings(log_format="json"))

        response = await client.get("/api/alice/tasks")

        assert_problem(response, 401)
        [line] = access_lines(json_lines(written(capsys)))
        assert line["status"] == 401
        assert line["user_id"] is None

    @pytest.mark.parametrize("sent", ["trace-404", None], ids=["sent", "generated"])
    async def test_the_request_id_is_the_same_in_the_access_line_and_the_problem(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str], sent: str | None
    ) -> None:
        configure_logging(make_settings(log_format="json"))

        response = await client.get("/nowhere", headers={"X-Request-ID": sent} if sent else {})

        problem = assert_problem(response, 404)
        [line] = access_lines(json_lines(written(capsys)))
        assert line["request_id"] == problem["request_id"] == response.headers["x-request-id"]
        if sent:
            assert line["request_id"] == sent

    def test_uvicorns_records_share_the_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(make_settings(log_format="json"))

        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("uvicorn").warning("Shutting down")
        logging.getLogger("uvicorn.access").info("127.0.0.1 - GET / 200")

        records = json_lines(capsys.readouterr().err)
        assert [(r["logger"], r["level"], r["message"]) for r in records] == [
            ("uvicorn.error", "info", "Started server process [42]"),
            ("uvicorn", "warning", "Shutting down"),
        ]  # uvicorn's own access line gives way to ours
        assert all(r["request_id"] == "-" for r in records)

    async def test_the_text_access_line_has_the_records_format(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(make_settings(log_format="text"))

        await client.get("/api/alice/tasks", headers={"X-Request-ID": "trace-text-1"})

        [line] = [line for line in written(capsys).splitlines() if " todo_api.access " in line]
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    todo_api.access \[trace-text-1\] "
            r"GET /api/\{user_id\}/tasks 401 \d+\.\dms",
            line,
        )

    async def test_no_access_line_below_info(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(make_settings(log_format="json", log_level="WARNING"))

        await client.get("/api/alice/tasks")

        assert written(capsys) == ""

    def test_text_lines_carry_the_request_id_too(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(make_settings(log_format="text"))

        logging.getLogger("uvicorn.error").info("Application startup complete.")

        [line] = capsys.readouterr().err.splitlines()
        assert line.endswith("INFO    uvicorn.error [-] Application startup complete.")


class TestNothingSecretIsLogged:
    async def test_neither_the_token_nor_the_body_reaches_any_log_even_at_debug(
        self, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(make_settings(log_format="json", log_level="DEBUG"))
        auth = bearer(TOKEN)

        created = await client.post(
            "/api/alice/tasks",
            json={"title": BODY_SECRET, "description": BODY_SECRET},
            headers=auth,
        )
        task_id = created.json()["id"]
        await client.get("/api/alice/tasks", headers=auth)
        await client.put(f"/api/alice/tasks/{task_id}", json={"title": BODY_SECRET}, headers=auth)
        await client.post("/api/alice/tasks", json={"title": BODY_SECRET * 20}, headers=auth)
        await client.get("/api/bob/tasks", headers=auth)
        await client.get("/api/alice/tasks", headers=bearer(TOKEN + "x"))
        logging.getLogger("todo_api.probe").debug("debug records are written")

        assert created.status_code == 201
        output = written(capsys)
        records = json_lines(output)
        assert any(r["message"] == "debug records are written" for r in records)
        assert len(access_lines(records)) == 6
        for secret in (TOKEN, TOKEN.split(".")[2], BODY_SECRET, SECRET):
            assert secret not in output
