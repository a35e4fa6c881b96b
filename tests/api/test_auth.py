"""Authentication and ownership through the real HTTP stack, with real signed tokens.

Every refusal is tried on each of the seven protected operations, and a later read shows that
nothing changed. JWKS-based providers are served by a real HTTP server on localhost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import ValidationError

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import JSON, assert_problem
from tests.support.jwks import JWKSServer, better_auth_jwk, jwks_server, refused_url
from tests.support.keys import ed25519_key, rsa_key
from tests.support.operations import OPERATION_IDS, OPERATIONS, Operation
from tests.support.tokens import (
    AUDIENCE,
    ISSUER,
    OTHER_SECRET,
    REALM_CHALLENGE,
    SECRET,
    bearer,
    better_auth_token,
    challenge,
    claims_for,
    hs256_token,
    unsigned_token,
    with_payload,
)
from todo_api.db.database import Database
from todo_api.main import create_app, require_guard

Serve = Callable[..., Awaitable[httpx.AsyncClient]]

# The shared-secret deployment most of the matrix runs against: audience and issuer checked.
HS_CONFIG: dict[str, Any] = {
    "auth_jwt_secret": SECRET,
    "auth_jwt_audience": AUDIENCE,
    "auth_jwt_issuer": ISSUER,
}
BETTER_AUTH_URL = "http://localhost:3000"
BETTER_AUTH_USER = "kT9vQ2mXr8LpW4sZ1yB6nD3fH7jC0aE5"  # Better Auth ids: 32 random characters
PROTECTED = pytest.mark.parametrize("op", OPERATIONS, ids=OPERATION_IDS)


def token_for(user_id: str, **extra: Any) -> str:
    """A valid token for HS_CONFIG."""
    return hs256_token(user_id, aud=AUDIENCE, iss=ISSUER, **extra)


@pytest.fixture
async def serve(db: Database) -> AsyncIterator[Serve]:
    """Starts an app on the test's database with the given settings; returns a client for it."""
    async with AsyncExitStack() as stack:

        async def start(**values: Any) -> httpx.AsyncClient:
            settings = make_settings(database_url=database_url(db), **values)
            application = build_app(db, settings)
            stack.push_async_callback(close_app, application)
            return await stack.enter_async_context(client_for(application))

        yield start


@pytest.fixture
def jwks() -> Iterator[JWKSServer]:
    with jwks_server([rsa_key().public_jwk]) as server:
        yield server


async def seed_task(client: httpx.AsyncClient, user_id: str, token: str) -> JSON:
    response = await client.post(
        f"/api/{user_id}/tasks",
        json={"title": "Original", "description": "untouched"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    body: JSON = response.json()
    return body


async def tasks_of(client: httpx.AsyncClient, user_id: str, token: str) -> list[JSON]:
    response = await client.get(f"/api/{user_id}/tasks", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: list[JSON] = response.json()
    return body


def assert_unauthorized(response: httpx.Response, description: str | None) -> None:
    body = assert_problem(response, 401)
    assert body["type"] == "/problems/unauthorized"
    expected = REALM_CHALLENGE if description is None else challenge(description)
    assert response.headers.get_list("www-authenticate") == [expected]


@dataclass(frozen=True)
class BadCredential:
    name: str
    headers: Callable[[], dict[str, str]]
    description: str | None  # the challenge's error_description; None: no error at all


BAD_SCHEME = "the Authorization header must be 'Bearer <token>'"
BAD_CREDENTIALS = [
    BadCredential("no-header", dict, None),
    BadCredential("basic-scheme", lambda: {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, BAD_SCHEME),
    BadCredential(
        "token-without-scheme", lambda: {"Authorization": token_for("alice")}, BAD_SCHEME
    ),
    BadCredential("bearer-without-token", lambda: {"Authorization": "Bearer"}, BAD_SCHEME),
    BadCredential("garbage", lambda: bearer("not-a-jwt"), "malformed token"),
    BadCredential(
        "wrong-secret",
        lambda: bearer(hs256_token("alice", secret=OTHER_SECRET, aud=AUDIENCE, iss=ISSUER)),
        "bad signature",
    ),
    BadCredential(
        "tampered-payload",
        lambda: bearer(with_payload(token_for("mallory"), sub="alice")),
        "bad signature",
    ),
    BadCredential(
        "alg-none",
        lambda: bearer(unsigned_token("alice", aud=AUDIENCE, iss=ISSUER)),
        "algorithm not accepted",
    ),
    BadCredential("expired", lambda: bearer(token_for("alice", ttl=-120)), "token expired"),
    BadCredential(
        "nbf-in-the-future",
        lambda: bearer(token_for("alice", nbf=claims_for(None)["iat"] + 120)),
        "token not yet valid",
    ),
    BadCredential(
        "missing-user-claim",
        lambda: bearer(hs256_token(None, aud=AUDIENCE, iss=ISSUER)),
        "claim sub is not a valid user id",
    ),
    BadCredential(
        "empty-user-claim",
        lambda: bearer(token_for("")),
        "claim sub is not a valid user id",
    ),
    BadCredential(
        "wrong-audience",
        lambda: bearer(hs256_token("alice", aud="billing", iss=ISSUER)),
        "wrong audience",
    ),
    BadCredential(
        "wrong-issuer",
        lambda: bearer(hs256_token("alice", aud=AUDIENCE, iss="https://evil.example")),
        "wrong issuer",
    ),
    BadCredential(
        "rs256-without-jwks",
        lambda: bearer(rsa_key().sign(claims_for("alice", aud=AUDIENCE, iss=ISSUER))),
        "algorithm not accepted",
    ),
]


class TestOwnerAccess:
    @PROTECTED
    async def test_the_owners_token_is_accepted(self, serve: Serve, op: Operation) -> None:
        client = await serve(**HS_CONFIG)
        task = await seed_task(client, "alice", token_for("alice"))

        response = await op.send(client, "alice", task["id"], bearer(token_for("alice")))

        assert response.status_code == op.success, response.text

    async def test_the_scheme_name_is_case_insensitive(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.get(
            "/api/alice/tasks", headers={"Authorization": f"bearer {token_for('alice')}"}
        )

        assert response.status_code == 200
        assert response.json() == []


class TestRefusedCredentials:
    @PROTECTED
    @pytest.mark.parametrize("credential", BAD_CREDENTIALS, ids=[c.name for c in BAD_CREDENTIALS])
    async def test_is_401_with_a_bearer_challenge_and_changes_nothing(
        self, serve: Serve, op: Operation, credential: BadCredential
    ) -> None:
        client = await serve(**HS_CONFIG)
        task = await seed_task(client, "alice", token_for("alice"))

        response = await op.send(client, "alice", task["id"], credential.headers())

        assert_unauthorized(response, credential.description)
        assert await tasks_of(client, "alice", token_for("alice")) == [task]

    async def test_the_401_detail_names_the_reason(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.get(
            "/api/alice/tasks", headers=bearer(token_for("alice", ttl=-120))
        )

        assert_problem(response, 401)
        assert response.json()["detail"] == "The bearer token is not valid: token expired."

    async def test_a_missing_header_asks_for_one(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.get("/api/alice/tasks")

        assert_problem(response, 401)
        assert response.json()["detail"] == (
            "This endpoint needs an `Authorization: Bearer <token>` header."
        )

    async def test_authentication_comes_before_body_validation(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.post("/api/alice/tasks", content=b"{not json")

        assert_unauthorized(response, None)


class TestRepeatedCredentials:
    @pytest.mark.parametrize("users", [("alice", "bob"), ("bob", "alice"), ("alice", "alice")])
    async def test_two_authorization_headers_are_an_invalid_request(
        self, serve: Serve, users: tuple[str, str]
    ) -> None:
        # Whichever one the service took, a proxy reading the other would see another caller.
        client = await serve(**HS_CONFIG)
        headers = [("Authorization", f"Bearer {token_for(user)}") for user in users]

        response = await client.get("/api/alice/tasks", headers=headers)

        body = assert_problem(response, 400, fields=["Authorization"])
        assert body["errors"][0]["type"] == "repeated_header"
        assert response.headers.get_list("www-authenticate") == [
            f'{REALM_CHALLENGE}, error="invalid_request"'
        ]

    async def test_a_write_with_two_authorization_headers_changes_nothing(
        self, serve: Serve
    ) -> None:
        client = await serve(**HS_CONFIG)
        headers = [("Authorization", f"Bearer {token_for('alice')}")] * 2

        response = await client.post("/api/alice/tasks", json={"title": "No"}, headers=headers)

        assert_problem(response, 400, fields=["Authorization"])
        assert await tasks_of(client, "alice", token_for("alice")) == []


class TestForeignUser:
    @PROTECTED
    async def test_another_users_path_is_403_and_their_data_is_unchanged(
        self, serve: Serve, op: Operation
    ) -> None:
        client = await serve(**HS_CONFIG)
        bobs_task = await seed_task(client, "bob", token_for("bob"))

        response = await op.send(client, "bob", bobs_task["id"], bearer(token_for("alice")))

        body = assert_problem(response, 403)
        assert body["type"] == "/problems/forbidden"
        assert body["detail"] == "The token does not grant access to this user's tasks."
        assert await tasks_of(client, "bob", token_for("bob")) == [bobs_task]
        assert await tasks_of(client, "alice", token_for("alice")) == []

    @PROTECTED
    async def test_is_403_whether_or_not_the_task_exists(self, serve: Serve, op: Operation) -> None:
        client = await serve(**HS_CONFIG)

        response = await op.send(client, "bob", str(uuid.uuid4()), bearer(token_for("alice")))

        assert_problem(response, 403)

    async def test_the_path_must_match_the_user_exactly(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.get("/api/Alice/tasks", headers=bearer(token_for("alice")))

        assert_problem(response, 403)


class TestProviderKeysOverHTTP:
    @PROTECTED
    async def test_an_hs256_token_is_refused_when_only_a_jwks_is_configured(
        self, serve: Serve, jwks: JWKSServer, op: Operation
    ) -> None:
        key = rsa_key()
        client = await serve(auth_jwks_url=jwks.url)
        task = await seed_task(client, "alice", key.sign(claims_for("alice")))

        response = await op.send(client, "alice", task["id"], bearer(hs256_token("alice")))

        assert_unauthorized(response, "algorithm not accepted")
        assert await tasks_of(client, "alice", key.sign(claims_for("alice"))) == [task]

    @PROTECTED
    async def test_an_unknown_kid_is_refused_then_accepted_once_the_jwks_rotates(
        self, serve: Serve, jwks: JWKSServer, op: Operation
    ) -> None:
        old = rsa_key()
        new = ed25519_key(kid="rotated-1")
        client = await serve(auth_jwks_url=jwks.url, auth_jwks_min_refresh_seconds=0)
        task = await seed_task(client, "alice", old.sign(claims_for("alice")))
        token = new.sign(claims_for("alice"))

        refused = await op.send(client, "alice", task["id"], bearer(token))
        jwks.serve([old.public_jwk, new.public_jwk])
        accepted = await op.send(client, "alice", task["id"], bearer(token))

        assert_unauthorized(refused, "unknown signing key")
        assert accepted.status_code == op.success, accepted.text
        assert jwks.fetches == 3  # first use, the unknown kid, the rotated document

    @PROTECTED
    async def test_an_unreachable_jwks_host_is_503_and_changes_nothing(
        self, serve: Serve, op: Operation
    ) -> None:
        client = await serve(auth_jwt_secret=SECRET, auth_jwks_url=refused_url())
        task = await seed_task(client, "alice", hs256_token("alice"))

        response = await op.send(
            client, "alice", task["id"], bearer(rsa_key().sign(claims_for("alice")))
        )

        body = assert_problem(response, 503)
        assert body["type"] == "/problems/service-unavailable"
        assert response.headers["retry-after"] == "5"
        assert "www-authenticate" not in response.headers
        assert await tasks_of(client, "alice", hs256_token("alice")) == [task]


class TestBetterAuthTokens:
    @pytest.fixture
    def better_auth(self) -> Iterator[JWKSServer]:
        """Better Auth's JWKS endpoint: Ed25519 keys at /api/auth/jwks."""
        keys = [better_auth_jwk(ed25519_key(kid="2Yb7cYkQ0Hn4WmVt3Ls9Rj6Pe1Zx8Df5"))]
        with jwks_server(keys, path="/api/auth/jwks") as server:
            yield server

    def token(self) -> str:
        return better_auth_token(
            ed25519_key(kid="2Yb7cYkQ0Hn4WmVt3Ls9Rj6Pe1Zx8Df5"), BETTER_AUTH_USER
        )

    @PROTECTED
    @pytest.mark.parametrize(
        "checks",
        [{"auth_jwt_audience": BETTER_AUTH_URL, "auth_jwt_issuer": BETTER_AUTH_URL}, {}],
        ids=["audience-and-issuer-checked", "audience-and-issuer-unset"],
    )
    async def test_is_accepted(
        self, serve: Serve, better_auth: JWKSServer, op: Operation, checks: dict[str, str]
    ) -> None:
        client = await serve(auth_jwks_url=better_auth.url, **checks)
        task = await seed_task(client, BETTER_AUTH_USER, self.token())

        response = await op.send(client, BETTER_AUTH_USER, task["id"], bearer(self.token()))

        assert response.status_code == op.success, response.text

    async def test_is_refused_for_another_audience(
        self, serve: Serve, better_auth: JWKSServer
    ) -> None:
        client = await serve(auth_jwks_url=better_auth.url, auth_jwt_audience="https://api.test")

        response = await client.get(f"/api/{BETTER_AUTH_USER}/tasks", headers=bearer(self.token()))

        assert_unauthorized(response, "wrong audience")

    async def test_is_refused_on_another_users_path(
        self, serve: Serve, better_auth: JWKSServer
    ) -> None:
        client = await serve(auth_jwks_url=better_auth.url)

        response = await client.get("/api/alice/tasks", headers=bearer(self.token()))

        assert_problem(response, 403)


class TestPublicEndpoints:
    @pytest.mark.parametrize(
        "path", ["/health", "/health/live", "/docs", "/redoc", "/openapi.json"]
    )
    async def test_stay_public_with_auth_on(self, serve: Serve, path: str) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.get(path)

        assert response.status_code == 200, response.text

    async def test_a_cors_preflight_needs_no_token(self, serve: Serve) -> None:
        client = await serve(**HS_CONFIG)

        response = await client.options(
            "/api/alice/tasks",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def openapi_document(**values: Any) -> JSON:
    """The document an app with these settings serves (it touches no database)."""
    application = build_app(None, make_settings(**values))
    try:
        async with client_for(application) as client:
            response = await client.get("/openapi.json")
    finally:
        await close_app(application)
    assert response.status_code == 200
    body: JSON = response.json()
    return body


@pytest.fixture(scope="module")
async def document() -> JSON:
    """The document of the shared-secret deployment, fetched once."""
    return await openapi_document(**HS_CONFIG)


class TestOpenAPIDocument:
    async def test_declares_the_bearer_scheme(self, document: JSON) -> None:
        schemes = document["components"]["securitySchemes"]

        assert list(schemes) == ["HTTPBearer"]
        assert schemes["HTTPBearer"]["type"] == "http"
        assert schemes["HTTPBearer"]["scheme"] == "bearer"
        assert schemes["HTTPBearer"]["bearerFormat"] == "JWT"

    @PROTECTED
    async def test_every_api_operation_needs_the_bearer_token(
        self, document: JSON, op: Operation
    ) -> None:
        operation = document["paths"][op.path][op.method.lower()]

        assert operation["security"] == [{"HTTPBearer": []}]

    @PROTECTED
    @pytest.mark.parametrize("status", ["401", "403", "429"])
    async def test_every_api_operation_declares_the_guard_problems(
        self, document: JSON, op: Operation, status: str
    ) -> None:
        response = document["paths"][op.path][op.method.lower()]["responses"][status]

        content = response["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
        assert content["application/problem+json"]["example"]["status"] == int(status)

    @PROTECTED
    async def test_401_declares_the_challenge_and_429_the_rate_limit_headers(
        self, document: JSON, op: Operation
    ) -> None:
        responses = document["paths"][op.path][op.method.lower()]["responses"]

        assert list(responses["401"]["headers"]) == ["WWW-Authenticate"]
        assert set(responses["429"]["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}

    @pytest.mark.parametrize("path", ["/health", "/health/live"])
    async def test_health_needs_no_token(self, document: JSON, path: str) -> None:
        operation = document["paths"][path]["get"]

        assert "security" not in operation
        assert "401" not in operation["responses"]

    async def test_open_mode_declares_no_security(self) -> None:
        document = await openapi_document()

        assert "securitySchemes" not in document["components"]
        for op in OPERATIONS:
            operation = document["paths"][op.path][op.method.lower()]
            assert "security" not in operation
            # Open mode has no users to budget, so by default no rate limit either.
            assert {"401", "403", "429"}.isdisjoint(operation["responses"])

    async def test_no_rate_limit_declares_no_429(self) -> None:
        document = await openapi_document(rate_limit="0", **HS_CONFIG)

        for op in OPERATIONS:
            assert "429" not in document["paths"][op.path][op.method.lower()]["responses"]


class TestOpenMode:
    async def test_serves_requests_without_a_token(self, serve: Serve) -> None:
        client = await serve()

        created = await client.post("/api/alice/tasks", json={"title": "Open"})
        listed = await client.get("/api/alice/tasks")

        assert created.status_code == 201
        assert listed.status_code == 200
        assert listed.json() == [created.json()]

    async def test_ignores_an_authorization_header(self, serve: Serve) -> None:
        client = await serve()

        response = await client.get("/api/alice/tasks", headers=bearer("whatever"))

        assert response.status_code == 200
        assert response.json() == []


class TestBetterAuthSecretAlias:
    async def test_better_auth_secret_enables_hs256_auth(
        self, serve: Serve, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
        monkeypatch.setenv("BETTER_AUTH_SECRET", SECRET)
        client = await serve()

        anonymous = await client.get("/api/alice/tasks")
        signed = await client.get("/api/alice/tasks", headers=bearer(hs256_token("alice")))
        other = await client.get(
            "/api/alice/tasks", headers=bearer(hs256_token("alice", secret=OTHER_SECRET))
        )

        assert_unauthorized(anonymous, None)
        assert signed.status_code == 200
        assert_unauthorized(other, "bad signature")

    def test_better_auth_secret_fills_auth_jwt_secret(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
        monkeypatch.setenv("BETTER_AUTH_SECRET", SECRET)

        settings = make_settings()

        assert settings.auth_jwt_secret is not None
        assert settings.auth_jwt_secret.get_secret_value() == SECRET
        assert settings.auth_enabled is True


class TestProductionMode:
    def test_refuses_settings_without_authentication(self) -> None:
        with pytest.raises(ValidationError, match="ENVIRONMENT=production requires authentication"):
            make_settings(environment="production")

    @pytest.mark.parametrize(
        "auth",
        [{"auth_jwt_secret": SECRET}, {"auth_jwks_url": "https://auth.example.test/jwks"}],
        ids=["secret", "jwks"],
    )
    def test_accepts_either_kind_of_authentication(self, auth: dict[str, str]) -> None:
        settings = make_settings(environment="production", **auth)

        assert settings.auth_enabled is True


class TestEveryApiRouteIsGuarded:
    async def test_a_route_that_skips_the_guard_is_refused_at_startup(self) -> None:
        application = create_app(make_settings(**HS_CONFIG))
        try:

            @application.get("/api/{user_id}/export")
            async def export(user_id: str) -> dict[str, str]:
                return {"user_id": user_id}

            with pytest.raises(RuntimeError, match=r"/api/\{user_id\}/export"):
                require_guard(application)
        finally:
            await close_app(application)

    async def test_an_included_router_that_skips_the_guard_is_refused(self) -> None:
        application = create_app(make_settings(**HS_CONFIG))
        try:
            router = APIRouter(prefix="/api/{user_id}")

            @router.get("/archive")
            async def archive(user_id: str) -> dict[str, str]:
                return {"user_id": user_id}

            application.include_router(router)
            with pytest.raises(RuntimeError, match=r"/api/\{user_id\}/archive"):
                require_guard(application)
        finally:
            await close_app(application)

    async def test_the_service_routes_all_pass_the_guard(self) -> None:
        application = create_app(make_settings(**HS_CONFIG))
        try:
            require_guard(application)
        finally:
            await close_app(application)


class TestAccessLogUser:
    async def test_the_access_line_names_the_user_and_never_the_token(
        self, serve: Serve, caplog: pytest.LogCaptureFixture
    ) -> None:
        client = await serve(**HS_CONFIG)
        token = token_for("alice")

        with caplog.at_level(logging.INFO, logger="todo_api.access"):
            mine = await client.get("/api/alice/tasks", headers=bearer(token))
            theirs = await client.get("/api/bob/tasks", headers=bearer(token))
            anonymous = await client.get("/api/alice/tasks")

        lines = [r for r in caplog.records if r.name == "todo_api.access"]
        assert (
            [r.__dict__["status"] for r in lines]
            == [
                mine.status_code,
                theirs.status_code,
                anonymous.status_code,
            ]
            == [200, 403, 401]
        )
        # The token's user, also when refused for another user's tasks; none without a token.
        assert [r.__dict__["user_id"] for r in lines] == ["alice", "alice", None]
        assert not any(token in str(r.__dict__) for r in caplog.records)


class TestRefusalReasons:
    @pytest.mark.parametrize(
        ("headers", "why", "reason"),
        [
            (
                lambda: bearer(hs256_token("alice", secret=OTHER_SECRET)),
                "bad signature",
                "bad_signature",
            ),
            (
                lambda: bearer(hs256_token("alice", aud=AUDIENCE, iss="other")),
                "wrong issuer",
                "wrong_issuer",
            ),
            (lambda: {"Authorization": "Token abc"}, BAD_SCHEME, "malformed_header"),
            (
                lambda: bearer(token_for("alice", exp=str(int(time.time()) + 600))),
                "claim exp is not a number",
                "malformed",
            ),
            (
                lambda: bearer(token_for("alice", exp=True)),
                "claim exp is not a number",
                "malformed",
            ),
            (
                lambda: bearer(token_for("alice", iat=f"{int(time.time())}")),
                "claim iat is not a number",
                "malformed",
            ),
            (
                lambda: bearer(token_for("alice", ttl=2 * 24 * 3600)),
                "exp is 48.0 h ahead, more than AUTH_MAX_TOKEN_TTL (86400 s)",
                "lifetime_too_long",
            ),
        ],
        ids=["signature", "issuer", "scheme", "string-exp", "boolean-exp", "string-iat", "ttl"],
    )
    async def test_the_client_is_told_little_and_the_log_keeps_the_reason(
        self,
        serve: Serve,
        caplog: pytest.LogCaptureFixture,
        headers: Callable[[], dict[str, str]],
        why: str,
        reason: str,
    ) -> None:
        client = await serve(**HS_CONFIG)

        with caplog.at_level(logging.INFO, logger="todo_api.auth"):
            response = await client.get("/api/alice/tasks", headers=headers())

        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].endswith('error_description="invalid token"')
        assert why not in response.text
        assert why not in response.headers["www-authenticate"]
        [record] = [r for r in caplog.records if r.name == "todo_api.auth.guard"]
        assert record.getMessage() == f"token refused: {why}"
        assert record.__dict__["auth_failure"] == reason
        assert body["detail"] == "The bearer token is not valid: invalid token."
