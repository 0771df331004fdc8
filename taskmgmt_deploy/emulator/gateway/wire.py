"""HTTP/1.1 on asyncio streams, as much as API Gateway's endpoints need: a request head and a
Content-Length body in, a complete answer out. A WebSocket upgrade keeps the head's raw bytes,
which websockets' Sans-I/O handshake parses again."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

HEAD_LIMIT = 10 * 1024  # request line and headers together (W4)
BODY_LIMIT = 10 * 1024 * 1024  # an HTTP API's payload quota


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes
    peer: str

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """All values of a header, joined with commas as API Gateway does; None when absent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None

    def lowered(self) -> dict[str, str]:
        merged: dict[str, list[str]] = {}
        for key, value in self.headers:
            merged.setdefault(key.lower(), []).append(value)
        return {k: ",".join(v) for k, v in merged.items()}

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        return self.version == "HTTP/1.1" and "close" not in connection

    @property
    def is_upgrade(self) -> bool:
        return self.method == "GET" and "websocket" in (self.header("upgrade") or "").lower()


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    context: dict[str, object] = field(default_factory=dict)  # $context variables, for the access log

    @classmethod
    def message(cls, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        """API Gateway's own answers: {"message": "..."} as JSON."""
        return cls(
            status, {"content-type": "application/json", **(headers or {})}, json.dumps({"message": message}).encode()
        )

    def encode(self, head_only: bool = False, close: bool = False) -> bytes:
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        for key, value in self.headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{key}: {value}")
        lines.append(f"content-length: {len(self.body)}")
        if close:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


async def read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    """The next request on the connection; None when the client closed it between requests."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest(400, "incomplete request") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "Request Header Fields Too Large") from None
    if len(raw) > HEAD_LIMIT:
        raise BadRequest(431, "Request Header Fields Too Large")
    method, target, version, headers = _parse_head(raw)
    request = Request(method, target, version, headers, b"", raw, peer)
    if request.header("transfer-encoding"):
        raise BadRequest(411, "Length Required")
    lengths = {v.strip() for k, v in headers if k.lower() == "content-length"}
    if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
        raise BadRequest(400, "Bad Request")
    length = int(next(iter(lengths))) if lengths else 0
    if length > BODY_LIMIT:
        raise BadRequest(413, "Request Entity Too Large")
    if length:
        try:
            request.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise BadRequest(400, "incomplete body") from None
    return request


def _parse_head(raw: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    try:
        request_line, *header_lines = raw.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest(400, "Bad Request") from None
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "Bad Request")
        headers.append((name, value.strip()))
    return method, target, version, headers
