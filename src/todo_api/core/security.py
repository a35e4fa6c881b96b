"""Bearer token verification (RFC 6750) for tokens from any identity provider.

HS256/384/512 tokens are checked against the shared secret; RS*, PS*, ES* and EdDSA tokens against
the provider's JWKS. Each key only accepts the algorithms of its own type, so `alg: none` and an
HS* token signed with a public key (algorithm confusion) are refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import httpx
import jwt
from jwt import PyJWK

from todo_api.core.config import Settings
from todo_api.core.errors import AppError, ServiceUnavailable
from todo_api.models.task import USER_ID_MAX_LENGTH

logger = logging.getLogger(__name__)

REALM = "todo-api"
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_CURVES = frozenset({"Ed25519", "Ed448"})


class Unauthorized(AppError):
    """No usable credentials: 401 with a `WWW-Authenticate` challenge."""

    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"

    def __init__(self, description: str | None = None) -> None:
        challenge = f'Bearer realm="{REALM}"'
        if description is not None:
            challenge += f', error="invalid_token", error_description="{description}"'
        detail = f"The bearer token is not valid: {description}." if description else None
        super().__init__(
            detail or "This endpoint needs an `Authorization: Bearer <token>` header.",
            headers={"WWW-Authenticate": challenge},
        )


class Forbidden(AppError):
    status = 403
    type = "/problems/forbidden"
    title = "Forbidden"

    def __init__(self) -> None:
        super().__init__("The token does not grant access to this user's tasks.")


class IdentityProviderUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The identity provider's keys cannot be fetched; retry shortly.")


def is_valid_user_id(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= USER_ID_MAX_LENGTH
        and all("!" <= ch <= "~" and ch != "/" for ch in value)
    )


@dataclass(frozen=True)
class _Key:
    jwk: PyJWK
    algorithms: frozenset[str]


def _allowed_algorithms(data: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a JWK may verify: by its own `alg` if it names one, else by its type."""
    kty, crv = data.get("kty"), data.get("crv")
    if kty == "RSA":
        allowed = RSA_ALGORITHMS
    elif kty == "EC" and crv in EC_ALGORITHMS_BY_CURVE:
        allowed = frozenset({EC_ALGORITHMS_BY_CURVE[crv]})
    elif kty == "OKP" and crv in OKP_CURVES:
        allowed = frozenset({"EdDSA"})
    else:
        return frozenset()  # symmetric ("oct") and unknown keys never verify anything here
    alg = data.get("alg")
    if alg is not None:
        return allowed & {alg}
    return allowed


class JWKSCache:
    """The provider's signing keys: cached, refetched when stale or on an unknown `kid` (at most
    once per `min_refresh` seconds), fetched with a bounded timeout."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        ttl: float,
        min_refresh: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._client.aclose()

    async def key_for(self, kid: str | None) -> _Key | None:
        now = time.monotonic()
        key = self._lookup(kid)
        stale = now - self._fetched_at > self.ttl
        if key is not None and not stale:
            return key
        if stale or now - self._fetched_at >= self.min_refresh:
            await self._refresh(stale=stale)
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> _Key | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, *, stale: bool) -> None:
        fetched_before = self._fetched_at
        async with self._lock:
            if self._fetched_at != fetched_before:
                return  # another request refreshed while this one waited
            try:
                response = await self._client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = self._parse(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("cannot fetch JWKS from %s: %s", self.url, type(exc).__name__)
                if stale and not self._keys:
                    raise IdentityProviderUnavailable() from exc
                if stale:
                    # Keep serving the last good keys, but let the next request try again soon.
                    self._fetched_at = time.monotonic() - self.ttl + self.min_refresh
                    return
                raise IdentityProviderUnavailable() from exc
            self._keys = keys
            self._fetched_at = time.monotonic()

    @staticmethod
    def _parse(document: Any) -> dict[str | None, _Key]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str | None, _Key] = {}
        for data in document["keys"]:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            algorithms = _allowed_algorithms(data)
            if not algorithms:
                continue
            try:
                jwk = PyJWK(data, algorithm=data.get("alg") or min(algorithms))
            except jwt.PyJWTError:
                continue
            keys[data.get("kid")] = _Key(jwk=jwk, algorithms=algorithms)
        return keys


class TokenVerifier:
    """Turns a bearer token into the user id it proves, or raises Unauthorized."""

    def __init__(self, settings: Settings, *, jwks: JWKSCache | None = None) -> None:
        secret = settings.auth_jwt_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._jwks = jwks
        if self._jwks is None and settings.auth_jwks_url is not None:
            self._jwks = JWKSCache(
                str(settings.auth_jwks_url),
                timeout=settings.auth_jwks_timeout,
                ttl=settings.auth_jwks_cache_seconds,
                min_refresh=settings.auth_jwks_min_refresh_seconds,
            )
        self._audience = settings.auth_jwt_audience
        self._issuer = settings.auth_jwt_issuer
        self._leeway = settings.auth_leeway_seconds
        self._claim = settings.auth_user_claim

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    async def verify(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthorized("malformed token")
        key = await self._key_for(alg, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing claim {exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("bad signature") from None
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        user_id = claims.get(self._claim)
        if not is_valid_user_id(user_id):
            raise Unauthorized(f"claim {self._claim} is not a valid user id")
        return user_id

    async def _key_for(self, alg: str, kid: object) -> Any:
        if alg in HMAC_ALGORITHMS and self._secret is not None:
            return self._secret
        if alg in HMAC_ALGORITHMS or self._jwks is None:
            raise Unauthorized("algorithm not accepted")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token")
        key = await self._jwks.key_for(kid)
        if key is None:
            raise Unauthorized("unknown signing key")
        if alg not in key.algorithms:
            raise Unauthorized("algorithm not accepted")
        return key.jwk.key


def issue_token(settings: Settings, user_id: str, *, ttl: int) -> str:
    """A token signed with the configured secret, for development and trying the API."""
    if settings.auth_jwt_secret is None:
        raise ValueError("no AUTH_JWT_SECRET (or BETTER_AUTH_SECRET) is configured")
    if not is_valid_user_id(user_id):
        raise ValueError("the user id must be 1-255 printable ASCII characters, no space or '/'")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        settings.auth_user_claim: user_id,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
    }
    if settings.auth_jwt_audience:
        claims["aud"] = settings.auth_jwt_audience
    if settings.auth_jwt_issuer:
        claims["iss"] = settings.auth_jwt_issuer
    return jwt.encode(claims, settings.auth_jwt_secret.get_secret_value(), algorithm="HS256")
