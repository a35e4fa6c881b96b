"""TokenVerifier with a provider's keys, served by a real JWKS server on localhost: which key
verifies which token, and the tokens no key may verify."""

from __future__ import annotations

import jwt
import pytest

from tests.support.jwks import JWKSServer, jwks_server
from tests.support.keys import SigningKey, p384_key, rsa_key
from tests.support.tokens import (
    SECRET,
    b64url,
    claims_for,
    hmac_token,
    hs256_token,
    raw_token,
    unsigned_token,
)
from tests.support.verifiers import EC, ED, RSA, MakeVerifier, assert_refused


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


class TestOddKeySets:
    @pytest.mark.parametrize("field", ["kid", "alg", "crv", "kty"])
    async def test_an_entry_with_a_non_string_member_is_skipped(
        self, make_verifier: MakeVerifier, field: str
    ) -> None:
        odd = {**EC.public_jwk, field: ["x"]}
        with jwks_server([RSA.public_jwk, odd]) as server:
            verifier = make_verifier(auth_jwks_url=server.url)

            assert await verifier.verify(RSA.sign(claims_for("alice"))) == "alice"
