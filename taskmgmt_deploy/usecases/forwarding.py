"""What `taskmgmt serve` forwards to the deployed APIs: a request to the HTTP API, and a browser's
WebSocket to the WebSocket API, each signed with the operator's credentials when the APIs use
IAM (a browser cannot sign), or passed through as they come (a JWT in Authorization or ?token=).

The browser's socket is spoken to through websockets' Sans-I/O protocol on the connection that
serve's HTTP server accepted; the API's socket is a websockets client. Messages are relayed as
they are, both ways; when one side closes, so does the other.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from taskmgmt_deploy.aws.signing import Signer

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "host"}
)
DROPPED_REQUEST = HOP_BY_HOP | {"content-length", "origin", "referer", "accept-encoding", "cookie"}
TIMEOUT = 35.0  # the HTTP API gives up on its integration after 30 s


class Upstream:
    """The region's deployed APIs, and how to call them."""

    def __init__(self, http_url: str, websocket_url: str | None, region: str, signer: Signer | None, hint: str = ""):
        self.http_url, self.websocket_url = http_url.rstrip("/"), websocket_url
        self.region, self.signer = region, signer
        self.hint = hint  # what serve's 502 adds when the API cannot be reached

    def forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request to the HTTP API; its answer (status, headers, body). Raises OSError when
        the API cannot be reached."""
        url = self.http_url + target
        send = {k.lower(): v for k, v in headers.items() if k.lower() not in DROPPED_REQUEST}
        if self.signer is not None:
            send.pop("authorization", None)
            signed = {"content-type": send["content-type"]} if "content-type" in send else {}
            send.update(self.signer.headers(method, url, self.region, body, signed))
        parts = urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.netloc, timeout=TIMEOUT)
        try:
            connection.request(method, target, body=body or None, headers=send)
            response = connection.getresponse()
            payload = response.read()
            answer = {k.lower(): v for k, v in response.getheaders() if _passed_back(k.lower())}
            return response.status, answer, payload
        finally:
            connection.close()

    def open_socket(self, query: str) -> Any:
        """A connection to the WebSocket API (its `$connect`), as the browser asked for it; use it
        in a `with` block."""
        from websockets.sync.client import connect

        if self.websocket_url is None:
            raise OSError("no WebSocket API is deployed in this region")
        url = self.websocket_url + (f"?{query}" if query else "")
        headers = self.signer.headers("GET", url, self.region) if self.signer is not None else {}
        return connect(url, additional_headers=headers, open_timeout=10, max_size=None)


def _passed_back(header: str) -> bool:
    """serve answers with its own length and CORS headers."""
    return header not in HOP_BY_HOP and header != "content-length" and not header.startswith("access-control-")


class SocketBridge:
    """Relays one browser socket to one socket of the WebSocket API."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        write: Callable[[bytes], None],
        end: Callable[[], None],
        log: Callable[[str], None],
    ):
        self.read, self.write, self.end, self.log = read, write, end, log  # end: no more bytes to write
        self._lock = threading.Lock()

    def run(self, raw_head: bytes, open_upstream: Callable[[], Any]) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.server import ServerProtocol

        protocol = ServerProtocol(max_size=None)
        protocol.receive_data(raw_head)
        events = protocol.events_received()
        if not events or protocol.handshake_exc is not None:
            self._send(protocol)
            return
        try:
            upstream = open_upstream()
        except InvalidStatus as refused:  # $connect refused: so is the browser, with the same status
            status = refused.response.status_code
            protocol.send_response(protocol.reject(status, f"the WebSocket API refused the connection ({status})"))
            self._send(protocol)
            return
        except Exception as exc:  # noqa: BLE001 - whatever it is, the browser gets a 502 naming it
            self.log(f"the WebSocket API cannot be reached: {exc}")
            protocol.send_response(protocol.reject(502, f"the WebSocket API cannot be reached: {exc}"))
            self._send(protocol)
            return
        with upstream:
            response = protocol.accept(events[0])
            protocol.send_response(response)
            self._send(protocol)
            if response.status_code != 101:
                return
            down = threading.Thread(target=self._down, args=(protocol, upstream), daemon=True)
            down.start()
            try:
                self._up(protocol, upstream)
            finally:
                upstream.close()
                down.join(10)

    def _up(self, protocol: Any, upstream: Any) -> None:
        """Browser to API: each complete message, as text or binary."""
        from websockets.frames import Opcode
        from websockets.protocol import State

        parts: list[bytes] = []
        text = True
        while True:
            try:
                data = self.read(65536)
            except OSError:
                data = b""
            with self._lock:
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                frames = protocol.events_received()
                self._send(protocol)
            for frame in frames:
                if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                    parts, text = [frame.data], frame.opcode is Opcode.TEXT
                elif frame.opcode is Opcode.CONT:
                    parts.append(frame.data)
                else:
                    continue
                if frame.fin:
                    message = b"".join(parts)
                    upstream.send(message.decode() if text else message)
            if not data or protocol.state is State.CLOSED:
                return

    def _down(self, protocol: Any, upstream: Any) -> None:
        """API to browser; when the API closes, the browser is closed with its code."""
        from websockets.exceptions import ConnectionClosed
        from websockets.protocol import State

        try:
            for message in upstream:
                with self._lock:
                    if protocol.state is not State.OPEN:
                        return
                    if isinstance(message, str):
                        protocol.send_text(message.encode())
                    else:
                        protocol.send_binary(message)
                    self._send(protocol)
        except ConnectionClosed:
            pass
        code = upstream.protocol.close_code
        with self._lock:
            if protocol.state is State.OPEN:
                if code is None or code in (1005, 1006, 1015):  # codes a close frame may not carry
                    protocol.send_close(1011, "")
                else:
                    protocol.send_close(code, upstream.protocol.close_reason or "")
                self._send(protocol)

    def _send(self, protocol: Any) -> None:
        for chunk in protocol.data_to_send():
            try:
                if chunk:
                    self.write(chunk)
                else:  # the protocol is done sending: the TCP connection is closed on our side
                    self.end()
            except OSError:
                return
