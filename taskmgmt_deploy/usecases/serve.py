"""A local HTTP front for the deployed stack, on 127.0.0.1 only: the task board and its API.

With the stack's HTTP API deployed, every request is forwarded to it (signed with the operator's
credentials when the API uses IAM), `/board/config.json` is answered here with a WebSocket URL
on this same origin, and a socket opened at `/live` is relayed to the region's WebSocket API
(usecases/forwarding.py). Without one, each request becomes an HTTP API (v2) event for the
function, invoked directly.

Either way it answers as API Gateway would in front of the function: a CORS preflight itself,
HEAD as GET without the body, a request it cannot read with a 400, a body over the function's
limit with the function's own 413, and an API or function that cannot be reached or fails with a
502 naming why, in one line.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from taskmgmt_deploy.errors import one_line

if TYPE_CHECKING:
    from taskmgmt_deploy.usecases.forwarding import Upstream

Invoke = Callable[[bytes], "tuple[bytes, str | None]"]
# The function's own limit and answer (lambda/task_processor/api.py; pinned by tests/unit/test_contract.py).
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = {"error": "payload_too_large", "message": f"the body exceeds {MAX_BODY_BYTES} bytes"}
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "content-type, if-match"
JSON = "application/json"
DRAIN_LIMIT = 16 * 1024 * 1024  # a refused body up to this size is read and dropped, so the client sees the answer


def to_event(method: str, target: str, headers: dict[str, str], body: bytes, client: str) -> dict[str, object]:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    text, encoded = (body.decode("utf-8"), False) if _is_text(body) else (base64.b64encode(body).decode(), True)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "requestContext": {
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": client,
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


def is_origin(value: str) -> bool:
    """`*`, or scheme://host[:port] as a browser sends it in Origin."""
    if value == "*":
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and value == f"{parts.scheme}://{parts.netloc}"


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Refused(Exception):
    """A request answered here, without invoking the function."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def body_length(values: list[str]) -> int:
    """The Content-Length the request declares: none is 0; a malformed, negative or repeated
    and differing one is refused (reading it would hang or misread the next request)."""
    if not values:
        return 0
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        raise Refused(400, {"error": "invalid_request", "message": "Content-Length must be one non-negative integer"})
    return int(values[0])


def http_answer(raw: bytes, function_error: str | None) -> tuple[int, dict[str, str], bytes]:
    """The function's answer as (status, headers, body); a 502 when it failed or answered nonsense."""
    if function_error:
        raise Refused(502, {"error": "function_error", "message": f"the function failed: {_failure(raw)}"})
    try:
        response = json.loads(raw)
        status = int(response.get("statusCode", 200))
        body = response.get("body") or ""
        payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    except (ValueError, TypeError, AttributeError):
        raise Refused(
            502, {"error": "bad_function_response", "message": "the function's answer is not an HTTP response"}
        ) from None
    return status, headers, payload


def _failure(raw: bytes) -> str:
    try:
        error = json.loads(raw)
        return one_line(Exception(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"))
    except (ValueError, AttributeError):
        return one_line(Exception(raw.decode(errors="replace")[:300]))


def make_server(
    port: int,
    invoke: Invoke | None,
    log: Callable[[str], None],
    cors_origin: str = "*",
    *,
    upstream: Upstream | None = None,
    board: dict[str, Any] | None = None,
) -> ThreadingHTTPServer:
    """invoke raises (TaskmgmtError, or anything) when the function cannot be invoked: a 502.
    With `upstream`, requests go to the deployed APIs instead, and `board` (region, auth,
    loginUrl) is what /board/config.json says besides the WebSocket URL."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 60  # a client that stops sending mid-request does not hold its thread forever

        def _handle(self) -> None:
            try:
                if self.command == "OPTIONS":
                    return self._preflight()
                if upstream is not None and self._is_socket():
                    return self._bridge()
                length = body_length(self.headers.get_all("Content-Length") or [])
                if self.headers.get("Transfer-Encoding"):
                    raise Refused(411, {"error": "length_required", "message": "send the body with a Content-Length"})
                if length > MAX_BODY_BYTES:
                    self._drain(length)
                    raise Refused(413, TOO_LARGE)
                method = "GET" if self.command == "HEAD" else self.command
                body = self.rfile.read(length)
                if upstream is not None and method == "GET" and urlsplit(self.path).path == "/board/config.json":
                    status, headers, payload = 200, {"content-type": JSON, "cache-control": "no-store"}, self._config()
                elif upstream is not None:
                    status, headers, payload = self._forward(upstream, method, body)
                else:
                    event = to_event(method, self.path, dict(self.headers), body, self.client_address[0])
                    status, headers, payload = http_answer(*self._invoke(event))
            except Refused as refused:
                self.close_connection = True  # an unread body must not be taken for the next request
                status, headers, payload = refused.status, {"content-type": JSON}, json.dumps(refused.body).encode()
            self._reply(status, headers, payload)

        def _drain(self, length: int) -> None:
            left = length if length <= DRAIN_LIMIT else 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)

        def _is_socket(self) -> bool:
            upgrade = (self.headers.get("Upgrade") or "").lower()
            return self.command == "GET" and urlsplit(self.path).path == "/live" and "websocket" in upgrade

        def _bridge(self) -> None:
            """The browser's socket, relayed to the WebSocket API until either side closes."""
            from taskmgmt_deploy.usecases.forwarding import SocketBridge

            assert upstream is not None
            self.close_connection = True
            lines = [self.requestline, *(f"{k}: {v}" for k, v in self.headers.items())]
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            self.connection.settimeout(None)  # a socket may stay quiet for minutes
            query = urlsplit(self.path).query
            log(f"{self.address_string()} socket opened to the WebSocket API of {upstream.region}")
            bridge = SocketBridge(self.rfile.read1, self.connection.sendall, self._end, log)
            bridge.run(raw, lambda: upstream.open_socket(query))

        def _end(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)

        def _config(self) -> bytes:
            assert upstream is not None
            socket = f"ws://127.0.0.1:{self.server.server_port}/live" if upstream.websocket_url else None
            return json.dumps({"websocketUrl": socket, **(board or {})}).encode()

        def _forward(self, target: Upstream, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
            try:
                return target.forward(method, self.path, dict(self.headers), body)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the client gets a 502 naming it
                why = f"the HTTP API of {target.region} cannot be reached ({one_line(exc)}){target.hint}"
                log(why)
                raise Refused(502, {"error": "api_unavailable", "message": why}) from None

        def _invoke(self, event: dict[str, object]) -> tuple[bytes, str | None]:
            if invoke is None:
                raise Refused(502, {"error": "function_unavailable", "message": "nothing to forward to"})
            try:
                return invoke(json.dumps(event).encode())
            except Exception as exc:  # noqa: BLE001 - whatever it is, the client gets a 502 naming it
                log(f"the function could not be invoked: {one_line(exc)}")
                raise Refused(502, {"error": "function_unavailable", "message": one_line(exc)}) from None

        def _preflight(self) -> None:
            requested = self.headers.get("Access-Control-Request-Headers")
            self._reply(
                204,
                {
                    "content-type": JSON,
                    "access-control-allow-methods": CORS_METHODS,
                    "access-control-allow-headers": requested or CORS_HEADERS,
                    "access-control-max-age": "600",
                },
                b"",
            )

        def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("access-control-allow-origin", cors_origin)
            if cors_origin != "*":
                self.send_header("vary", "Origin")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """What http.server itself refuses (a malformed request line, headers too long): JSON, not HTML."""
            self.close_connection = True
            if self.request_version == "HTTP/0.9":  # an unreadable request line: answer with a status line anyway
                self.request_version = "HTTP/1.0"
            body = {"error": "invalid_request", "message": message or self.responses.get(code, ("",))[0]}
            self._reply(code, {"content-type": JSON}, json.dumps(body).encode())

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method goes to the function, which answers 405 when it must
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: object) -> None:
            log(f"{self.address_string()} {format % args}")

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A client gone mid-answer: one line, not a traceback."""
            log(f"{client_address[0]} connection lost: {one_line(sys.exc_info()[1] or Exception('unknown'))}")

    return Server(("127.0.0.1", port), Handler)
