"""TokenVerifier (auth/tokens.py) with a shared secret, against real signed tokens: the signature,
the time claims, audience and issuer, the user claim; and issue_token.

Keys from a provider's JWKS: test_tokens_provider_keys.py; fetching them: test_tokens_jwks_cache.py.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from tests.support.databases import make_settings
from tests.support.tokens import (
    AUDIENCE,
    ISSUER,
    OTHER_SECRET,
    SECRET,
    b64url,
    claims_for,
    hs256_token,
    unsigned_token,
    with_payload,
)
from tests.support.verifiers import RSA, MakeVerifier, assert_refused
from tests.support.verifiers import refusal as refusal_of
from todo_api.auth.tokens import issue_token

LONG_SECRET = "a-64-byte-secret-long-enough-for-hs512-" + "s" * 25


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


def hs256_of(claims: dict[str, Any]) -> str:
    """A token of exactly these claims, signed with the secret (PyJWT writes any JSON value)."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


class TestNumericDates:
    """`exp`, `nbf` and `iat` are NumericDates (RFC 7519 §2): JSON numbers and nothing else."""

    @pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
    @pytest.mark.parametrize(
        "spelling", [str, lambda n: f" {n}", lambda n: [n], lambda n: {"n": n}]
    )
    async def test_a_time_claim_that_is_not_a_number_is_refused(
        self, make_verifier: MakeVerifier, claim: str, spelling: Any
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        claims = claims_for("alice", nbf=int(time.time()) - 10)
        claims[claim] = spelling(claims[claim])

        error = await refusal_of(verifier, hs256_of(claims))

        assert error.why == f"claim {claim} is not a number"
        assert error.reason == "malformed"

    @pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
    @pytest.mark.parametrize("value", [True, float("inf"), float("-inf"), float("nan"), 10**400])
    async def test_a_time_claim_that_is_not_a_finite_number_is_refused(
        self, make_verifier: MakeVerifier, claim: str, value: Any
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        claims = claims_for("alice", nbf=int(time.time()) - 10)
        claims[claim] = value

        error = await refusal_of(verifier, hs256_of(claims))

        assert error.why == f"claim {claim} is not a number"
        assert error.reason == "malformed"

    async def test_fractional_seconds_are_numbers_too(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)
        now = time.time()

        token = hs256_of({"sub": "alice", "iat": now, "nbf": now - 0.5, "exp": now + 60.25})

        assert await verifier.verify(token) == "alice"


class TestMaxTokenLifetime:
    async def test_the_default_allows_a_day_ahead(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        assert await verifier.verify(hs256_token("alice", ttl=24 * 3600)) == "alice"

    async def test_a_token_valid_for_longer_than_a_day_is_refused(
        self, make_verifier: MakeVerifier
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        error = await refusal_of(verifier, hs256_token("alice", ttl=24 * 3600 + 120))

        assert error.reason == "lifetime_too_long"
        assert error.why is not None
        assert "AUTH_MAX_TOKEN_TTL (86400 s)" in error.why
        assert error.headers["WWW-Authenticate"].endswith('error_description="invalid token"')

    async def test_the_bound_is_a_setting(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_max_token_ttl=600)

        assert await verifier.verify(hs256_token("alice", ttl=600)) == "alice"
        error = await refusal_of(verifier, hs256_token("alice", ttl=900))
        assert error.reason == "lifetime_too_long"

    async def test_a_cached_token_is_bounded_the_same(self, make_verifier: MakeVerifier) -> None:
        """The bound is judged on exp itself, so a token cannot outlive it by being cached."""
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_max_token_ttl=600)
        token = hs256_token("alice", ttl=10 * 365 * 24 * 3600)

        for _ in range(2):
            assert (await refusal_of(verifier, token)).reason == "lifetime_too_long"


class TestWhatAClientIsTold:
    @pytest.mark.parametrize(
        ("token", "why"),
        [
            (lambda: hs256_token("alice", secret=OTHER_SECRET), "bad signature"),
            (lambda: "not-a-jwt", "malformed token"),
            (lambda: hs256_token("alice", aud="other"), "wrong audience"),
            (lambda: unsigned_token("alice"), "algorithm not accepted"),
        ],
    )
    async def test_only_invalid_token_whatever_the_check(
        self, make_verifier: MakeVerifier, token: Any, why: str
    ) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE)

        error = await refusal_of(verifier, token())

        assert error.why == why
        challenge_header = error.headers["WWW-Authenticate"]
        assert challenge_header.endswith('error_description="invalid token"')
        assert why not in challenge_header
        assert error.detail == "The bearer token is not valid: invalid token."

    async def test_an_expired_token_says_so(self, make_verifier: MakeVerifier) -> None:
        verifier = make_verifier(auth_jwt_secret=SECRET)

        error = await refusal_of(verifier, hs256_token("alice", ttl=-120))

        assert error.headers["WWW-Authenticate"].endswith('error_description="token expired"')
