"""The $connect token check (API_AUTH=jwt): RS256 verified with the standard library against
the issuer's JWKS, claims checked as API Gateway's JWT authorizer checks them. Tokens are
signed here with `cryptography` (a test dependency only; the function package has none)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from task_processor.db import Database, url_connect
from task_processor.errors import Unauthorized, Unavailable
from task_processor.live import LiveApp
from task_processor.management import Poster
from task_processor.tokens import KeySet, Verifier, rsa_sha256_verify
from tests.function.conftest import FakeManagement, ws_event

ISSUER = "https://issuer.example.com/pool"
NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2")}


class Issuer:
    """The issuer's discovery document and JWKS, counting the fetches."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey], published: tuple[str, ...] = ("k1",)):
        self.keys, self.published, self.fetched = keys, list(published), []

    def fetch(self, url: str) -> Any:
        self.fetched.append(url)
        if url == ISSUER + "/.well-known/openid-configuration":
            return {"issuer": ISSUER, "jwks_uri": "https://issuer.example.com/pool/jwks.json"}
        if url == "https://issuer.example.com/pool/jwks.json":
            return {"keys": [jwk(self.keys[kid], kid) for kid in self.published]}
        raise AssertionError(url)

    def token(self, kid: str = "k1", header: dict | None = None, **claims: Any) -> str:
        body = {"iss": ISSUER, "aud": "app-1", "sub": "user-7", "exp": NOW + 300, "iat": NOW - 10, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        head = b64(json.dumps(header or {"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
        payload = b64(json.dumps(body).encode())
        signature = self.keys[kid].sign(f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{payload}.{b64(signature)}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(keys) -> Issuer:
    return Issuer(keys)


@pytest.fixture
def verifier(issuer: Issuer) -> Verifier:
    return Verifier(ISSUER, ("app-1", "app-2"), KeySet(ISSUER, issuer.fetch, Clock()), clock=lambda: NOW)


def test_the_pkcs1_check_agrees_with_a_crypto_library(keys):
    key = keys["k1"]
    numbers = key.public_key().public_numbers()
    signature = key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    assert rsa_sha256_verify(numbers.n, numbers.e, b"message", signature)
    assert not rsa_sha256_verify(numbers.n, numbers.e, b"messagE", signature)
    assert not rsa_sha256_verify(numbers.n, numbers.e, b"message", signature[:-1])
    assert not rsa_sha256_verify(numbers.n, numbers.e, b"message", b"\x00" + signature[1:])
    other = keys["k2"].public_key().public_numbers()
    assert not rsa_sha256_verify(other.n, other.e, b"message", signature)
    pss = key.sign(
        b"message", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )  # PS256 is another encoding: refused
    assert not rsa_sha256_verify(numbers.n, numbers.e, b"message", pss)


def test_a_valid_token_gives_its_claims(verifier: Verifier, issuer: Issuer):
    assert verifier.verify(issuer.token())["sub"] == "user-7"
    assert verifier.verify(issuer.token(aud=["other", "app-2"]))["sub"] == "user-7"
    assert verifier.verify(issuer.token(aud=None, client_id="app-1"))["sub"] == "user-7"  # a Cognito access token


@pytest.mark.parametrize(
    "claims,reason",
    [
        ({"iss": "https://issuer.example.com/other"}, "another issuer"),
        ({"aud": "app-3"}, "another audience"),
        ({"aud": None}, "another audience"),
        ({"aud": None, "client_id": "app-3"}, "another audience"),
        ({"aud": "app-3", "client_id": "app-1"}, "another audience"),  # client_id counts only without aud
        ({"exp": NOW}, "expired"),
        ({"exp": None}, "expired"),
        ({"exp": "tomorrow"}, "expired"),
        ({"nbf": NOW + 120}, "nbf is in the future"),
        ({"iat": NOW + 120}, "iat is in the future"),
    ],
)
def test_claims_are_checked_as_the_jwt_authorizer_checks_them(verifier: Verifier, issuer: Issuer, claims, reason):
    with pytest.raises(Unauthorized, match=reason):
        verifier.verify(issuer.token(**claims))


def test_a_forged_or_malformed_token_is_refused(verifier: Verifier, issuer: Issuer):
    good = issuer.token()
    head, payload, signature = good.split(".")
    forged = b64(json.dumps({"iss": ISSUER, "aud": "app-1", "sub": "admin", "exp": NOW + 300}).encode())
    cases = {
        f"{head}.{forged}.{signature}": "signature does not verify",
        issuer.token(kid="k2"): "key is not one of the issuer's",  # a real key, but not published
        issuer.token(header={"alg": "none", "kid": "k1"}): "algorithm 'none'",
        issuer.token(header={"alg": "HS256", "kid": "k1"}): "algorithm 'HS256'",
        issuer.token(header={"alg": "RS256"}): "key is not one of",
        f"{head}.{payload}": "not a JWT",
        f"{head}.{payload}.{signature}.x": "not a JWT",
        f"{head}.{payload}.{signature}==": "not a JWT",
        "a.b.c": "not a JWT",
        "": "no token",
        None: "no token",
    }
    for token, reason in cases.items():
        with pytest.raises(Unauthorized, match=reason):
            verifier.verify(token)


def test_keys_are_cached_and_fetched_again_for_a_new_key_at_most_once_a_minute(issuer: Issuer):
    clock = Clock()
    keyset = KeySet(ISSUER, issuer.fetch, clock)
    verifier = Verifier(ISSUER, ("app-1",), keyset, clock=lambda: NOW)
    for _ in range(3):
        verifier.verify(issuer.token())
    assert keyset.fetches == 1
    issuer.published.append("k2")  # the issuer rotates in a new key
    clock.now = 30
    with pytest.raises(Unauthorized):
        verifier.verify(issuer.token(kid="k2"))  # fetched 30 s ago: not fetched again yet
    clock.now = 61
    assert verifier.verify(issuer.token(kid="k2"))["sub"] == "user-7"
    assert keyset.fetches == 2
    clock.now = 61 + 3601
    verifier.verify(issuer.token())
    assert keyset.fetches == 3  # an hour on, the set is fetched again


def test_only_https_or_loopback_keys_are_fetched():
    from task_processor.tokens import fetch_json

    with pytest.raises(Unavailable, match="not https"):
        fetch_json("http://issuer.example.com/jwks.json")


@pytest.fixture
def jwt_live(live_url: str, management: FakeManagement, verifier: Verifier) -> LiveApp:
    return LiveApp(Database(url_connect(live_url)), Poster(management.client, workers=2), verifier, "us-east-2")


def test_connect_with_jwt_records_the_subject_and_refuses_a_bad_token_with_401(jwt_live: LiveApp, issuer: Issuer):
    assert jwt_live.handle(ws_event("$connect", "c1", query={"token": issuer.token()})) == {"statusCode": 200}
    assert jwt_live.handle(ws_event("$connect", "c2", query={"token": issuer.token(aud="x")})) == {"statusCode": 401}
    assert jwt_live.handle(ws_event("$connect", "c3")) == {"statusCode": 401}
    found = jwt_live.db.read(lambda conn: conn.execute("SELECT connection_id, principal FROM connections").fetchall())
    assert found == [{"connection_id": "c1", "principal": "user-7"}]


def test_connect_when_the_issuer_is_down_is_a_503(live_url: str, management: FakeManagement, issuer: Issuer):
    def down(url: str) -> Any:
        raise Unavailable("down")

    verifier = Verifier(ISSUER, ("app-1",), KeySet(ISSUER, down, Clock()), clock=lambda: NOW)
    live = LiveApp(Database(url_connect(live_url)), Poster(management.client), verifier, "us-east-2")
    assert live.handle(ws_event("$connect", "c1", query={"token": issuer.token()})) == {"statusCode": 503}


def test_from_environment(monkeypatch):
    monkeypatch.setenv("API_AUTH", "iam")
    assert Verifier.from_environment() is None
    monkeypatch.setenv("API_AUTH", "jwt")
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", "app-1, app-2")
    verifier = Verifier.from_environment()
    assert (verifier.issuer, verifier.audiences) == (ISSUER, ("app-1", "app-2"))


def test_a_token_from_the_sandboxs_issuer_verifies():
    """The function and the sandbox's local issuer agree (its discovery, JWKS and tokens)."""
    from taskmgmt_deploy.emulator.gateway.issuer import DEFAULT_AUDIENCE
    from taskmgmt_deploy.emulator.gateway.issuer import Issuer as SandboxIssuer

    sandbox, base = SandboxIssuer(), "http://127.0.0.1:9/_sandbox/issuer"
    documents = {
        f"{base}/.well-known/openid-configuration": sandbox.discovery(base),
        f"{base}/jwks.json": sandbox.jwks(),
    }
    verifier = Verifier(base, (DEFAULT_AUDIENCE,), KeySet(base, documents.__getitem__, Clock()))
    assert verifier.verify(sandbox.mint(base, {"sub": "ana", "aud": DEFAULT_AUDIENCE}))["sub"] == "ana"
