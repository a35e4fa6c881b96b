"""HTTP hygiene: body size (413), media type (415) and the headers every response carries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Scope

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import JSON, assert_problem
from tests.support.tokens import SECRET, bearer, compact_json, hs256_token
from todo_api.db.database import Database

LIMIT = 1024  # the smallest MAX_BODY_SIZE the settings allow
# Made at import and used minutes later in a full run: valid for an hour, not five minutes.
AUTH = bearer(hs256_token("alice", ttl=3600))


@pytest.fixture
async def guarded_app(db: Database) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url=database_url(db), auth_jwt_secret=SECRET, max_body_size=LIMIT
    )
    application = build_app(db, settings)
    yield application
    await close_app(application)


@pytest.fixture
async def http(guarded_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(guarded_app) as client:
        client.headers.update(AUTH)
        yield client


def body_of_size(size: int) -> bytes:
    """A valid task body of exactly `size` bytes (up to 1030)."""
    padding = size - len(compact_json({"title": "x", "description": ""}))
    body = compact_json({"title": "x", "description": "d" * padding})
    assert len(body) == size
    return body


async def chunks(data: bytes, size: int = 256) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def existing_task(client: httpx.AsyncClient) -> JSON:
    response = await client.post("/api/alice/tasks", json={"title": "Original"})
    assert response.status_code == 201
    body: JSON = response.json()
    return body


async def tasks(client: httpx.AsyncClient) -> list[JSON]:
    response = await client.get("/api/alice/tasks")
    assert response.status_code == 200
    body: list[JSON] = response.json()
    return body


def assert_too_large(response: httpx.Response) -> None:
    body = assert_problem(response, 413)
    assert body["type"] == "/problems/content-too-large"
    assert body["detail"] == f"The request body is larger than {LIMIT} bytes."


class TestBodySizeLimit:
    async def test_a_body_at_the_limit_is_accepted(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=body_of_size(LIMIT),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 201, response.text

    async def test_a_declared_length_over_the_limit_is_413_and_nothing_is_written(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=body_of_size(LIMIT + 1),
            headers={"Content-Type": "application/json"},
        )

        assert response.request.headers["content-length"] == str(LIMIT + 1)
        assert_too_large(response)
        assert await tasks(http) == []

    async def test_a_streamed_body_over_the_limit_is_413_and_nothing_is_written(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=chunks(body_of_size(LIMIT + 1)),
            headers={"Content-Type": "application/json"},
        )

        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_too_large(response)
        assert await tasks(http) == []

    async def test_a_streamed_body_at_the_limit_is_accepted(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=chunks(body_of_size(LIMIT)),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
    async def test_an_oversized_update_leaves_the_task_unchanged(
        self, http: httpx.AsyncClient, streamed: bool
    ) -> None:
        task = await existing_task(http)
        data = body_of_size(LIMIT + 200)

        response = await http.put(
            f"/api/alice/tasks/{task['id']}",
            content=chunks(data) if streamed else data,
            headers={"Content-Type": "application/json"},
        )

        assert_too_large(response)
        assert await tasks(http) == [task]

    async def test_an_oversized_body_is_refused_before_authentication(
        self, guarded_app: FastAPI
    ) -> None:
        async with client_for(guarded_app) as anonymous:
            response = await anonymous.post(
                "/api/alice/tasks",
                content=body_of_size(LIMIT + 1),
                headers={"Content-Type": "application/json"},
            )

        assert_too_large(response)


class TestMediaType:
    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
    )
    async def test_a_create_that_is_not_json_is_415_and_nothing_is_written(
        self, http: httpx.AsyncClient, content_type: str
    ) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=b'{"title": "Sneaky"}',
            headers={"Content-Type": content_type},
        )

        body = assert_problem(response, 415)
        assert body["type"] == "/problems/unsupported-media-type"
        assert body["detail"] == "The request body must be application/json."
        assert response.headers["accept"] == "application/json"
        assert await tasks(http) == []

    @pytest.mark.parametrize(
        ("method", "suffix", "payload"),
        [
            ("PUT", "", b'{"title": "Changed"}'),
            ("PATCH", "", b'{"title": "Changed"}'),
            ("PATCH", "/complete", b'{"completed": true}'),
        ],
        ids=["put", "patch", "complete"],
    )
    async def test_an_update_that_is_not_json_is_415_and_changes_nothing(
        self, http: httpx.AsyncClient, method: str, suffix: str, payload: bytes
    ) -> None:
        task = await existing_task(http)

        response = await http.request(
            method,
            f"/api/alice/tasks/{task['id']}{suffix}",
            content=payload,
            headers={"Content-Type": "text/plain"},
        )

        assert_problem(response, 415)
        assert await tasks(http) == [task]

    async def test_a_json_body_with_a_charset_is_accepted(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/api/alice/tasks",
            content=b'{"title": "Charset"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

        assert response.status_code == 201, response.text


class TestResponseHeaders:
    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/api/alice/tasks", 200),
            ("POST", "/api/alice/tasks", 201),
            ("GET", "/api/alice/tasks/00000000-0000-4000-8000-000000000000", 404),
            ("POST", "/api/alice/tasks", 400),
            ("GET", "/api/bob/tasks", 403),
        ],
        ids=["list", "create", "not-found", "invalid", "forbidden"],
    )
    async def test_api_responses_are_not_sniffed_or_stored(
        self, http: httpx.AsyncClient, method: str, path: str, status: int
    ) -> None:
        payload = {"title": "Ok"} if status == 201 else {"title": ""}
        response = await http.request(method, path, json=payload if method == "POST" else None)

        assert response.status_code == status
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers

    async def test_a_deletes_empty_answer_carries_them_too(self, http: httpx.AsyncClient) -> None:
        task = await existing_task(http)

        response = await http.delete(f"/api/alice/tasks/{task['id']}")

        assert response.status_code == 204
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"

    async def test_unauthorized_and_too_large_answers_carry_them_too(
        self, guarded_app: FastAPI
    ) -> None:
        async with client_for(guarded_app) as anonymous:
            unauthorized = await anonymous.get("/api/alice/tasks")
            too_large = await anonymous.post("/api/alice/tasks", content=b"x" * (LIMIT + 1))

        for response in (unauthorized, too_large):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"

    @pytest.mark.parametrize("path", ["/health", "/health/live", "/openapi.json"])
    async def test_public_endpoints_are_not_sniffed(
        self, http: httpx.AsyncClient, path: str
    ) -> None:
        response = await http.get(path)

        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"


class TestGuardBeforeBodyErrors:
    """The guard runs before the body is read: whatever the body, the caller learns first that it
    is unauthenticated, forbidden or over budget."""

    async def test_malformed_json_without_a_token_is_401(self, guarded_app: FastAPI) -> None:
        async with client_for(guarded_app) as client:
            response = await client.post(
                "/api/alice/tasks", content=b"{bad", headers={"Content-Type": "application/json"}
            )

        assert_problem(response, 401)

    async def test_a_refused_request_is_answered_without_reading_its_body(
        self, guarded_app: FastAPI
    ) -> None:
        body = b'{"title": "never read"}'
        reads = 0
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": "/api/alice/tasks",
            "raw_path": b"/api/alice/tasks",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        await guarded_app(scope, receive, send)

        assert sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] == 401
        assert reads == 0

    async def test_malformed_json_on_another_users_path_is_403(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/api/bob/tasks", content=b"{bad", headers={"Content-Type": "application/json"}
        )

        assert_problem(response, 403)

    async def test_malformed_json_with_a_valid_token_is_400(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/api/alice/tasks", content=b"{bad", headers={"Content-Type": "application/json"}
        )

        assert_problem(response, 400, fields=["body"])

    async def test_malformed_json_spends_the_budget(self, db: Database) -> None:
        settings = make_settings(
            database_url=database_url(db), auth_jwt_secret=SECRET, rate_limit="2/minute"
        )
        application = build_app(db, settings)
        try:
            async with client_for(application) as client:
                statuses = [
                    (
                        await client.post(
                            "/api/alice/tasks",
                            content=b"{bad",
                            headers={**AUTH, "Content-Type": "application/json"},
                        )
                    ).status_code
                    for _ in range(3)
                ]
        finally:
            await close_app(application)

        assert statuses == [400, 400, 429]


class TestMissingContentType:
    async def test_a_body_without_a_content_type_is_415(self, http: httpx.AsyncClient) -> None:
        request = http.build_request("POST", "/api/alice/tasks", content=b'{"title": "x"}')
        assert "content-type" not in request.headers

        response = await http.send(request)

        assert_problem(response, 415)

    async def test_no_body_and_no_content_type_is_400_naming_the_body(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post("/api/alice/tasks")

        assert_problem(response, 400, fields=["body"])


class TestHead:
    """HEAD answers as GET would, without the body (RFC 9110 §9.3.2), on every GET route."""

    @pytest.mark.parametrize(
        "path",
        [
            "/api/alice/tasks",
            "/api/alice/tasks?limit=1",
            "/api/alice/tasks/stats",
            "/api/alice/tasks/{id}",
            "/health",
            "/health/live",
            "/openapi.json",
        ],
    )
    async def test_has_gets_status_and_headers_and_no_body(
        self, http: httpx.AsyncClient, path: str
    ) -> None:
        for title in ("One", "Two"):
            task = (await http.post("/api/alice/tasks", json={"title": title})).json()
        path = path.format(id=task["id"])

        get = await http.get(path)
        head = await http.head(path)

        assert get.status_code == 200
        assert head.status_code == 200
        assert head.content == b""
        varying = {"x-request-id", "ratelimit"}
        assert {k: v for k, v in head.headers.items() if k not in varying} == {
            k: v for k, v in get.headers.items() if k not in varying
        }

    async def test_every_get_the_service_serves_answers_head_alike(
        self, http: httpx.AsyncClient
    ) -> None:
        """Every GET operation of the OpenAPI document (so a new one is covered without being
        listed here), and the pages and files outside it."""
        task = (await http.post("/api/alice/tasks", json={"title": "One"})).json()
        document = (await http.get("/openapi.json")).json()
        operations = [path for path, item in document["paths"].items() if "get" in item]
        outside = ["/", "/openapi.json", "/docs", "/redoc", "/metrics"]
        outside += ["/docs/scripts/swagger-init.js", "/docs/scripts/redoc-init.js"]
        outside += ["/docs/assets/redoc.standalone.js", "/docs/assets/swagger-ui-bundle.js"]
        paths = [p.format(user_id="alice", task_id=task["id"]) for p in operations + outside]
        assert len(operations) >= 5

        for path in paths:
            get, head = await http.get(path), await http.head(path)

            assert get.status_code in (200, 307), path
            assert head.status_code == get.status_code, path
            assert head.content == b"", path
            varying = {"x-request-id", "ratelimit", "date"}
            if path == "/metrics":  # its counters count the GET just made: another length
                varying.add("content-length")
            assert {k: v for k, v in head.headers.items() if k not in varying} == {
                k: v for k, v in get.headers.items() if k not in varying
            }, path

    async def test_a_conditional_head_is_not_modified(self, http: httpx.AsyncClient) -> None:
        task = (await http.post("/api/alice/tasks", json={"title": "One"})).json()
        url = f"/api/alice/tasks/{task['id']}"

        response = await http.head(url, headers={"If-None-Match": '"1"'})

        assert response.status_code == 304
        assert response.headers["etag"] == '"1"'

    async def test_is_guarded_like_get(self, guarded_app: FastAPI) -> None:
        async with client_for(guarded_app) as anonymous:
            response = await anonymous.head("/api/alice/tasks")

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="todo-api"'
        assert response.content == b""

    async def test_a_path_without_get_lists_its_methods(self, http: httpx.AsyncClient) -> None:
        task = (await http.post("/api/alice/tasks", json={"title": "One"})).json()

        response = await http.head(f"/api/alice/tasks/{task['id']}/complete")
        listed = await http.post("/api/alice/tasks/stats")

        assert response.status_code == 405
        assert response.headers["allow"] == "PATCH"
        assert response.content == b""
        assert listed.headers["allow"] == "GET, HEAD"
