"""TokenVerifier and JWKSCache against real keys and a real JWKS server on localhost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest

from tests.auth_support import (
    AUDIENCE,
    ISSUER,
    OTHER_SECRET,
    SECRET,
    JWKSServer,
    SigningKey,
    SilentServer,
    b64url,
    challenge,
    claims_for,
    ec_key,
    ed25519_key,
    hmac_token,
    hs256_token,
    jwks_server,
    p384_key,
    raw_token,
    refused_url,
    rsa_key,
    unsigned_token,
    with_payload,
)
from tests.conftest import make_settings
from todo_api.auth.tokens import JWKSCache, TokenVerifier, issue_token
from todo_api.errors import IdentityProviderUnavailable, Unauthorized

RSA = rsa_key()
EC = ec_key()
ED = ed25519_key()

LONG_SECRET = "a-64-byte-secret-long-enough-for-hs512-" + "s" * 25

MakeVerifier = Callable[..., TokenVerifier]
MakeCache = Callable[..., JWKSCache]


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


async def refusal(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert caught.value.status == 401
    return caught.value


async def assert_refused(verifier: TokenVerifier, token: str, description: str) -> None:
    error = await refusal(verifier, token)
    assert error.headers == {"WWW-Authenticate": challenge(description)}
    assert error.detail == f"The bearer token is not valid: {description}."


async def assert_unavailable(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(IdentityProviderUnavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "5"}


class TestSharedSecretTokens:
    async def test_a_token_signed_with_the_secret_gives_its_subject(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        assert await verifier.verify(hs256_token("alice")) == "alice"

    @pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
    async def test_longer_hmac_algorithms_are_accepted(
        self, make_verifier: MakeVerifier, algorithm: str
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=LONG_SECRET)
        token = jwt.encode(claims_for("alice"), LONG_SECRET, algorithm=algorithm)

        assert await verifier.verify(token) == "alice"

    async def test_a_token_signed_with_another_secret_is_refused(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        await assert_refused(verifier, hs256_token("alice", secret=OTHER_SECRET), "bad signature")

    async def test_a_tampered_payload_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        tampered = with_payload(hs256_token("alice"), sub="bob")

        await assert_refused(verifier, tampered, "bad signature")

    async def test_an_unsigned_token_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        await assert_refused(verifier, unsigned_token("alice"), "algorithm not accepted")

    async def test_an_asymmetric_token_is_refused_without_a_jwks(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        await assert_refused(verifier, RSA.sign(claims_for("alice")), "algorithm not accepted")

    @pytest.mark.parametrize(
        "token",
        ["garbage", "a.b.c", "", "....", "eyJhbGciOiJIUzI1NiJ9.e30"],
        ids=["word", "three-junk-parts", "empty", "dots", "two-parts"],
    )
    async def test_garbage_is_malformed(self, make_verifier: MakeVerifier, token: str) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        await assert_refused(verifier, token, "malformed token")

    async def test_a_header_without_alg_is_malformed(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        token = hs256_token("alice")
        headerless = f"{b64url(b'{}')}.{token.split('.', 1)[1]}"

        await assert_refused(verifier, headerless, "malformed token")


class TestTimeClaims:
    async def test_an_expired_token_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_leeway_seconds=0)
        token = hs256_token("alice", ttl=-1)

        await assert_refused(verifier, token, "token expired")

    async def test_expiry_within_the_leeway_is_tolerated(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_leeway_seconds=30)

        assert await verifier.verify(hs256_token("alice", ttl=-10)) == "alice"

    async def test_expiry_beyond_the_leeway_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_leeway_seconds=30)

        await assert_refused(verifier, hs256_token("alice", ttl=-60), "token expired")

    async def test_a_token_not_yet_valid_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        token = hs256_token("alice", nbf=int(time.time()) + 120)

        await assert_refused(verifier, token, "token not yet valid")

    async def test_a_token_issued_in_the_future_is_refused(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        token = hs256_token("alice", iat=int(time.time()) + 120)

        await assert_refused(verifier, token, "token not yet valid")

    async def test_a_token_without_expiry_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        token = jwt.encode({"sub": "alice", "iat": int(time.time())}, SECRET, algorithm="HS256")

        await assert_refused(verifier, token, "missing claim exp")


class TestAudienceAndIssuer:
    async def test_matching_audience_and_issuer_are_accepted(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(
            auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE, auth_jwt_issuer=ISSUER
        )
        token = hs256_token("alice", aud=AUDIENCE, iss=ISSUER)

        assert await verifier.verify(token) == "alice"

    async def test_an_audience_list_containing_ours_is_accepted(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE)
        token = hs256_token("alice", aud=["billing", AUDIENCE])

        assert await verifier.verify(token) == "alice"

    async def test_a_wrong_audience_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE)

        await assert_refused(verifier, hs256_token("alice", aud="billing"), "wrong audience")

    async def test_a_missing_audience_is_refused_when_one_is_configured(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE)

        await assert_refused(verifier, hs256_token("alice"), "missing claim aud")

    async def test_any_audience_is_accepted_when_none_is_configured(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        assert await verifier.verify(hs256_token("alice", aud="anything")) == "alice"

    async def test_a_wrong_issuer_is_refused(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_issuer=ISSUER)

        await assert_refused(
            verifier, hs256_token("alice", iss="https://evil.example"), "wrong issuer"
        )

    async def test_a_missing_issuer_is_refused_when_one_is_configured(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_issuer=ISSUER)

        await assert_refused(verifier, hs256_token("alice"), "missing claim iss")


class TestUserClaim:
    @pytest.mark.parametrize(
        "value",
        [None, "", "has space", "a/b", "caf\u00e9", "x" * 256],
        ids=["missing", "empty", "space", "slash", "non-ascii", "too-long"],
    )
    async def test_a_subject_that_is_not_a_user_id_is_refused(
        self, make_verifier: MakeVerifier, value: str | None
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        await assert_refused(verifier, hs256_token(value), "claim sub is not a valid user id")

    @pytest.mark.parametrize("value", [42, ["alice"]], ids=["number", "list"])
    async def test_a_subject_that_is_not_a_string_is_malformed(
        self, make_verifier: MakeVerifier, value: object
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        token = jwt.encode(claims_for(None, sub=value), SECRET, algorithm="HS256")

        await assert_refused(verifier, token, "malformed token")

    @pytest.mark.parametrize("value", [42, ["alice"], None], ids=["number", "list", "null"])
    async def test_a_configured_claim_that_is_not_a_string_is_refused(
        self, make_verifier: MakeVerifier, value: object
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_user_claim="user_id")

        await assert_refused(
            verifier, hs256_token("alice", user_id=value), "claim user_id is not a valid user id"
        )

    async def test_the_longest_user_id_is_accepted(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        longest = "u" * 255

        assert await verifier.verify(hs256_token(longest)) == longest

    async def test_a_configured_claim_names_the_user(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_user_claim="user_id")
        token = hs256_token("service-account", user_id="alice")

        assert await verifier.verify(token) == "alice"

    async def test_sub_is_ignored_when_another_claim_is_configured(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_user_claim="user_id")

        await assert_refused(verifier, hs256_token("alice"), "claim user_id is not a valid user id")


class TestProviderKeys:
    @pytest.mark.parametrize("key", [RSA, EC, ED], ids=["RS256", "ES256", "EdDSA"])
    async def test_each_key_type_verifies_its_own_tokens(
        self, make_verifier: MakeVerifier, jwks: JWKSServer, key: SigningKey
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)

        assert await verifier.verify(key.sign(claims_for("alice"))) == "alice"

    async def test_a_token_signed_by_a_key_the_jwks_does_not_list_is_refused(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        impostor = rsa_key(kid=RSA.kid, index=1)

        await assert_refused(verifier, impostor.sign(claims_for("alice")), "bad signature")

    async def test_an_unsigned_token_is_refused(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = unsigned_token("alice", kid=RSA.kid)

        await assert_refused(verifier, token, "algorithm not accepted")

    async def test_an_hs256_token_is_refused_without_a_secret(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)

        await assert_refused(verifier, hs256_token("alice"), "algorithm not accepted")

    async def test_the_public_key_used_as_an_hmac_secret_is_refused(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        # Algorithm confusion: the attacker knows the public key and signs HS256 with its PEM.
        verifier = make_verifier(auth_jwks_url=jwks.url)
        forged = hmac_token(
            {"alg": "HS256", "typ": "JWT", "kid": RSA.kid}, claims_for("alice"), RSA.public_pem()
        )

        await assert_refused(verifier, forged, "algorithm not accepted")

    async def test_the_public_key_as_hmac_secret_fails_the_shared_secret_too(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url, auth_jwt_secret=SECRET)
        forged = hmac_token(
            {"alg": "HS256", "typ": "JWT", "kid": RSA.kid}, claims_for("alice"), RSA.public_pem()
        )

        await assert_refused(verifier, forged, "bad signature")

    async def test_a_symmetric_key_in_the_jwks_is_never_used(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        shared = b"a-symmetric-key-published-by-mistake!!"
        jwks.serve([{"kty": "oct", "kid": "oct-1", "alg": "HS256", "k": b64url(shared)}])
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = hmac_token({"alg": "HS256", "kid": "oct-1"}, claims_for("alice"), shared)

        await assert_refused(verifier, token, "algorithm not accepted")

    async def test_a_symmetric_key_cannot_be_named_by_an_asymmetric_token(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        jwks.serve([{"kty": "oct", "kid": "oct-1", "k": b64url(b"k" * 32)}, RSA.public_jwk])
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = RSA.with_kid("oct-1").sign(claims_for("alice"))

        await assert_refused(verifier, token, "unknown signing key")

    async def test_a_key_pinned_to_rs256_refuses_a_ps256_token(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = RSA.sign(claims_for("alice"), algorithm="PS256")

        await assert_refused(verifier, token, "algorithm not accepted")

    async def test_an_rsa_key_without_alg_accepts_ps256(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        unpinned = {k: v for k, v in RSA.public_jwk.items() if k != "alg"}
        jwks.serve([unpinned])
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = RSA.sign(claims_for("alice"), algorithm="PS256")

        assert await verifier.verify(token) == "alice"

    async def test_a_p256_key_refuses_another_curves_algorithm(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        unpinned = {k: v for k, v in EC.public_jwk.items() if k != "alg"}
        jwks.serve([unpinned])
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = p384_key().with_kid(EC.kid).sign(claims_for("alice"))

        await assert_refused(verifier, token, "algorithm not accepted")

    async def test_an_encryption_key_is_not_used_to_verify(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        jwks.serve([{**RSA.public_jwk, "use": "enc"}])
        verifier = make_verifier(auth_jwks_url=jwks.url)

        await assert_refused(verifier, RSA.sign(claims_for("alice")), "unknown signing key")

    async def test_a_token_without_kid_uses_the_only_key(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        jwks.serve([ED.public_jwk])
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = jwt.encode(claims_for("alice"), ED.private, algorithm="EdDSA")

        assert await verifier.verify(token) == "alice"

    async def test_a_token_without_kid_is_refused_when_several_keys_exist(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = jwt.encode(claims_for("alice"), ED.private, algorithm="EdDSA")

        await assert_refused(verifier, token, "unknown signing key")

    async def test_a_non_string_kid_is_malformed(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url)
        token = raw_token({"alg": "EdDSA", "kid": 7}, claims_for("alice"), ED.private)

        await assert_refused(verifier, token, "malformed token")

    async def test_secret_and_jwks_configured_together_both_verify(
        self, make_verifier: MakeVerifier, jwks: JWKSServer
    ) -> None:
        verifier = make_verifier(auth_jwks_url=jwks.url, auth_jwt_secret=SECRET)

        assert await verifier.verify(hs256_token("alice")) == "alice"
        assert await verifier.verify(ED.sign(claims_for("bob"))) == "bob"


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


class TestIssueToken:
    def test_issues_an_hs256_token_for_the_user(self) -> None:
        settings = make_settings(auth_jwt_secret=SECRET)

        token = issue_token(settings, "alice", ttl=120)

        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
        assert set(claims) == {"sub", "iat", "exp"}
        assert claims["sub"] == "alice"
        assert claims["exp"] - claims["iat"] == 120

    def test_carries_the_configured_audience_and_issuer(self) -> None:
        settings = make_settings(
            auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE, auth_jwt_issuer=ISSUER
        )

        token = issue_token(settings, "alice", ttl=60)

        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
        assert claims["aud"] == AUDIENCE
        assert claims["iss"] == ISSUER

    async def test_the_verifier_accepts_what_it_issues(self, make_verifier: MakeVerifier) -> None:
        values: dict[str, Any] = {
            "auth_jwt_secret": SECRET,
            "auth_jwt_audience": AUDIENCE,
            "auth_jwt_issuer": ISSUER,
            "auth_user_claim": "uid",
        }
        verifier = make_verifier(**values)

        assert await verifier.verify(issue_token(make_settings(**values), "alice", ttl=60)) == (
            "alice"
        )

    def test_refuses_without_a_secret(self) -> None:
        with pytest.raises(ValueError, match=r"^no AUTH_JWT_SECRET \(or BETTER_AUTH_SECRET\)"):
            issue_token(make_settings(), "alice", ttl=60)

    def test_refuses_an_invalid_user_id(self) -> None:
        with pytest.raises(ValueError, match="user id"):
            issue_token(make_settings(auth_jwt_secret=SECRET), "a b", ttl=60)


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


class TestOddKeySets:
    @pytest.mark.parametrize("field", ["kid", "alg", "crv", "kty"])
    async def test_an_entry_with_a_non_string_member_is_skipped(
        self, make_verifier: MakeVerifier, field: str
    ) -> None:
        odd = {**EC.public_jwk, field: ["x"]}
        with jwks_server([RSA.public_jwk, odd]) as server:
            verifier = make_verifier(auth_jwks_url=server.url)

            assert await verifier.verify(RSA.sign(claims_for("alice"))) == "alice"
