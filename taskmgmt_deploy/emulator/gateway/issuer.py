"""The sandbox's OpenID Connect issuer, for API_AUTH=jwt without an identity provider.

Served by the emulator at {emulator}/_sandbox/issuer: the discovery document, the JWKS, a token
endpoint that mints an RS256 token for whoever asks (loopback only: it is a test issuer), and a
login page that hands a token back to a redirect URI in the fragment, as Cognito's hosted login
does with response_type=token. Its key lives as long as the emulator.
"""

from __future__ import annotations

import base64
import html
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode

PATH = "/_sandbox/issuer"
DEFAULT_AUDIENCE = "taskmgmt-sandbox"
TOKEN_SECONDS = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Issuer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self.kid = uuid.uuid4().hex[:16]

    def _private(self) -> Any:
        with self._lock:
            if self._key is None:  # generated on first use: most emulators never issue a token
                from cryptography.hazmat.primitives.asymmetric import rsa

                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def jwks(self) -> dict[str, Any]:
        numbers = self._private().public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _int(numbers.n),
                    "e": _int(numbers.e),
                }
            ]
        }

    def mint(self, issuer: str, claims: dict[str, Any], now: float | None = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        issued = int(now if now is not None else time.time())
        body = {"iss": issuer, "iat": issued, "exp": issued + TOKEN_SECONDS, "jti": uuid.uuid4().hex, **claims}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
        signature = self._private().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    # -- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        base = f"http://{host}{PATH}"
        path = environ.get("PATH_INFO", "")[len(PATH) :] or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if method == "GET" and path == "/.well-known/openid-configuration":
            return _json(start_response, 200, self.discovery(base))
        if method == "GET" and path == "/jwks.json":
            return _json(start_response, 200, self.jwks())
        if method == "POST" and path == "/token":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                asked = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(asked, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                return _json(start_response, 400, {"error": "invalid_request", "error_description": str(exc)})
            claims = {"sub": "sandbox-user", "aud": DEFAULT_AUDIENCE, "token_use": "access", **asked}
            token = self.mint(base, claims)
            return _json(
                start_response,
                200,
                {"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS},
            )
        if method == "GET" and path == "/login":
            return self._login(start_response, base, query)
        return _json(start_response, 404, {"error": "not_found"})

    @staticmethod
    def discovery(base: str) -> dict[str, Any]:
        return {
            "issuer": base,
            "jwks_uri": f"{base}/jwks.json",
            "authorization_endpoint": f"{base}/login",
            "token_endpoint": f"{base}/token",
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _login(self, start_response: Any, base: str, query: dict[str, str]) -> list[bytes]:
        """Without a user name: a form asking for one. With one: back to redirect_uri, the token in
        the fragment (access_token, id_token, token_type, expires_in, state)."""
        redirect = query.get("redirect_uri", "")
        if not redirect.startswith(("http://127.0.0.1", "http://localhost")):
            return _json(
                start_response,
                400,
                {"error": "invalid_request", "error_description": "redirect_uri must be on loopback"},
            )
        user = query.get("username", "").strip()
        if not user:
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
            )
            page = (
                "<!doctype html><html lang=en><meta charset=utf-8><title>Sandbox sign-in</title>"
                f'<form method="get" action="{html.escape(base)}/login">{hidden}'
                '<label for="username">User name</label> <input id="username" name="username" autofocus required> '
                '<button type="submit">Sign in</button></form></html>'
            )
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page.encode()]
        audience = query.get("client_id") or DEFAULT_AUDIENCE
        token = self.mint(base, {"sub": user, "username": user, "aud": audience, "token_use": "id"})
        fragment = {"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": str(TOKEN_SECONDS)}
        if "state" in query:
            fragment["state"] = query["state"]
        start_response("302 Found", [("Location", f"{redirect}#{urlencode(fragment)}"), ("Content-Length", "0")])
        return [b""]


def _json(start_response: Any, status: int, body: dict[str, Any]) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    data = json.dumps(body).encode()
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def issuer_url(endpoint_url: str) -> str:
    """The sandbox issuer's URL (JWT_ISSUER) for the emulator at endpoint_url."""
    return endpoint_url.rstrip("/") + PATH


def request_token(issuer: str, claims: dict[str, Any] | None = None) -> str:
    """A token from the sandbox issuer (its token endpoint), for tests, smoke and `sandbox token`."""
    import urllib.request

    request = urllib.request.Request(
        f"{issuer}/token",
        data=json.dumps(claims or {}).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])
