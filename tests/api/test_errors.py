"""Every error the app emits is one RFC 9457 problem+json shape (DESIGN.md §5), with the request id,
CORS and `Allow` headers a client needs to act on it."""

from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from tests.support.factories import JSON, assert_problem, create_task
from todo_api.observability.logging import RequestIdFilter

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ALLOWED_ORIGIN = "http://localhost:3000"
FAILING_PATH = "/api/alice/boom"
SOME_TASK_ID = "0b3c7c5e-8f9a-4d2b-9a51-6f1f3e2d4c10"


def allowed_methods(response: httpx.Response) -> set[str]:
    """The methods named by `Allow`, HEAD aside (it is implied by GET)."""
    return {method.strip() for method in response.headers["allow"].split(",")} - {"HEAD"}


def add_failing_route(app: FastAPI, error: Exception) -> str:
    """A throwaway route whose handler raises `error`; returns its path."""

    async def fail() -> None:
        raise error

    app.add_api_route(FAILING_PATH, fail, methods=["GET"])
    return FAILING_PATH


class TestNotFound:
    @pytest.mark.parametrize(
        "path", ["/nope", "/api", "/api/alice", "/api/alice/task", "/api/alice/tasks/x/y/z"]
    )
    async def test_unknown_route_is_a_problem(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)

        problem = assert_problem(response, 404)
        assert set(problem) == PROBLEM_KEYS
        assert problem["type"] == "/problems/not-found"
        assert isinstance(problem["detail"], str)
        assert problem["detail"]

    @pytest.mark.parametrize(
        "path", ["/api/alice/tasks/", f"/api/alice/tasks/{SOME_TASK_ID}/", "/health/", "/docs/"]
    )
    async def test_a_trailing_slash_is_not_found_rather_than_redirected(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        # A redirect would be built from the Host header, before authentication.
        response = await client.get(path, headers={"Host": "evil.example"})

        assert_problem(response, 404)
        assert "location" not in response.headers

    async def test_unknown_route_and_missing_task_share_type_and_title(
        self, client: httpx.AsyncClient
    ) -> None:
        route = assert_problem(await client.get("/nope"), 404)
        task = assert_problem(await client.get(f"/api/alice/tasks/{uuid.uuid4()}"), 404)

        # RFC 9457 §3.1.3: a problem type's title does not change between occurrences.
        assert (route["type"], route["title"]) == (task["type"], task["title"])


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PATCH", "/api/alice/tasks", {"GET", "POST", "DELETE"}),
            ("PUT", "/api/alice/tasks", {"GET", "POST", "DELETE"}),
            ("POST", f"/api/alice/tasks/{SOME_TASK_ID}", {"GET", "PUT", "PATCH", "DELETE"}),
            ("GET", f"/api/alice/tasks/{SOME_TASK_ID}/complete", {"PATCH"}),
            ("DELETE", "/health", {"GET"}),
        ],
        ids=["patch-collection", "put-collection", "post-task", "get-complete", "delete-health"],
    )
    async def test_wrong_method_is_a_problem_listing_the_allowed_ones(
        self, client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
    ) -> None:
        response = await client.request(method, path)

        problem = assert_problem(response, 405)
        assert set(problem) == PROBLEM_KEYS
        assert problem["type"] == "/problems/method-not-allowed"
        assert allowed_methods(response) == allowed

    async def test_delete_on_the_collection_without_the_filter_deletes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client, completed=True)

        response = await client.delete("/api/alice/tasks")

        problem = assert_problem(response, 400)
        assert [error["field"] for error in problem["errors"]] == ["completed"]
        assert (await client.get("/api/alice/tasks")).json() == [task]


class TestUnsupportedMediaType:
    @pytest.mark.parametrize(
        ("method", "suffix"),
        [("POST", None), ("PUT", ""), ("PATCH", ""), ("PATCH", "/complete")],
        ids=["post", "put", "patch", "complete"],
    )
    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded"],
    )
    async def test_non_json_body_is_refused_and_changes_nothing(
        self, client: httpx.AsyncClient, method: str, suffix: str | None, content_type: str
    ) -> None:
        task = await create_task(client)
        url = "/api/alice/tasks" if suffix is None else f"/api/alice/tasks/{task['id']}{suffix}"

        response = await client.request(
            method,
            url,
            content=b'{"title": "New", "completed": true}',
            headers={"Content-Type": content_type},
        )

        problem = assert_problem(response, 415)
        assert set(problem) == PROBLEM_KEYS
        assert problem["type"] == "/problems/unsupported-media-type"
        assert (await client.get("/api/alice/tasks")).json() == [task]

    @pytest.mark.parametrize(
        ("method", "content_type"),
        [
            ("POST", "application/json; charset=utf-8"),
            ("PUT", "application/json; charset=UTF-8"),
            ("PATCH", "application/merge-patch+json"),
        ],
    )
    async def test_json_media_types_are_accepted(
        self, client: httpx.AsyncClient, method: str, content_type: str
    ) -> None:
        task = await create_task(client)
        url = "/api/alice/tasks" if method == "POST" else f"/api/alice/tasks/{task['id']}"

        response = await client.request(
            method, url, content=b'{"title": "New"}', headers={"Content-Type": content_type}
        )

        assert response.status_code == (201 if method == "POST" else 200), response.text
        assert response.json()["title"] == "New"


class TestInternalError:
    async def test_unexpected_exception_is_a_problem_without_internals(
        self, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = add_failing_route(app, RuntimeError("secret detail"))

        caplog.handler.addFilter(RequestIdFilter())
        with caplog.at_level(logging.ERROR):
            response = await client.get(path, headers={"X-Request-ID": "trace-500"})

        problem = assert_problem(response, 500)
        assert set(problem) == PROBLEM_KEYS
        assert problem["type"] == "/problems/internal-server-error"
        assert problem["request_id"] == "trace-500"
        for leak in ("secret detail", "Traceback", "RuntimeError", ".py"):
            assert leak not in response.text
        logged = [r for r in caplog.records if r.exc_info]
        assert len(logged) == 1
        exc_info = logged[0].exc_info
        assert exc_info is not None
        assert isinstance(exc_info[1], RuntimeError)
        assert str(exc_info[1]) == "secret detail"
        assert getattr(logged[0], "request_id", None) == "trace-500"

    @pytest.mark.parametrize(
        "error",
        [
            ConnectionRefusedError("connect to 10.0.0.7:5432 secret detail"),
            sa_exc.OperationalError("SELECT secret detail", {}, Exception("server closed")),
            sa_exc.TimeoutError("QueuePool limit reached, secret detail"),
        ],
        ids=["refused", "operational", "pool-timeout"],
    )
    async def test_database_outage_is_a_503_with_retry_after(
        self, app: FastAPI, client: httpx.AsyncClient, error: Exception
    ) -> None:
        path = add_failing_route(app, error)

        response = await client.get(path)

        problem = assert_problem(response, 503)
        assert set(problem) == PROBLEM_KEYS
        assert problem["type"] == "/problems/service-unavailable"
        assert int(response.headers["retry-after"]) > 0
        assert "secret detail" not in response.text


class TestRequestId:
    @pytest.mark.parametrize(
        "request_id",
        ["abc-123", SOME_TASK_ID, SOME_TASK_ID.replace("-", ""), "trace.id:42_x", "a" * 64],
        ids=["short", "uuid", "hex", "punctuation", "64-chars"],
    )
    async def test_valid_client_id_is_echoed(
        self, client: httpx.AsyncClient, request_id: str
    ) -> None:
        response = await client.get("/api/alice/tasks", headers={"X-Request-ID": request_id})

        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id

    async def test_missing_id_is_generated_fresh_per_request(
        self, client: httpx.AsyncClient
    ) -> None:
        first = await client.get("/api/alice/tasks")
        second = await client.get("/api/alice/tasks")

        assert HEX32.match(first.headers["x-request-id"])
        assert HEX32.match(second.headers["x-request-id"])
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

    @pytest.mark.parametrize(
        "request_id",
        ["a" * 200, "has spaces in it", "semi;colon", 'quote"d', "", "new\\line"],
        ids=["200-chars", "spaces", "semicolon", "quote", "empty", "backslash"],
    )
    async def test_invalid_client_id_is_replaced(
        self, client: httpx.AsyncClient, request_id: str
    ) -> None:
        response = await client.get("/api/alice/tasks", headers={"X-Request-ID": request_id})

        assert response.status_code == 200
        assert HEX32.match(response.headers["x-request-id"])
        assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]

    @pytest.mark.parametrize(
        ("method", "path", "kwargs", "status"),
        [
            ("POST", "/api/alice/tasks", {"json": {"title": ""}}, 400),
            ("GET", "/api/alice/tasks/not-a-uuid", {}, 404),
            ("PUT", "/api/alice/tasks", {}, 405),
            (
                "POST",
                "/api/alice/tasks",
                {"content": b"x", "headers": {"Content-Type": "text/plain"}},
                415,
            ),
        ],
        ids=["400", "404", "405", "415"],
    )
    @pytest.mark.parametrize("sent", ["trace-42", None], ids=["sent", "generated"])
    async def test_problem_body_carries_the_response_request_id(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        kwargs: JSON,
        status: int,
        sent: str | None,
    ) -> None:
        request = client.build_request(method, path, **kwargs)
        if sent:
            request.headers["X-Request-ID"] = sent

        response = await client.send(request)

        problem = assert_problem(response, status)
        assert problem["request_id"] == response.headers["x-request-id"]
        if sent:
            assert problem["request_id"] == sent
        else:
            assert HEX32.match(problem["request_id"])


class TestProblemInstance:
    @pytest.mark.parametrize(
        "path",
        ["/api/a%09b/tasks", "/api/a%0Ab/tasks", "/api/caf%C3%A9/tasks", "/api/a%20b/tasks"],
        ids=["tab", "newline", "non-ascii", "space"],
    )
    async def test_instance_is_the_path_that_was_requested(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)

        problem = assert_problem(response, 400, fields=["user_id"])
        assert problem["instance"] == httpx.URL(f"http://testserver{path}").path


class TestCors:
    async def test_preflight_from_the_configured_origin_is_allowed(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.options(
            "/api/alice/tasks",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-request-id",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
        allowed = {
            h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
        }
        assert {"content-type", "x-request-id", "authorization"} <= allowed

    @pytest.mark.parametrize(
        "origin", ["http://evil.example", "http://localhost:3001", "https://localhost:3000", "null"]
    )
    async def test_preflight_from_another_origin_is_refused(
        self, client: httpx.AsyncClient, origin: str
    ) -> None:
        response = await client.options(
            "/api/alice/tasks",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )

        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_refused_preflight_is_a_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/alice/tasks",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )

        assert_problem(response, 400)

    async def test_response_to_the_configured_origin_exposes_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/api/alice/tasks", json={"title": "x"}, headers={"Origin": ALLOWED_ORIGIN}
        )

        assert response.status_code == 201
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        exposed = {
            h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
        }
        assert {"location", "x-request-id", "retry-after"} <= exposed

    async def test_response_to_another_origin_has_no_cors_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/api/alice/tasks", headers={"Origin": "http://evil.example"})

        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers

    @pytest.mark.parametrize("path", ["/api/alice/tasks", "/health", "/nope"])
    async def test_a_request_without_origin_gets_vary_and_no_cors_headers(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        """A cache must not hand the answer to a browser asking from an allowed origin."""
        response = await client.get(path)

        assert response.headers.get_list("vary") == ["Origin"]
        assert not [name for name in response.headers if name.startswith("access-control-")]

    async def test_vary_is_sent_once_to_a_listed_origin(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/alice/tasks", headers={"Origin": ALLOWED_ORIGIN})

        assert response.headers.get_list("vary") == ["Origin"]

    @pytest.mark.parametrize(
        ("path", "error", "status"),
        [
            ("/api/a%20b/tasks", None, 400),
            ("/nope", None, 404),
            (FAILING_PATH, RuntimeError("boom"), 500),
            (FAILING_PATH, ConnectionRefusedError("database down"), 503),
        ],
        ids=["400", "404", "500", "503"],
    )
    async def test_error_responses_are_readable_by_the_configured_origin(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        path: str,
        error: Exception | None,
        status: int,
    ) -> None:
        if error is not None:
            add_failing_route(app, error)

        response = await client.get(path, headers={"Origin": ALLOWED_ORIGIN})

        assert_problem(response, status)
        assert response.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN


class TestUnreadableBody:
    @pytest.mark.parametrize(
        "content",
        [b'{"title": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000],
        ids=["not-utf8", "nested-too-deep"],
    )
    async def test_is_a_validation_problem_naming_the_body(
        self, client: httpx.AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            "/api/alice/tasks",
            content=content[:60_000],
            headers={"Content-Type": "application/json"},
        )

        problem = assert_problem(response, 400, fields=["body"])
        assert problem["type"] == "/problems/validation-error"
        assert (await client.get("/api/alice/tasks")).json() == []


class TestAccessLog:
    async def test_a_path_cannot_forge_a_log_line(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="todo_api.access"):
            await client.get("/api/x/nothing%0A2026-11-26 ERROR forged")

        [line] = [r.getMessage() for r in caplog.records if r.name == "todo_api.access"]
        assert "\n" not in line
        assert "nothing\\x0a2026-11-26 ERROR forged" in line

    async def test_a_matched_route_is_logged_by_its_template(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="todo_api.access"):
            await client.get("/api/alice/tasks")

        [line] = [r.getMessage() for r in caplog.records if r.name == "todo_api.access"]
        assert line.startswith("GET /api/{user_id}/tasks 200 ")
