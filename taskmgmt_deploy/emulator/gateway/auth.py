"""How API Gateway authorises a request: a SigV4 signature (AWS_IAM) or a JWT (a JWT authorizer).

SigV4: the Authorization header must be well formed, scoped to `execute-api` in the API's
Region, dated within 5 minutes, signed over `host`, and its signature must be the one the
caller's secret gives (W2). JWT: an RS256 token from the authorizer's issuer, whose key is
found by `kid` in the JWKS the issuer's discovery document names, with `iss`, `aud` (or
`client_id`), `exp`, `iat` and `nbf` checked as API Gateway documents (W3).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
CLOCK_SKEW = 300  # seconds a signature's date may be off
JWKS_TTL = 7200.0  # how long a fetched key set is trusted


class Denied(Exception):
    """Authorisation failed; the message is what API Gateway says (or puts in www-authenticate)."""


@dataclass(frozen=True)
class Caller:
    access_key: str
    region: str


SecretFor = Callable[[str], "str | None"]


def check_sigv4(
    method: str, url: str, headers: dict[str, str], body: bytes, region: str, now: float, secret_for: SecretFor
) -> Caller:
    """headers are lowercased; raises Denied with API Gateway's message."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    header = headers.get("authorization")
    if not header:
        raise Denied("Forbidden")
    match = SIGV4.fullmatch(header.strip())
    if match is None:
        raise Denied(
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'; got {header[:40]!r}"
        )
    if match["service"] != "execute-api" or match["region"] != region:
        raise Denied(
            f"Credential should be scoped to a valid region and service: expected {region}/execute-api, "
            f"got {match['region']}/{match['service']}"
        )
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise Denied("'Host' must be a signed header, and every signed header must be sent")
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise Denied("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header") from None
    if abs(when - now) > CLOCK_SKEW or stamp[:8] != match["date"]:
        raise Denied(f"Signature expired: {stamp} is now earlier or later than the allowed 5 minutes")
    secret = secret_for(match["key"])
    if secret is None:
        raise Denied("The security token included in the request is invalid.")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], secret, headers.get("x-amz-security-token")), "execute-api", region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise Denied(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return Caller(match["key"], region)


# -- JWT -----------------------------------------------------------------------------------
def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(part: str) -> dict[str, Any]:
    value = json.loads(_b64(part))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


Fetch = Callable[[str], bytes]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


class KeySets:
    """The issuers' public keys, fetched through their discovery documents and kept for a while."""

    def __init__(self, fetch: Fetch = http_get):
        self.fetch = fetch
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def keys(self, issuer: str, now: float) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(issuer)
        if cached and now - cached[0] < JWKS_TTL:
            return cached[1]
        try:
            discovery = json.loads(self.fetch(issuer.rstrip("/") + "/.well-known/openid-configuration"))
            jwks = json.loads(self.fetch(str(discovery["jwks_uri"])))
            found = {str(k["kid"]): k for k in jwks.get("keys", []) if k.get("kty") == "RSA" and "kid" in k}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Denied(f"the issuer's keys could not be read: {exc}") from None
        with self._lock:
            self._cache[issuer] = (now, found)
        return found

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def verify_jwt(
    token: str, issuer: str, audiences: list[str], scopes: list[str], key_sets: KeySets, now: float
) -> dict[str, Any]:
    """The token's claims, or Denied with the error_description API Gateway puts in www-authenticate."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    parts = token.split(".")
    if len(parts) != 3:
        raise Denied("the token is not a JWT")
    try:
        header, claims, signature = _json_part(parts[0]), _json_part(parts[1]), _b64(parts[2])
    except (ValueError, binascii.Error):
        raise Denied("the token is not a JWT") from None
    algorithms = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}
    if header.get("alg") not in algorithms:
        raise Denied(f"signing method {header.get('alg')} is invalid")
    key = key_sets.keys(issuer, now).get(str(header.get("kid")))
    if key is None:
        raise Denied(f"the kid {header.get('kid')!r} is not among the issuer's keys")
    try:
        public = rsa.RSAPublicNumbers(
            int.from_bytes(_b64(key["e"]), "big"), int.from_bytes(_b64(key["n"]), "big")
        ).public_key()
        public.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), algorithms[header["alg"]])
    except (InvalidSignature, KeyError, ValueError):
        raise Denied("the token's signature is invalid") from None
    _check_claims(claims, issuer, audiences, scopes, now)
    return claims


def _check_claims(claims: dict[str, Any], issuer: str, audiences: list[str], scopes: list[str], now: float) -> None:
    if claims.get("iss") != issuer:
        raise Denied("the token does not have a valid issuer")
    aud = claims.get("aud", claims.get("client_id"))
    given = aud if isinstance(aud, list) else [aud]
    if not set(map(str, given)) & set(audiences):
        raise Denied("the token does not have a valid audience")
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), int | float):
            raise Denied(f"the token has no valid {name} claim")
    if claims["exp"] <= now:
        raise Denied("the token has expired")
    if claims["iat"] > now + 1 or (isinstance(claims.get("nbf"), int | float) and claims["nbf"] > now + 1):
        raise Denied("the token is not valid yet")
    if scopes:
        granted = claims.get("scope", claims.get("scp", ""))
        granted = set(granted.split() if isinstance(granted, str) else granted)
        if not granted & set(scopes):
            raise Denied("the token does not have a valid scope")


def bearer(value: str | None) -> str | None:
    """The token in an Authorization header: the token alone, or after `Bearer `."""
    if not value:
        return None
    value = value.strip()
    return value[7:].strip() if value.lower().startswith("bearer ") else value
