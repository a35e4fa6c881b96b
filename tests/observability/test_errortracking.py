"""Error tracking: a 500 reaches Sentry tagged with its request id and user, and nothing secret
goes with it. Events are caught by a transport in this process: no network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import assert_problem
from tests.support.tokens import SECRET, bearer, hs256_token
from todo_api import main
from todo_api.api.guarded import GuardedRoute
from todo_api.config import ConfigurationError, Settings, load_settings
from todo_api.db.database import Database
from todo_api.observability import errortracking

DSN = "https://public-key@errors.example.invalid/42"
# Made at import and used minutes later in a full run: valid for an hour, not five minutes.
TOKEN = hs256_token("alice", ttl=3600)
BODY_SECRET = "s3cr3t-PASSWORD-xyz"
FAILING = "/api/{user_id}/explode"


class CapturingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [dict(event) for e in self.envelopes if (event := e.get_event()) is not None]

    def payload(self) -> bytes:
        return b"".join(envelope.serialize() for envelope in self.envelopes)


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[CapturingTransport]:
    """Apps built in the test report to this transport; the SDK is switched off after."""
    capturing = CapturingTransport()

    def init(settings: Settings) -> bool:
        return errortracking.init_error_tracking(settings, transport=capturing)

    monkeypatch.setattr(main, "init_error_tracking", init)
    yield capturing
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture(params=[0.0, 1.0], ids=["errors", "tracing"])
def traces_sample_rate(request: pytest.FixtureRequest) -> float:
    """Errors alone, or with performance tracing (and so the SDK's FastAPI integration)."""
    rate: float = request.param
    return rate


@pytest.fixture
async def app(
    db: Database, transport: CapturingTransport, traces_sample_rate: float
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url=database_url(db),
        auth_jwt_secret=SECRET,
        sentry_dsn=DSN,
        sentry_traces_sample_rate=traces_sample_rate,
    )
    application = build_app(db, settings)

    async def explode(payload: dict[str, Any]) -> None:
        raise RuntimeError("kaboom")

    async def refuse_database() -> None:
        raise ConnectionRefusedError("database down")

    routes = application.router
    routes.add_api_route(FAILING, explode, methods=["POST"], route_class_override=GuardedRoute)
    routes.add_api_route("/api/{user_id}/down", refuse_database, route_class_override=GuardedRoute)
    yield application
    await close_app(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        http.headers.update(bearer(TOKEN))
        yield http


class TestReporting:
    async def test_a_500_is_reported_with_its_request_id_and_user(
        self, client: httpx.AsyncClient, transport: CapturingTransport
    ) -> None:
        response = await client.post(
            "/api/alice/explode",
            params={"q": BODY_SECRET},
            json={"title": BODY_SECRET},
            headers={"X-Request-ID": "trace-sentry-1", "Cookie": "session=cookie-secret"},
        )

        assert_problem(response, 500)
        [event] = transport.events()
        assert event["tags"]["request_id"] == "trace-sentry-1"
        assert event["tags"]["user_id"] == "alice"
        [exception] = event["exception"]["values"]
        assert exception["type"] == "RuntimeError"
        assert exception["value"] == "kaboom"
        assert event["environment"] == "development"
        assert event["transaction"] == FAILING
        # The request is described, without its credentials, body or query string.
        request = event["request"]
        assert request["method"] == "POST"
        assert request["url"] == "http://testserver/api/alice/explode"
        assert {name.lower() for name in request.get("headers", {})}.isdisjoint(
            {"authorization", "cookie"}
        )
        assert "data" not in request
        payload = transport.payload()
        for secret in (TOKEN, BODY_SECRET, "cookie-secret", SECRET):
            assert secret.encode() not in payload

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/api/alice/tasks/00000000-0000-4000-8000-000000000000", 404),
            ("GET", "/api/bob/tasks", 403),
            ("POST", "/api/alice/tasks", 400),
            ("GET", "/api/alice/down", 503),
        ],
        ids=["404", "403", "400", "database-503"],
    )
    async def test_refusals_and_outages_are_not_reported(
        self,
        client: httpx.AsyncClient,
        transport: CapturingTransport,
        method: str,
        path: str,
        status: int,
    ) -> None:
        response = await client.request(method, path, json={} if method == "POST" else None)

        assert_problem(response, status)
        assert transport.events() == []


class TestScrubbing:
    def test_credentials_and_bodies_are_dropped_from_any_event(self) -> None:
        event: Any = {
            "request": {
                "headers": {"Authorization": "Bearer abc", "Cookie": "a=b", "Accept": "*/*"},
                "cookies": {"a": "b"},
                "data": {"title": BODY_SECRET},
                "query_string": f"q={BODY_SECRET}",
            }
        }

        scrubbed = errortracking.scrub_event(event, {})

        assert scrubbed["request"] == {"headers": {"Accept": "*/*"}}


class TestSettings:
    def test_a_dsn_that_is_not_a_url_stops_start_up(self) -> None:
        with pytest.raises(ConfigurationError, match="SENTRY_DSN: must be a Sentry DSN"):
            load_settings(_env_file=None, sentry_dsn="public-key@host/1")

    def test_the_traces_sample_rate_is_a_share(self) -> None:
        with pytest.raises(ConfigurationError, match="SENTRY_TRACES_SAMPLE_RATE"):
            load_settings(_env_file=None, sentry_traces_sample_rate="1.5")
