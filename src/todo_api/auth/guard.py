"""Who may call the API: bearer authentication, the path's owner check and the request budget."""

from __future__ import annotations

import hmac
import logging

from pydantic import SecretStr
from starlette.requests import Request

from todo_api.auth.ratelimit import RateLimiter, create_rate_limiter
from todo_api.auth.tokens import TokenVerifier
from todo_api.config import Settings
from todo_api.errors import Forbidden, RateLimited, RepeatedCredentials, Unauthorized
from todo_api.observability.metrics import count_auth_failure, count_rate_limited
from todo_api.observability.requestctx import (
    RESPONSE_HEADERS_KEY,
    USER_KEY,
    request_state,
)

logger = logging.getLogger(__name__)


class Guard:
    """Admits a request to `/api/{user_id}/...` or raises 401, 403 or 429.

    Authenticated requests spend their user's budget; anonymous ones (open mode, or a missing or
    bad token) spend their client address's, so guessing tokens is rate limited too.
    """

    def __init__(self, verifier: TokenVerifier | None, limiter: RateLimiter | None) -> None:
        self.verifier = verifier
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        verifier = TokenVerifier(settings) if settings.auth_enabled else None
        return cls(verifier, create_rate_limiter(settings.effective_rate_limit, settings.redis_url))

    async def close(self) -> None:
        if self.verifier is not None:
            await self.verifier.close()
        if self.limiter is not None:
            await self.limiter.close()

    async def admit(self, request: Request) -> str | None:
        """The authenticated user id (None in open mode)."""
        if self.verifier is None:
            await self.spend(request, client_key(request))
            return None
        try:
            user_id = await self.verifier.verify(bearer_token(request))
        except Unauthorized as refusal:
            record_refusal(refusal)
            await self.spend(request, client_key(request))
            raise
        except RepeatedCredentials:
            count_auth_failure("repeated_header")
            await self.spend(request, client_key(request))
            raise
        request_state(request.scope)[USER_KEY] = user_id
        await self.spend(request, f"user:{user_id}")
        if request.path_params.get("user_id") != user_id:
            count_auth_failure("user_mismatch")
            raise Forbidden()
        return user_id

    async def spend(self, request: Request, key: str) -> None:
        """Spend one request of `key`'s budget (`user:<id>`, or `client_key`); 429 when spent.
        The budget's headers are left for the response."""
        if self.limiter is None:
            return
        budget = await self.limiter.spend(key)
        if budget is None:
            return
        headers = budget.headers()
        if not budget.allowed:
            count_rate_limited("user" if key.startswith("user:") else "address")
            raise RateLimited(headers)
        request_state(request.scope)[RESPONSE_HEADERS_KEY] = headers


def record_refusal(refusal: Unauthorized) -> None:
    """Count a refused token by its reason, and log why (never the token)."""
    count_auth_failure(refusal.reason)
    if refusal.why is not None:
        logger.info("token refused: %s", refusal.why, extra={"auth_failure": refusal.reason})


def bearer_token(request: Request) -> str:
    """The token of the request's `Authorization: Bearer <token>` header; 401 without one."""
    headers = request.headers.getlist("authorization")
    if not headers:
        raise Unauthorized()
    if len(headers) > 1:
        raise RepeatedCredentials()
    header = headers[0]
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "the Authorization header must be 'Bearer <token>'", reason="malformed_header"
        )
    return token


def check_static_token(request: Request, expected: SecretStr | None) -> None:
    """With `expected` set (METRICS_TOKEN), the request must carry it as its bearer token."""
    if expected is None:
        return
    sent = bearer_token(request).encode()
    if not hmac.compare_digest(sent, expected.get_secret_value().encode()):
        raise Unauthorized("not the metrics token")


def client_key(request: Request) -> str:
    """The budget of an anonymous request: its client address's."""
    host = request.client.host if request.client else "unknown"
    return f"ip:{host}"
