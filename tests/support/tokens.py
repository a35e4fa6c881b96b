"""Real signed tokens for the authentication tests: valid ones, and every way one goes wrong
(expired, unsigned, tampered, signed by hand with an odd header), plus Better Auth's shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import get_default_algorithms

from tests.support.factories import JSON
from tests.support.keys import PrivateKey, SigningKey

SECRET = "test-secret-for-hs256-of-at-least-32-bytes"
OTHER_SECRET = "another-secret-for-hs256-at-least-32-bytes"
AUDIENCE = "todo-api"
ISSUER = "https://auth.example.test"
REALM_CHALLENGE = 'Bearer realm="todo-api"'


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: Any) -> bytes:
    """JSON as JavaScript's `JSON.stringify` writes it (what jose signs)."""
    return json.dumps(value, separators=(",", ":")).encode()


def public_description(why: str) -> str:
    """What a client is told of a refused token whose precise cause is `why`: only whether it
    expired."""
    return "token expired" if why == "token expired" else "invalid token"


def challenge(why: str) -> str:
    """The `WWW-Authenticate` value RFC 6750 prescribes for a token refused because of `why`."""
    description = public_description(why)
    return f'{REALM_CHALLENGE}, error="invalid_token", error_description="{description}"'


def claims_for(subject: str | None, /, *, ttl: int = 300, **extra: Any) -> JSON:
    """Registered claims for `subject` (as `sub`) valid for `ttl` seconds, plus `extra`."""
    now = int(time.time())
    claims: JSON = {"iat": now, "exp": now + ttl}
    if subject is not None:
        claims["sub"] = subject
    claims.update(extra)
    return claims


def hs256_token(subject: str | None, /, *, secret: str = SECRET, **extra: Any) -> str:
    return jwt.encode(claims_for(subject, **extra), secret, algorithm="HS256")


def unsigned_token(subject: str, /, *, kid: str | None = None, **extra: Any) -> str:
    """`alg: none`: a token with no signature at all."""
    header = {"alg": "none"} if kid is None else {"alg": "none", "kid": kid}
    return f"{b64url(compact_json(header))}.{b64url(compact_json(claims_for(subject, **extra)))}."


def raw_token(header: Mapping[str, Any], claims: Mapping[str, Any], private: PrivateKey) -> str:
    """A token signed by hand with `header` as given (PyJWT would refuse to write some)."""
    algorithm = get_default_algorithms()[header["alg"]]
    signing_input = f"{b64url(compact_json(dict(header)))}.{b64url(compact_json(dict(claims)))}"
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(private))
    return f"{signing_input}.{b64url(signature)}"


def hmac_token(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    """An HS256 token built by hand, so any bytes (a public key's PEM) can be the secret."""
    signing_input = f"{b64url(compact_json(dict(header)))}.{b64url(compact_json(dict(claims)))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def with_payload(token: str, **changes: Any) -> str:
    """`token` with its payload changed and its original signature kept (a tampered token)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(compact_json(claims))}.{signature}"


def better_auth_token(
    key: SigningKey, user_id: str, *, base_url: str = "http://localhost:3000", ttl: int = 900
) -> str:
    """A token shaped exactly like Better Auth's JWT plugin output (jose `SignJWT`).

    Header `{"alg":"EdDSA","kid":...}` (no `typ`); payload: the session's user object, then
    `iat`, `sub`, `exp`, `iss` and `aud` (both the app's base URL), 15 minutes by default.
    """
    now = int(time.time())
    created = "2025-05-01T09:30:00.000Z"
    payload: JSON = {
        "iat": now,
        "name": "Alice Example",
        "email": "alice@example.com",
        "emailVerified": False,
        "image": None,
        "createdAt": created,
        "updatedAt": created,
        "id": user_id,
        "sub": user_id,
        "exp": now + ttl,
        "iss": base_url,
        "aud": base_url,
    }
    header = {"alg": key.algorithm, "kid": key.kid}
    signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(payload))}"
    assert isinstance(key.private, ed25519.Ed25519PrivateKey)
    signature = key.private.sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
