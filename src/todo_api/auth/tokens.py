"""Bearer token verification (RFC 6750) for tokens from any identity provider.

HS256/384/512 tokens are checked against the shared secret; RS*, PS*, ES* and EdDSA tokens against
the provider's JWKS. Each key only accepts the algorithms of its own type, so `alg: none` and an
HS* token signed with a public key (algorithm confusion) are refused.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import orjson
from jwt import PyJWK

from todo_api.config import Settings
from todo_api.errors import IdentityProviderUnavailable, Unauthorized
from todo_api.users import is_valid_user_id

logger = logging.getLogger(__name__)

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_CURVES = frozenset({"Ed25519", "Ed448"})
VERIFIED_CACHE_SIZE = 10_000
# With no keys at all, a failed fetch is retried after at most this long.
NO_KEYS_RETRY_S = 5.0
MAX_JWKS_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Verified:
    user_id: str
    expires_at: float
    not_before: float
    generation: int | None  # the JWKS key set it was checked against; None for the secret


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
        self.timeout = timeout
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at = float("-inf")  # last successful fetch
        self._attempted_at = float("-inf")  # last fetch, successful or not
        self._inflight: asyncio.Future[None] | None = None
        self.generation = 0  # incremented whenever a fetch replaces the key set

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        await self._client.aclose()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.ttl

    async def key_for(self, kid: str | None) -> _Key | None:
        key = self._lookup(kid)
        stale = self.stale
        if key is not None and not stale:
            return key
        since_attempt = time.monotonic() - self._attempted_at
        if not self._keys:
            due = since_attempt >= min(self.min_refresh, NO_KEYS_RETRY_S)
        elif stale:
            due = since_attempt >= min(self.ttl, NO_KEYS_RETRY_S)
        else:  # a `kid` we do not know: maybe the provider rotated its keys
            due = since_attempt >= self.min_refresh
        if due or self._inflight is not None:  # a fetch in flight is joined, not skipped
            await self._refresh()
        elif not self._keys:
            raise IdentityProviderUnavailable()  # the last attempt failed moments ago
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> _Key | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        """Fetch the key set once for everyone who needs it now; without any usable keys, 503."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._fetch_done)
        await asyncio.shield(self._inflight)

    def _fetch_done(self, task: asyncio.Future[None]) -> None:
        self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here too, so an unawaited failure is not reported

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            # The timeout bounds the whole fetch, not each read: a provider trickling bytes
            # cannot hold requests for longer than AUTH_JWKS_TIMEOUT.
            async with asyncio.timeout(self.timeout):
                document = await self._download()
            keys = self._parse(orjson.loads(document))
        except (httpx.HTTPError, ValueError, TimeoutError) as exc:
            logger.warning("cannot fetch JWKS from %s: %s", self.url, type(exc).__name__)
            if not self._keys or not self.stale:
                # No keys at all, or a new `kid` we cannot check: the provider is needed.
                raise IdentityProviderUnavailable() from exc
            return  # keep serving the last good keys until the provider is back
        self._keys = keys
        self._fetched_at = self._attempted_at
        self.generation += 1

    async def _download(self) -> bytes:
        headers = {"Accept": "application/json"}
        async with self._client.stream("GET", self.url, headers=headers) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
        return bytes(body)

    @staticmethod
    def _parse(document: Any) -> dict[str | None, _Key]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str | None, _Key] = {}
        for data in document["keys"]:
            key = _usable_key(data)
            if key is not None:
                keys[data.get("kid")] = key
        return keys


def _usable_key(data: Any) -> _Key | None:
    """A signing key from one JWKS entry, or None for an entry this service cannot use; one odd
    entry never spoils the rest of the set."""
    if not isinstance(data, dict) or data.get("use", "sig") != "sig":
        return None
    if any(not isinstance(data.get(name, ""), str) for name in ("kid", "alg", "crv", "kty")):
        return None
    algorithms = _allowed_algorithms(data)
    if not algorithms:
        return None
    try:
        jwk = PyJWK(data, algorithm=data.get("alg") or min(algorithms))
    except Exception:  # a malformed key of any kind is skipped
        return None
    return _Key(jwk=jwk, algorithms=algorithms)


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
        self._max_ttl = settings.auth_max_token_ttl
        self._claim = settings.auth_user_claim
        # Tokens already verified: the same bytes verify the same way until they expire, so a
        # front end reusing its token costs one dictionary lookup instead of a signature check.
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    async def verify(self, token: str) -> str:
        cached = self._verified.get(token)
        if cached is not None:
            if self._still_valid(cached):
                return cached.user_id
            del self._verified[token]
        user_id, claims, generation = await self._verify_signed(token)
        self._remember(token, user_id, claims, generation)
        return user_id

    def _still_valid(self, cached: _Verified) -> bool:
        now = time.time()
        if not cached.not_before - self._leeway <= now < cached.expires_at + self._leeway:
            return False
        if cached.generation is None:
            return True
        # A JWKS token is re-checked once the key set is due for a refresh or has changed, so
        # a key the provider retired stops working like its uncached tokens do.
        jwks = self._jwks
        return jwks is not None and jwks.generation == cached.generation and not jwks.stale

    def _remember(
        self, token: str, user_id: str, claims: Mapping[str, Any], generation: int | None
    ) -> None:
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        self._verified[token] = _Verified(
            user_id=user_id,
            expires_at=float(claims["exp"]),
            not_before=float(claims.get("nbf", 0)),
            generation=generation,
        )

    async def _verify_signed(self, token: str) -> tuple[str, dict[str, Any], int | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token", reason="malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthorized("malformed token", reason="malformed")
        key = await self._key_for(alg, header.get("kid"))
        generation = None if isinstance(key, bytes) or self._jwks is None else self._jwks.generation
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # The times are checked below, once they are known to be numbers: PyJWT would
                # read `true` as 1 (expired) and "1700000000" as that instant.
                options={
                    "require": ["exp"],
                    "verify_aud": self._audience is not None,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise Unauthorized("wrong audience", reason="wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("wrong issuer", reason="wrong_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"missing claim {exc.claim}", reason="missing_claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("bad signature", reason="bad_signature") from None
        except jwt.PyJWTError:
            raise Unauthorized("malformed token", reason="malformed") from None
        self._check_times(claims)
        user_id = claims.get(self._claim)
        if not is_valid_user_id(user_id):
            raise Unauthorized(
                f"claim {self._claim} is not a valid user id", reason="invalid_user_id"
            )
        return user_id, claims, generation

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        """`exp`, `nbf` and `iat` are NumericDates (RFC 7519 §2): JSON numbers, finite, not
        booleans or numeric strings. The token is expired at `exp`, not valid before `nbf` or
        `iat` (each give or take AUTH_LEEWAY_SECONDS, as PyJWT judges them), and `exp` lies at most
        AUTH_MAX_TOKEN_TTL ahead."""
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if name in claims and not _numeric_date(value):
                raise Unauthorized(f"claim {name} is not a number", reason="malformed")
        now = time.time()
        if float(claims["exp"]) <= now - self._leeway:
            raise Unauthorized("token expired", reason="expired")
        for name in ("nbf", "iat"):
            if name in claims and float(claims[name]) > now + self._leeway:
                raise Unauthorized("token not yet valid", reason="not_yet_valid")
        ahead = float(claims["exp"]) - now
        if ahead > self._max_ttl + self._leeway:
            raise Unauthorized(
                f"exp is {ahead / 3600:.1f} h ahead, "
                f"more than AUTH_MAX_TOKEN_TTL ({self._max_ttl} s)",
                reason="lifetime_too_long",
            )

    async def _key_for(self, alg: str, kid: object) -> Any:
        if alg in HMAC_ALGORITHMS and self._secret is not None:
            return self._secret
        if alg in HMAC_ALGORITHMS or self._jwks is None:
            raise Unauthorized("algorithm not accepted", reason="algorithm_not_accepted")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token", reason="malformed")
        key = await self._jwks.key_for(kid)
        if key is None:
            raise Unauthorized("unknown signing key", reason="unknown_key")
        if alg not in key.algorithms:
            raise Unauthorized("algorithm not accepted", reason="algorithm_not_accepted")
        return key.jwk.key


def _numeric_date(value: object) -> bool:
    if type(value) not in (int, float):
        return False  # not a bool (an int subclass), a string or anything else
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except OverflowError:  # an integer beyond any float: no instant
        return False


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
