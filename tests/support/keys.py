"""Signing keys of every kind a provider uses (RSA, EC P-256 and P-384, Ed25519), generated
once per process by `cryptography`, with their public JWKs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.support.factories import JSON

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A private key, the JWS algorithm it signs with and its public JWK (with `kid`)."""

    kid: str
    algorithm: str
    private: PrivateKey
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def public_jwk(self) -> JSON:
        public = self.private.public_key()
        data: JSON
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm, **self.extra}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def with_kid(self, kid: str, **extra: Any) -> SigningKey:
        return SigningKey(kid=kid, algorithm=self.algorithm, private=self.private, extra=extra)

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str | None = None, **header: Any
    ) -> str:
        return jwt.encode(
            dict(claims),
            self.private,
            algorithm=algorithm or self.algorithm,
            headers={"kid": self.kid, **header},
        )


@cache
def _rsa_private(index: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ec_private(index: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def _ed25519_private(index: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def rsa_key(kid: str = "rsa-1", index: int = 0, algorithm: str = "RS256") -> SigningKey:
    return SigningKey(kid=kid, algorithm=algorithm, private=_rsa_private(index))


def ec_key(kid: str = "ec-1", index: int = 0) -> SigningKey:
    return SigningKey(kid=kid, algorithm="ES256", private=_ec_private(index))


@cache
def _p384_private(index: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def p384_key(kid: str = "ec384-1", index: int = 0) -> SigningKey:
    return SigningKey(kid=kid, algorithm="ES384", private=_p384_private(index))


def ed25519_key(kid: str = "ed-1", index: int = 0) -> SigningKey:
    return SigningKey(kid=kid, algorithm="EdDSA", private=_ed25519_private(index))
