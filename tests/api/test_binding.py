"""A route's `Binder` gives its endpoint the arguments FastAPI's solver gives it, or none at all.

Each `/api` route is rebuilt around an endpoint that records what it is called with (same
signature, so the same parameters); every request of the corpus is then bound twice, by the
route's binder and by FastAPI's own handler. Where the binder binds, FastAPI must have bound the
same values; where FastAPI refuses, the binder must leave the request to it.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from todo_api.api.binding import Binder
from todo_api.api.guarded import GuardedRoute, _through_framework
from todo_api.api.routes import tasks

TASK = str(uuid.UUID(int=7))
BASE = "/api/alice/tasks"
JSON_TYPE = [(b"content-type", b"application/json")]

# (method, path, query string, headers, body)
Case = tuple[str, str, str, list[tuple[bytes, bytes]], bytes]

LIST_QUERIES = [
    "",
    "completed=false",
    "completed=true&completed=false",
    "completed=maybe",
    "priority=high&priority=low",
    "priority=urgent",
    "tag=Work&tag=home",
    "tag=",
    "q=%20quarterly%20",
    "q=%C2%9B",
    "limit=10",
    "limit=0",
    "limit=ten",
    "sort=-title&include_deleted=true",
    "sort=sideways",
    "updated_since=2026-01-01T00:00:00Z&include_deleted=true",
    "due_before=yesterday",
    "cursor=bogus",
    "unknown=1",
    "unknown=1&unknown=2",
    "overdue=true&due_after=2026-01-01T00:00:00Z",
]
TASK_BODIES = [
    (JSON_TYPE, b'{"title": "Buy milk"}'),
    (JSON_TYPE, b'{"title": "Buy milk", "description": null, "priority": "high", "tags": ["a"]}'),
    (JSON_TYPE, b'{"title": "Call", "due_at": "2026-12-24T18:00:00+01:00", "completed": true}'),
    (JSON_TYPE, b'{"title": "dup", "title": "last wins"}'),
    (JSON_TYPE, b'{"description": "no title"}'),
    (JSON_TYPE, b'{"title": ""}'),
    (JSON_TYPE, b'{"title": NaN}'),
    (JSON_TYPE, b"{}"),
    (JSON_TYPE, b"[]"),
    (JSON_TYPE, b"null"),
    (JSON_TYPE, b'{"title": "x", "extra": 1}'),
    (JSON_TYPE, b"{not json"),
    (JSON_TYPE, b'{"title": "\\ud800"}'),
    (JSON_TYPE, '{"title": "utf-16"}'.encode("utf-16")),
    (JSON_TYPE, b""),
    ([(b"content-type", b"application/json; charset=utf-8")], b'{"title": "charset"}'),
    ([(b"content-type", b"Application/JSON")], b'{"title": "case"}'),
    ([(b"content-type", b"application/merge-patch+json")], b'{"title": "merge"}'),
    ([(b"content-type", b"text/plain")], b'{"title": "plain"}'),
    ([], b'{"title": "untyped"}'),
]
COMPLETION_BODIES = [
    ([], b""),
    (JSON_TYPE, b""),
    (JSON_TYPE, b'{"completed": true}'),
    (JSON_TYPE, b'{"completed": false}'),
    (JSON_TYPE, b'{"completed": "yes"}'),
    (JSON_TYPE, b'{"completed": 1}'),
    (JSON_TYPE, b"{}"),
    (JSON_TYPE, b"null"),
    ([(b"content-type", b"text/plain")], b'{"completed": true}'),
]


def corpus() -> list[Case]:
    cases: list[Case] = []
    for query in LIST_QUERIES:
        cases.append(("GET", BASE, query, [], b""))
    for query in ("completed=true", "", "completed=false", "completed=true&x=1"):
        cases.append(("DELETE", BASE, query, [], b""))
    for user in ("alice", "bad user", "x" * 256):
        cases.append(("GET", f"/api/{user}/tasks/stats", "", [], b""))
    for task in (TASK, "not-a-uuid", TASK.upper()):
        cases.append(("GET", f"{BASE}/{task}", "", [], b""))
        cases.append(("DELETE", f"{BASE}/{task}", "", [], b""))
    for headers, body in TASK_BODIES:
        cases.append(("POST", BASE, "", headers, body))
        cases.append(("PUT", f"{BASE}/{TASK}", "", headers, body))
        cases.append(("PATCH", f"{BASE}/{TASK}", "", headers, body))
    for headers, body in COMPLETION_BODIES:
        cases.append(("PATCH", f"{BASE}/{TASK}/complete", "", headers, body))
    return cases


def recording_route(route: APIRoute, calls: list[dict[str, Any]]) -> GuardedRoute:
    """`route` around an endpoint with its signature that records its arguments."""

    async def record(**arguments: Any) -> Response:
        calls.append(arguments)
        return Response(status_code=204)

    record.__signature__ = inspect.signature(route.endpoint, eval_str=True)  # type: ignore[attr-defined]
    return GuardedRoute(route.path, record, methods=sorted(route.methods or ()))


def request_for(route: APIRoute, case: Case) -> Request | None:
    """The request of `case` as the router hands it to `route`, or None if not `route`'s."""
    method, path, query, headers, body = case
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    match, child_scope = route.matches(scope)
    if match is not Match.FULL:
        return None
    scope.update(child_scope)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def without_request(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if not isinstance(value, Request)}


async def framework_arguments(route: GuardedRoute, request: Request) -> dict[str, Any] | None:
    """What FastAPI's handler calls the endpoint with; None when it refuses the request."""
    calls: list[dict[str, Any]] = []
    recorder = recording_route(route, calls)
    handler: Callable[..., Any] = APIRoute.get_route_handler(recorder)
    try:
        await _through_framework(handler, request)
    except (RequestValidationError, HTTPException):
        return None
    assert len(calls) == 1
    return calls[0]


API_ROUTES = [route for route in tasks.router.routes if isinstance(route, GuardedRoute)]


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
async def test_binder_binds_what_fastapi_binds(route: GuardedRoute) -> None:
    binder = Binder.for_route(route)
    assert binder is not None, "every /api route's parameters are of kinds the binder reads"
    bound_any = False
    cases = [case for case in corpus() if request_for(route, case) is not None]
    assert cases, "the corpus exercises every route"
    for case in cases:
        fast_request = request_for(route, case)
        framework_request = request_for(route, case)
        assert fast_request is not None
        assert framework_request is not None
        fast = await binder.bind(fast_request)
        expected = await framework_arguments(route, framework_request)
        if fast is None:
            continue
        bound_any = True
        assert expected is not None, f"the binder bound what FastAPI refuses: {case}"
        assert without_request(fast) == without_request(expected), case
        assert any(value is fast_request for value in fast.values()) == (
            route.dependant.request_param_name is not None
        )
    assert bound_any, "the binder binds at least one ordinary request of every route"


async def test_binder_takes_the_common_requests() -> None:
    """The requests clients send most are bound here, not left to the framework."""
    common: list[Case] = [
        ("GET", BASE, "", [], b""),
        ("GET", BASE, "completed=false&priority=high&priority=low&limit=50", [], b""),
        ("GET", BASE, "q=milk&sort=title&tag=home", [], b""),
        ("GET", BASE, "cursor=c29tZSBjdXJzb3I&limit=20", [], b""),
        ("GET", f"{BASE}/{TASK}", "", [], b""),
        ("POST", BASE, "", JSON_TYPE, b'{"title": "Buy milk"}'),
        ("PATCH", f"{BASE}/{TASK}", "", JSON_TYPE, b'{"title": "Buy oat milk"}'),
        ("PATCH", f"{BASE}/{TASK}/complete", "", [], b""),
        ("PATCH", f"{BASE}/{TASK}/complete", "", JSON_TYPE, b'{"completed": true}'),
        ("DELETE", f"{BASE}/{TASK}", "", [], b""),
    ]
    for case in common:
        route = next(r for r in API_ROUTES if request_for(r, case) is not None)
        request = request_for(route, case)
        binder = Binder.for_route(route)
        assert binder is not None
        assert request is not None
        assert await binder.bind(request) is not None, case
