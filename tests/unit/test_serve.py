"""taskmgmt serve: HTTP requests become HTTP API (v2) events; responses come back as sent."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from taskmgmt_deploy.usecases.serve import make_server


@pytest.fixture
def bridge():
    seen: list[dict] = []

    def invoke(payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        seen.append(event)
        if event["rawPath"] == "/boom":
            return b'{"errorMessage": "kaput", "errorType": "RuntimeError"}', "Unhandled"
        body = json.dumps({"echo": event["body"], "query": event["queryStringParameters"]})
        return json.dumps(
            {"statusCode": 201, "headers": {"content-type": "application/json", "x-seen": "yes"}, "body": body}
        ).encode(), None

    server = make_server(0, invoke, lambda line: None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen, server
    server.shutdown()
    server.server_close()


def test_a_request_becomes_an_http_api_event_and_the_response_is_relayed(bridge):
    url, seen, _ = bridge
    request = urllib.request.Request(
        url + "/tasks?status=pending&limit=5",
        method="POST",
        data=b'{"title": "t"}',
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        assert response.headers["x-seen"] == "yes"
        body = json.loads(response.read())
    assert body == {"echo": '{"title": "t"}', "query": {"status": "pending", "limit": "5"}}
    event = seen[0]
    assert event["version"] == "2.0" and event["rawPath"] == "/tasks"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawQueryString"] == "status=pending&limit=5"
    assert event["headers"]["content-type"] == "application/json"
    assert event["isBase64Encoded"] is False


def test_a_function_error_is_a_502(bridge):
    url, _, _ = bridge
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url + "/boom")
    assert error.value.code == 502
    assert json.loads(error.value.read())["error"] == "function_error"


def test_the_server_listens_on_loopback_only(bridge):
    """What the socket is bound to, not what the URL says: 0.0.0.0 would serve the whole network."""
    _, _, server = bridge
    host, port = server.socket.getsockname()[:2]
    assert server.socket.family == socket.AF_INET
    assert ipaddress.ip_address(host).is_loopback, host
    assert port == server.server_port
