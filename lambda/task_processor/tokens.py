"""JWT checks for the WebSocket $connect (API_AUTH=jwt): WebSocket APIs have no JWT authorizer,
so the function checks the `?token=` itself, as the HTTP API's JWT authorizer would.

RS256 only, verified with the standard library: the signature is raised to the key's public
exponent and compared with the EMSA-PKCS1-v1_5 encoding of the token's SHA-256 digest
(RFC 8017, 8.2.2 and 9.2), so the function package needs no crypto library. The keys come from
the issuer's JWKS (found through its OpenID discovery document) and are cached; a token signed
with a key not in the cache fetches the set again, at most once a minute (key rotation).

The claims are checked as API Gateway's JWT authorizer checks them: `iss` is the issuer; `aud`,
or `client_id` when there is no `aud`, is one of the audiences; `exp` is in the future; `nbf`
and `iat`, when present, are not.
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from task_processor.contract import ENV_API_AUTH, ENV_JWT_AUDIENCE, ENV_JWT_ISSUER
from task_processor.errors import Unauthorized, Unavailable

# DER of DigestInfo { sha256, NULL } up to the digest itself (RFC 8017, 9.2, note 1)
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
MIN_KEY_BITS = 2048
KEYS_TTL = 3600.0  # seconds a fetched key set is trusted
REFETCH_INTERVAL = 60.0  # at most one fetch a minute for an unknown key id
CLOCK_SKEW = 60  # seconds an nbf/iat may lie ahead of this clock (never applied to exp)
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_TOKEN_CHARS = 16 * 1024

Fetch = Callable[[str], Any]  # URL -> parsed JSON


def rsa_sha256_verify(modulus: int, exponent: int, message: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017, 8.2.2): s^e mod n must equal the expected encoding."""
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= modulus:
        return False
    encoded = pow(s, exponent, modulus).to_bytes(size, "big")
    digest = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if size < len(digest) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return hmac.compare_digest(encoded, expected)


def b64url_decode(text: str) -> bytes:
    if not text or any(ch not in _B64URL for ch in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64url_int(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return int.from_bytes(b64url_decode(value), "big")


def fetch_json(url: str, timeout: float = 3.0) -> Any:
    """GET a JSON document: https only, or http on loopback (the sandbox's local issuer)."""
    parsed = urlparse(url)
    if not (parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost"))):
        raise Unavailable(f"refusing to fetch keys from {url}: not https")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # the scheme is checked above
            return json.loads(response.read(MAX_DOCUMENT_BYTES))
    except (OSError, ValueError) as exc:
        raise Unavailable(f"the token issuer's keys could not be read from {url}: {exc}") from None


class KeySet:
    """The issuer's RSA signing keys by key id, fetched through its discovery document and cached."""

    def __init__(self, issuer: str, fetch: Fetch = fetch_json, clock: Callable[[], float] = time.monotonic):
        self.issuer = issuer
        self._fetch, self._clock = fetch, clock
        self._keys: dict[str, tuple[int, int]] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def key(self, kid: str) -> tuple[int, int] | None:
        """(modulus, exponent) of the key, or None if the issuer does not publish it."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > KEYS_TTL
            unknown = kid not in self._keys and (self._fetched_at is None or now - self._fetched_at > REFETCH_INTERVAL)
            if stale or unknown:
                self._keys = self._load()
                self._fetched_at = now
            return self._keys.get(kid)

    def _load(self) -> dict[str, tuple[int, int]]:
        self.fetches += 1
        discovery = self._fetch(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
        if not isinstance(jwks_uri, str):
            raise Unavailable("the token issuer's discovery document names no jwks_uri")
        document = self._fetch(jwks_uri)
        keys: dict[str, tuple[int, int]] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
                continue
            try:
                modulus, exponent = _b64url_int(jwk.get("n")), _b64url_int(jwk.get("e"))
            except (ValueError, binascii.Error):
                continue
            if isinstance(jwk.get("kid"), str) and modulus.bit_length() >= MIN_KEY_BITS and exponent > 1:
                keys[jwk["kid"]] = (modulus, exponent)
        return keys


class Verifier:
    def __init__(
        self, issuer: str, audiences: tuple[str, ...], keys: KeySet, clock: Callable[[], float] = time.time
    ) -> None:
        self.issuer, self.audiences, self.keys, self._clock = issuer, audiences, keys, clock

    @classmethod
    def from_environment(cls) -> Verifier | None:
        """None unless API_AUTH=jwt (with iam, API Gateway checked the caller's signature)."""
        if os.environ.get(ENV_API_AUTH, "iam").lower() != "jwt":
            return None
        issuer = os.environ.get(ENV_JWT_ISSUER) or ""
        audiences = tuple(a.strip() for a in os.environ.get(ENV_JWT_AUDIENCE, "").split(",") if a.strip())
        return cls(issuer, audiences, KeySet(issuer))

    def verify(self, token: str | None) -> dict[str, Any]:
        """The token's claims; Unauthorized (why) if it is not a valid token for this API."""
        if not self.issuer or not self.audiences:
            raise Unavailable(f"API_AUTH=jwt needs {ENV_JWT_ISSUER} and {ENV_JWT_AUDIENCE}")
        if not token:
            raise Unauthorized("no token: connect with ?token=<JWT>")
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise Unauthorized("the token is not a JWT")
        header_part, payload_part, signature_part = token.split(".")
        try:
            header = json.loads(b64url_decode(header_part))
            claims = json.loads(b64url_decode(payload_part))
            signature = b64url_decode(signature_part)
        except (ValueError, binascii.Error):
            raise Unauthorized("the token is not a JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Unauthorized("the token is not a JWT")
        if header.get("alg") != "RS256":
            raise Unauthorized(f"the token's algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        key = self.keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("the token's key is not one of the issuer's")
        if not rsa_sha256_verify(key[0], key[1], f"{header_part}.{payload_part}".encode("ascii"), signature):
            raise Unauthorized("the token's signature does not verify")
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise Unauthorized("the token was issued by another issuer")
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a in self.audiences for a in audiences):
            raise Unauthorized("the token was issued for another audience")
        now = self._clock()
        exp = claims.get("exp")
        if not _is_number(exp) or now >= exp:
            raise Unauthorized("the token has expired")
        for name in ("nbf", "iat"):
            if name in claims and (not _is_number(claims[name]) or claims[name] > now + CLOCK_SKEW):
                raise Unauthorized(f"the token's {name} is in the future")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
