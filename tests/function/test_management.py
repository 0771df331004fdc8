"""PostToConnection as the function sends it: SigV4-signed POSTs over kept-alive connections,
checked here by the sandbox's own SigV4 check on a loopback server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from task_processor import management
from task_processor.management import FAILED, GONE, SENT, Poster, SignedClient
from taskmgmt_deploy.emulator.gateway.auth import Denied, check_sigv4


class ManagementApi(ThreadingHTTPServer):
    """A region's @connections endpoint: answers by connection id, checks every signature."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, bytes]] = []
        self.denied: list[str] = []
        self.answers: dict[str, list[int]] = {}  # connection id -> statuses to answer, in turn
        self.connections = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ManagementApi

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            check_sigv4(
                "POST", f"http://{headers['host']}{self.path}", headers, body, "eu-west-1", time.time(), _secret
            )
        except Denied as exc:
            self.server.denied.append(str(exc))
            return self._answer(403, "ForbiddenException")
        connection_id = self.path.rsplit("/", 1)[1]
        with self.server.lock:
            turns = self.server.answers.get(connection_id) or [200]
            status = turns.pop(0) if len(turns) > 1 else turns[0]
            if status == 200:
                self.server.received.append((self.path, body))
        if status == 0:  # the connection drops without an answer
            self.close_connection = True
            return
        self._answer(status, {410: "GoneException", 503: "ServiceUnavailable"}.get(status, ""))

    def _answer(self, status: int, error_type: str) -> None:
        payload = b"" if status == 200 else json.dumps({"message": error_type}).encode()
        self.send_response(status)
        if error_type:
            self.send_header("x-amzn-errortype", f"{error_type}:http://internal.amazon.com/coral/")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def _secret(access_key: str) -> str | None:
    return "test-secret" if access_key == "AKIDTEST" else None


@pytest.fixture
def api(monkeypatch) -> Iterator[ManagementApi]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setattr(management, "_credentials", [])  # found again from this environment
    server = ManagementApi()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_posts_are_signed_as_api_gateway_checks_them_and_reuse_one_connection(api: ManagementApi):
    client = SignedClient(f"http://127.0.0.1:{api.server_port}/live", "eu-west-1")
    for connection_id in ("L0SM9cOFvHcCIhw=", "a+b/c"):  # base64 ids carry =, + and /
        assert client.post_to_connection(ConnectionId=connection_id, Data=b'{"type":"pong"}') == {}
    assert api.denied == []
    assert api.received == [
        ("/live/@connections/L0SM9cOFvHcCIhw%3D", b'{"type":"pong"}'),
        ("/live/@connections/a%2Bb%2Fc", b'{"type":"pong"}'),
    ]
    assert api.connections == 1


def test_a_post_signed_for_another_region_is_refused(api: ManagementApi):
    client = SignedClient(f"http://127.0.0.1:{api.server_port}/live", "us-east-1")
    with pytest.raises(management.PostFailed) as refused:
        client.post_to_connection(ConnectionId="c1", Data=b"{}")
    assert management.error_code(refused.value) == "ForbiddenException" and "expected eu-west-1" in api.denied[0]


def test_gone_failed_and_retried_posts(api: ManagementApi):
    api.answers.update({"gone": [410], "flaky": [503, 200], "down": [503, 503], "dropped": [0, 200]})
    poster = Poster(workers=2)
    endpoint = f"http://127.0.0.1:{api.server_port}/live"
    targets = [(endpoint, "eu-west-1", cid) for cid in ("ok", "gone", "flaky", "down", "dropped")]
    outcomes = dict(poster.post_all(targets, b"{}"))
    assert outcomes == {"ok": SENT, "gone": GONE, "flaky": SENT, "down": FAILED, "dropped": SENT}
    assert sorted(path.rsplit("/", 1)[1] for path, _ in api.received) == ["dropped", "flaky", "ok"]


def test_a_server_that_does_not_answer_holds_a_post_for_the_timeout_only():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        client = SignedClient(f"http://127.0.0.1:{silent.getsockname()[1]}/live", "eu-west-1", timeout=0.05)
        management._credentials[:] = [type("C", (), {"get_frozen_credentials": lambda self: _Frozen()})()]
        started = time.monotonic()
        with pytest.raises(management.PostFailed, match="ConnectionError"):
            client.post_to_connection(ConnectionId="c1", Data=b"{}")
        assert time.monotonic() - started < 2  # two attempts of 0.05 s, not minutes
    finally:
        management._credentials.clear()
        silent.close()


class _Frozen:
    access_key, secret_key, token = "AKIDTEST", "test-secret", None
