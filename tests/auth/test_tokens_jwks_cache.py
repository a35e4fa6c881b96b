"""JWKSCache against a real JWKS server on localhost: keys fetched once and refreshed in time,
and a provider that is down, slow or answers garbage (503, never a hang)."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.jwks import JWKSServer, SilentServer, jwks_server, refused_url
from tests.support.keys import ed25519_key
from tests.support.tokens import claims_for
from tests.support.verifiers import (
    EC,
    ED,
    RSA,
    MakeCache,
    MakeVerifier,
    assert_refused,
    assert_unavailable,
    refusal,
)
from todo_api.errors import IdentityProviderUnavailable


class TestKeyCaching:
    async def test_keys_are_fetched_once_for_many_tokens(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)

        for n, key in enumerate((RSA, EC, ED, RSA, EC, ED)):
            assert await verifier.verify(key.sign(claims_for(f"user-{n}"))) == f"user-{n}"

        assert jwks.fetches == 1

    async def test_concurrent_first_requests_share_one_fetch(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        tokens = [key.sign(claims_for(f"user-{i}")) for i, key in enumerate([RSA, EC, ED] * 4)]

        users = await asyncio.gather(*(verifier.verify(token) for token in tokens))

        assert users == [f"user-{i}" for i in range(12)]
        assert jwks.fetches == 1

    async def test_unknown_kids_refetch_at_most_once_per_interval(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(jwks=make_cache(jwks.url, min_refresh=60))
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"

        for n in range(5):
            await assert_refused(
                verifier,
                ED.with_kid(f"unknown-{n}").sign(claims_for("alice")),
                "unknown signing key",
            )

        assert jwks.fetches == 1

    async def test_a_rotated_key_is_accepted_after_the_refetch(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(jwks=make_cache(jwks.url, min_refresh=0.2))
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"
        rotated = ed25519_key(kid="ed-2", index=1)
        jwks.serve([rotated.public_jwk])
        token = rotated.sign(claims_for("alice"))
        await assert_refused(verifier, token, "unknown signing key")  # within the interval
        await asyncio.sleep(0.25)

        assert await verifier.verify(token) == "alice"
        assert jwks.fetches == 2

    async def test_an_unknown_kid_refetches_immediately_when_the_interval_is_zero(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url, auth_jwks_min_refresh_seconds=0)
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"
        rotated = ed25519_key(kid="ed-2", index=1)
        jwks.serve([ED.public_jwk, rotated.public_jwk])

        assert await verifier.verify(rotated.sign(claims_for("alice"))) == "alice"
        assert jwks.fetches == 2

    async def test_stale_keys_are_refetched_after_the_ttl(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(jwks=make_cache(jwks.url, ttl=0.2, min_refresh=0.1))
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"
        jwks.serve([RSA.public_jwk])  # the provider retired the Ed25519 key
        await asyncio.sleep(0.25)

        await assert_refused(verifier, ED.sign(claims_for("bob")), "unknown signing key")
        assert await verifier.verify(RSA.sign(claims_for("carol"))) == "carol"
        assert jwks.fetches == 2

    async def test_a_token_of_a_retired_key_is_refused_once_the_keys_are_refreshed(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        # Removing a key from the JWKS is how a provider revokes it: tokens it signed, even
        # ones accepted before, must stop working once the service has the new key set.
        verifier = make_verifier(jwks=make_cache(jwks.url, ttl=0.2, min_refresh=0.1))
        token = ED.sign(claims_for("alice", ttl=3600))
        assert await verifier.verify(token) == "alice"
        jwks.serve([RSA.public_jwk])
        await asyncio.sleep(0.25)
        assert await verifier.verify(RSA.sign(claims_for("bob"))) == "bob"  # keys refreshed

        await assert_refused(verifier, token, "unknown signing key")
        assert jwks.fetches == 2

    async def test_stale_keys_keep_serving_while_the_provider_fails(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(jwks=make_cache(jwks.url, ttl=0.2, min_refresh=10))
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"
        jwks.status = 500
        await asyncio.sleep(0.25)

        assert await verifier.verify(ED.sign(claims_for("bob"))) == "bob"
        assert await verifier.verify(ED.sign(claims_for("carol"))) == "carol"
        assert jwks.fetches == 2  # the failed refresh is not retried on every request

    async def test_unknown_kids_while_the_provider_fails_refetch_at_most_once_per_interval(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(jwks=make_cache(jwks.url, min_refresh=0.2))
        assert await verifier.verify(ED.sign(claims_for("alice"))) == "alice"
        jwks.status = 500
        await asyncio.sleep(0.25)

        await assert_unavailable(verifier, ED.with_kid("new-1").sign(claims_for("alice")))
        for n in range(2, 6):
            await refusal(verifier, ED.with_kid(f"new-{n}").sign(claims_for("alice")))

        assert jwks.fetches == 2
        assert await verifier.verify(ED.sign(claims_for("carol"))) == "carol"


class TestProviderUnavailable:
    async def test_a_refused_connection_is_503(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwks_url=refused_url())

        await assert_unavailable(verifier, ED.sign(claims_for("alice")))

    async def test_a_provider_that_never_answers_is_503_after_the_timeout(
        self, make_verifier: MakeVerifier
    ) -> None:
        with SilentServer() as silent:
            verifier = make_verifier(auth_jwks_url=silent.url, auth_jwks_timeout=0.3)
            # Bounded: far inside this guard, or the test fails with TimeoutError.
            async with asyncio.timeout(5):
                await assert_unavailable(verifier, ED.sign(claims_for("alice")))
            assert silent.connections == 1

    async def test_concurrent_requests_share_one_failing_fetch(
        self, make_verifier: MakeVerifier
    ) -> None:
        # Each request must fail within the timeout, not queue behind the others' fetches.
        with SilentServer() as silent:
            verifier = make_verifier(auth_jwks_url=silent.url, auth_jwks_timeout=0.3)
            tokens = [ED.sign(claims_for(f"user-{n}")) for n in range(5)]
            async with asyncio.timeout(5):
                outcomes = await asyncio.gather(
                    *(verifier.verify(token) for token in tokens), return_exceptions=True
                )
            assert [type(outcome) for outcome in outcomes] == [IdentityProviderUnavailable] * 5
            assert silent.connections == 1

    async def test_a_failed_fetch_is_not_retried_within_the_interval(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        jwks.status = 500
        verifier = make_verifier(auth_jwks_url=jwks.url, auth_jwks_min_refresh_seconds=30)

        for _ in range(3):
            await assert_unavailable(verifier, ED.sign(claims_for("alice")))

        assert jwks.fetches == 1

    @pytest.mark.parametrize("status", [404, 500, 503])
    async def test_an_error_status_is_503(
        self, make_verifier: MakeVerifier, jwks: JWKSServer, status: int
    ) -> None:
        jwks.status = status
        verifier = make_verifier(auth_jwks_url=jwks.url)

        await assert_unavailable(verifier, ED.sign(claims_for("alice")))

    @pytest.mark.parametrize(
        "document",
        [b"<html>maintenance</html>", b'{"keys": {}}', b"[]", b'{"kid": "x"}'],
        ids=["html", "keys-not-a-list", "array", "no-keys"],
    )
    async def test_a_document_that_is_not_a_jwks_is_503(
        self, make_verifier: MakeVerifier, jwks: JWKSServer, document: bytes
    ) -> None:
        jwks.document = document
        verifier = make_verifier(auth_jwks_url=jwks.url)

        await assert_unavailable(verifier, ED.sign(claims_for("alice")))

    async def test_a_redirect_is_not_followed(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        with jwks_server([ED.public_jwk]) as elsewhere:
            jwks.status = 302
            jwks.location = elsewhere.url
            verifier = make_verifier(auth_jwks_url=jwks.url)

            await assert_unavailable(verifier, ED.sign(claims_for("alice")))
            assert elsewhere.fetches == 0

    async def test_the_provider_is_retried_once_it_is_back(
        self, make_verifier: MakeVerifier, make_cache: MakeCache, jwks: JWKSServer
    ) -> None:
        jwks.status = 500
        verifier = make_verifier(jwks=make_cache(jwks.url, min_refresh=0.2))
        token = ED.sign(claims_for("alice"))
        await assert_unavailable(verifier, token)
        jwks.status = 200
        await asyncio.sleep(0.25)

        assert await verifier.verify(token) == "alice"
        assert jwks.fetches == 2


class _TricklingHandler(BaseHTTPRequestHandler):
    """Sends headers, then one byte of a never-ending body every 0.2 s."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestSlowProvider:
    async def test_a_trickling_provider_is_503_within_the_timeout(
        self, make_verifier: MakeVerifier, make_cache: MakeCache
    ) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _TricklingHandler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            cache = make_cache(f"http://127.0.0.1:{port}/jwks", timeout=0.5)
            verifier = make_verifier(jwks=cache)
            started = time.monotonic()
            # Each read succeeds within the timeout; only a bound on the whole fetch stops it.
            async with asyncio.timeout(5):
                await assert_unavailable(verifier, ED.sign(claims_for("alice")))
            assert time.monotonic() - started < 2
        finally:
            server.shutdown()
            server.server_close()
