"""Fixtures of the token tests: verifiers and JWKS caches closed after each test, and a JWKS
server that lists the RSA, EC and Ed25519 keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.databases import make_settings
from tests.support.jwks import JWKSServer, jwks_server
from tests.support.verifiers import EC, ED, RSA, MakeCache, MakeVerifier
from todo_api.auth.tokens import JWKSCache, TokenVerifier


@pytest.fixture
def jwks() -> Iterator[JWKSServer]:
    with jwks_server([RSA.public_jwk, EC.public_jwk, ED.public_jwk]) as server:
        yield server


@pytest.fixture
async def make_verifier() -> AsyncIterator[MakeVerifier]:
    """Builds TokenVerifiers from settings values (or an explicit cache); closes them after."""
    made: list[TokenVerifier] = []

    def build(*, jwks: JWKSCache | None = None, **values: Any) -> TokenVerifier:
        verifier = TokenVerifier(make_settings(**values), jwks=jwks)
        made.append(verifier)
        return verifier

    yield build
    for verifier in made:
        await verifier.close()


@pytest.fixture
async def make_cache() -> AsyncIterator[MakeCache]:
    """Builds JWKSCaches with sub-second intervals (settings only take whole seconds)."""
    made: list[JWKSCache] = []

    def build(
        url: str, *, timeout: float = 2.0, ttl: float = 300.0, min_refresh: float = 30.0
    ) -> JWKSCache:
        cache = JWKSCache(url, timeout=timeout, ttl=ttl, min_refresh=min_refresh)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        await cache.close()
