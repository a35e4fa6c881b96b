"""TokenVerifier and JWKSCache under test: the keys a provider signs with, and how a refused or
unavailable verification must look."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.keys import ec_key, ed25519_key, rsa_key
from tests.support.tokens import challenge, public_description
from todo_api.auth.tokens import JWKSCache, TokenVerifier
from todo_api.errors import IdentityProviderUnavailable, Unauthorized

RSA = rsa_key()
EC = ec_key()
ED = ed25519_key()

MakeVerifier = Callable[..., TokenVerifier]
MakeCache = Callable[..., JWKSCache]


async def refusal(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401
    return caught.value


async def assert_refused(verifier: TokenVerifier, token: str, why: str) -> None:
    """Refused for the precise reason `why` (kept for the log), told to the client generically."""
    error = await refusal(verifier, token)
    assert error.why == why
    assert error.headers == {"WWW-Authenticate": challenge(why)}
    assert error.detail == f"The bearer token is not valid: {public_description(why)}."


async def assert_unavailable(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(IdentityProviderUnavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "5"}
