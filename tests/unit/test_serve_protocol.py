"""taskmgmt serve as an HTTP server: every request, however malformed, gets a JSON answer.

The malformed cases go over raw sockets: an HTTP client library would refuse to send them.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from taskmgmt_deploy.usecases.functions import FunctionUnavailable
from taskmgmt_deploy.usecases.serve import MAX_BODY_BYTES, TOO_LARGE, make_server

TASKS = {"tasks": [], "next_cursor": None}


class Bridge:
    def __init__(self, port: int, seen: list[dict], logged: list[str]):
        self.port, self.seen, self.logged = port, seen, logged

    def send(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send bytes as they are; read the whole answer (the server must close or finish it)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body


def answering(event: dict) -> tuple[bytes, str | None]:
    path = event["rawPath"]
    if path == "/boom":
        return b'{"errorMessage": "kaput\\nat line 3", "errorType": "RuntimeError"}', "Unhandled"
    if path == "/gone":
        raise FunctionUnavailable("the function f cannot be invoked (...); deploy it with `taskmgmt deploy`")
    if path == "/nonsense":
        return b'"just a string"', None
    answer = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(TASKS)}
    return json.dumps(answer).encode(), None


def serving(invoke: Callable[[dict], tuple[bytes, str | None]], **options: Any):
    seen: list[dict] = []
    logged: list[str] = []

    def call(payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        seen.append(event)
        return invoke(event)

    server = make_server(0, call, logged.append, **options)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, Bridge(server.server_port, seen, logged)


@pytest.fixture
def bridge():
    server, bridge = serving(answering)
    yield bridge
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b"5, 6"])
def test_a_malformed_or_negative_content_length_is_a_400(bridge, length):
    status, headers, body = bridge.send(b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "invalid_request",
        "message": "Content-Length must be one non-negative integer",
    }
    assert bridge.seen == []


def test_two_different_content_lengths_are_a_400(bridge):
    status, _, _ = bridge.send(b"POST /tasks HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert status == 400 and bridge.seen == []


def test_a_malformed_request_line_gets_json_not_html(bridge):
    status, headers, body = bridge.send(b"NONSENSE\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "invalid_request"
    assert headers["access-control-allow-origin"] == "*"


def test_any_method_reaches_the_function(bridge):
    status, _, body = bridge.send(b"BREW /tasks HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and json.loads(body) == TASKS
    assert [e["requestContext"]["http"]["method"] for e in bridge.seen] == ["BREW"]


def test_options_answers_the_cors_preflight_itself(bridge):
    status, headers, body = bridge.send(
        b"OPTIONS /tasks/1 HTTP/1.1\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: PATCH\r\n"
        b"Access-Control-Request-Headers: content-type, if-match\r\n\r\n"
    )
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == "*"
    assert "PATCH" in headers["access-control-allow-methods"] and "DELETE" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type, if-match"
    assert bridge.seen == []


def test_head_answers_like_get_without_the_body(bridge):
    got = bridge.send(b"GET /tasks HTTP/1.1\r\n\r\n")
    head = bridge.send(b"HEAD /tasks HTTP/1.1\r\n\r\n")
    assert head[0] == got[0] == 200
    assert head[1]["content-length"] == got[1]["content-length"] == str(len(got[2])) and head[2] == b""
    assert [e["requestContext"]["http"]["method"] for e in bridge.seen] == ["GET", "GET"]


def test_a_body_over_the_limit_gets_the_functions_own_413(bridge):
    over = b"x" * (MAX_BODY_BYTES + 1)
    status, headers, body = bridge.send(b"POST /tasks HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(over) + over)
    assert status == 413 and json.loads(body) == TOO_LARGE
    assert headers["access-control-allow-origin"] == "*"
    huge = bridge.send(b"POST /tasks HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n")
    assert huge[0] == 413 and json.loads(huge[2]) == TOO_LARGE  # one limit, one answer, whatever the size
    assert bridge.seen == []
    at_limit = b"x" * MAX_BODY_BYTES
    assert bridge.send(b"POST /tasks HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(at_limit) + at_limit)[0] == 200
    assert len(bridge.seen) == 1  # exactly at the limit, the function decides


def test_a_function_that_cannot_be_invoked_is_a_502_naming_why(bridge, capsys):
    status, headers, body = bridge.send(b"GET /gone HTTP/1.1\r\n\r\n")
    assert status == 502 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["error"] == "function_unavailable" and "deploy it with `taskmgmt deploy`" in answer["message"]
    assert "\n" not in answer["message"]
    assert [line for line in bridge.logged if "could not be invoked" in line] == [
        "the function could not be invoked: " + answer["message"]
    ]
    assert "Traceback" not in capsys.readouterr().err


def test_a_failing_function_is_a_502_in_one_line(bridge):
    status, _, body = bridge.send(b"GET /boom HTTP/1.1\r\n\r\n")
    assert status == 502
    message = "the function failed: RuntimeError: kaput at line 3"
    assert json.loads(body) == {"error": "function_error", "message": message}


def test_an_answer_that_is_not_http_is_a_502(bridge):
    status, _, body = bridge.send(b"GET /nonsense HTTP/1.1\r\n\r\n")
    assert status == 502 and json.loads(body)["error"] == "bad_function_response"


def test_requests_are_served_concurrently():
    both_inside = threading.Barrier(2, timeout=10)  # passes only when two invocations run at once

    def invoke(event: dict) -> tuple[bytes, str | None]:
        both_inside.wait()
        return answering(event)

    server, bridge = serving(invoke)
    try:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(bridge.send(b"GET /tasks HTTP/1.1\r\n\r\n")[0]))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert results == [200, 200]
    finally:
        server.shutdown()
        server.server_close()


def test_a_configured_origin_is_the_one_allowed():
    server, bridge = serving(answering, cors_origin="http://localhost:3000")
    try:
        _, headers, _ = bridge.send(b"GET /tasks HTTP/1.1\r\nOrigin: http://localhost:3000\r\n\r\n")
        assert headers["access-control-allow-origin"] == "http://localhost:3000" and headers["vary"] == "Origin"
    finally:
        server.shutdown()
        server.server_close()
