"""taskmgmt serve in front of deployed APIs, and the live check of `smoke --sandbox`: both
regions' HTTP and WebSocket APIs served by the emulator's data plane, a stand-in function."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.signing import Signer
from taskmgmt_deploy.core.clock import SystemClock
from taskmgmt_deploy.emulator.fidelity import FidelitySettings
from taskmgmt_deploy.emulator.gateway.issuer import issuer_url, request_token
from taskmgmt_deploy.emulator.server import start_server
from taskmgmt_deploy.stack.config import load_settings
from taskmgmt_deploy.usecases.endpoints import Endpoints
from taskmgmt_deploy.usecases.forwarding import Upstream
from taskmgmt_deploy.usecases.live_check import LiveCheck
from taskmgmt_deploy.usecases.serve import make_server
from tests.conftest import FakeClock
from tests.sandbox.gateway_fixtures import CREDENTIALS, OTHER_REGION, REGION, TaskFunction, http_api, task_stack

SESSION = boto3.Session(**CREDENTIALS)


class Stack:
    def __init__(self) -> None:
        self.function = TaskFunction()
        self.server = start_server(
            FidelitySettings(iam_propagation=0, lambda_settle=0), clock=FakeClock(), invoker=self.function
        )
        self.url = self.server.url
        self.config = load_settings({}, {}, Path("/nonexistent")).stack
        self.apis = task_stack(self.url, (self.config.name("tasks"), self.config.name("live")))
        self.endpoints = Endpoints(AwsClients(SESSION, endpoint_url=self.url), self.config)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    made = Stack()
    yield made
    made.server.stop()


@pytest.fixture
def serve(stack: Stack) -> Iterator[Any]:
    """serve for the primary region, forwarding signed, as `taskmgmt serve --sandbox` runs it."""
    apis = stack.endpoints.of(REGION)
    upstream = Upstream(apis.http_url or "", apis.websocket_url, REGION, Signer(SESSION), hint="; deploy it")
    server = make_server(
        0, None, lambda line: None, upstream=upstream, board={"region": REGION, "auth": "iam", "loginUrl": None}
    )
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def call(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, got = response.read(), response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, error.headers
    return status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if raw else None


def test_endpoints_are_the_apis_api_endpoints_found_by_name(stack: Stack) -> None:
    for region in (REGION, OTHER_REGION):
        apis = stack.endpoints.of(region)
        assert apis.http_url == stack.apis[region]["http"]["ApiEndpoint"]
        assert apis.websocket_url == stack.apis[region]["live"]["ApiEndpoint"] + "/live"


def test_serve_forwards_signed_to_the_http_api_and_answers_the_boards_config_itself(stack: Stack, serve: str) -> None:
    status, headers, answer = call(serve + "/tasks", "POST", {"title": "Plan the launch"})
    created = answer["task"]
    assert status == 201 and created["title"] == "Plan the launch"  # the IAM API took serve's signature
    status, headers, listed = call(serve + "/tasks")
    assert status == 200 and created in listed["tasks"]
    assert headers["access-control-allow-origin"] == "*" and headers["apigw-requestid"]
    assert headers["x-seen-authorization"].startswith("AWS4-HMAC-SHA256 Credential=sandbox/")
    status, _, config = call(serve + "/board/config.json")
    port = serve.rsplit(":", 1)[1]
    assert (status, config) == (
        200,
        {"websocketUrl": f"ws://127.0.0.1:{port}/live", "region": REGION, "auth": "iam", "loginUrl": None},
    )
    assert call(serve + "/nowhere")[0:3:2] == (404, {"message": "Not Found"})  # API Gateway's own answer


def test_the_boards_socket_is_relayed_to_the_websocket_api_signed(stack: Stack, serve: str) -> None:
    socket_url = serve.replace("http://", "ws://") + "/live"
    with connect(socket_url, open_timeout=10) as socket:  # the browser does not sign; serve does
        socket.send(json.dumps({"action": "subscribe", "all": True}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "subscribed", "all": True}
        created = call(serve + "/tasks", "POST", {"title": "Seen live"})[2]["task"]
        message = json.loads(socket.recv(timeout=10))
        assert (message["type"], message["event"], message["task"]) == ("task", "task.created", created)
    with pytest.raises(InvalidStatus) as refused:  # $connect's refusal reaches the browser
        connect(socket_url + "?token=bad", open_timeout=10)
    assert refused.value.response.status_code == 401


def test_with_jwt_serve_passes_the_token_through_and_never_signs(stack: Stack) -> None:
    issuer = issuer_url(stack.url)
    function = f"arn:aws:lambda:{REGION}:123456789012:function:task-processor"
    api = http_api(stack.url, REGION, function, auth="JWT", issuer=issuer, name="jwt-tasks")
    server = make_server(
        0,
        None,
        lambda line: None,
        upstream=Upstream(api["ApiEndpoint"], None, REGION, None),
        board={"region": REGION, "auth": "jwt", "loginUrl": f"{issuer}/login"},
    )
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert call(base + "/tasks")[0:3:2] == (401, {"message": "Unauthorized"})
        token = request_token(issuer, {"aud": "board"})
        status, headers, _ = call(base + "/tasks", headers={"authorization": f"Bearer {token}"})
        assert status == 200 and headers["x-seen-authorization"] == f"Bearer {token}"
        assert call(base + "/board/config.json")[2]["websocketUrl"] is None  # no WebSocket API to relay to
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_that_cannot_be_reached_is_a_502_naming_it(stack: Stack) -> None:
    from taskmgmt_deploy.emulator.server import free_port

    gone = Upstream(f"http://127.0.0.1:{free_port()}", None, REGION, Signer(SESSION), hint="; deploy it with `x`")
    server = make_server(0, None, lambda line: None, upstream=gone, board={})
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        status, _, body = call(f"http://127.0.0.1:{server.server_port}/tasks")
        assert status == 502 and body["error"] == "api_unavailable"
        assert body["message"].startswith(f"the HTTP API of {REGION} cannot be reached") and body["message"].endswith(
            "deploy it with `x`"
        )
    finally:
        server.shutdown()
        server.server_close()


def test_the_live_check_sees_a_change_made_in_one_region_on_a_socket_of_the_other(stack: Stack) -> None:
    check = LiveCheck(stack.endpoints, (REGION, OTHER_REGION), Signer(SESSION), SystemClock())
    assert check.deployed()
    result = check.run()
    assert result.ok, result
    assert f"arrived on the {OTHER_REGION} socket" in result.observed and result.seconds < 5
    assert not [t for t in stack.function.tasks.values() if str(t["title"]).startswith(check.marker)]  # cleaned up


def test_the_live_check_fails_when_no_change_arrives(stack: Stack) -> None:
    stack.function.broadcast = False
    try:
        check = LiveCheck(
            stack.endpoints, (REGION, OTHER_REGION), Signer(SESSION), SystemClock(), within=0.2, wait_for_rule=0.0
        )
        result = check.run()
    finally:
        stack.function.broadcast = True
    assert not result.ok
    assert result.observed == "none of 1 changes arrived within 0.2s"
    assert not [t for t in stack.function.tasks.values() if str(t["title"]).startswith(check.marker)]


def test_the_live_check_fails_in_one_line_when_the_apis_refuse(stack: Stack) -> None:
    unsigned = LiveCheck(stack.endpoints, (REGION, OTHER_REGION), None, SystemClock())
    result = unsigned.run()
    assert not result.ok and result.observed.startswith("InvalidStatus") and "\n" not in result.observed


def test_jwt_in_the_sandbox_without_an_issuer_takes_the_sandboxs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskmgmt_deploy.cli.common import SANDBOX_ISSUER, _sandbox_issuer_defaults

    flags: dict[str, str | None] = {"API_AUTH": "jwt"}
    assert _sandbox_issuer_defaults(flags)
    assert flags["JWT_ISSUER"] == SANDBOX_ISSUER and flags["JWT_AUDIENCE"] == "taskmgmt-sandbox"
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    assert not _sandbox_issuer_defaults({"API_AUTH": "jwt"})  # an issuer of one's own is kept
    assert not _sandbox_issuer_defaults({"API_AUTH": "iam"})
