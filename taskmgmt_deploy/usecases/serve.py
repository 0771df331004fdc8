"""A local HTTP front for the function: each request becomes an HTTP API (v2) event.

Only for trying the API from a laptop (curl localhost:P/tasks): it binds 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

Invoke = Callable[[bytes], "tuple[bytes, str | None]"]
MAX_BODY = 1024 * 1024


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


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def make_server(port: int, invoke: Invoke, log: Callable[[str], None]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._reply(413, {"content-type": "application/json"}, b'{"error": "payload_too_large"}')
            event = to_event(
                self.command, self.path, dict(self.headers), self.rfile.read(length), self.client_address[0]
            )
            raw, error = invoke(json.dumps(event).encode())
            if error:
                detail = raw.decode(errors="replace")[:500]
                return self._reply(
                    502,
                    {"content-type": "application/json"},
                    json.dumps({"error": "function_error", "detail": detail}).encode(),
                )
            response = json.loads(raw)
            body = response.get("body") or ""
            payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
            self._reply(int(response.get("statusCode", 200)), response.get("headers") or {}, payload)

        def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            log(f"{self.address_string()} {format % args}")

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
