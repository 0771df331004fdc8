"""API Gateway's data plane in the emulator (rows W1-W10 of docs/pessimistic-emulation.md): APIs
created directly in the emulator, a stub function behind them, real HTTP and WebSocket clients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from taskmgmt_deploy.emulator.fidelity import FidelitySettings
from taskmgmt_deploy.emulator.gateway.issuer import issuer_url, request_token
from taskmgmt_deploy.emulator.server import EmulatorServer, start_server
from tests.conftest import FakeClock
from tests.sandbox.gateway_fixtures import (
    CREDENTIALS,
    REGION,
    StubFunction,
    client,
    http_api,
    make_function,
    signed,
    websocket_api,
)


class Emulator:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.stub = StubFunction()
        self.server: EmulatorServer = start_server(
            FidelitySettings(iam_propagation=0, lambda_settle=0), clock=self.clock, invoker=self.stub
        )
        self.url = self.server.url
        self.function = make_function(self.url, REGION)
        self.issuer = issuer_url(self.url)
        self.iam_api = http_api(self.url, REGION, self.function, auth="AWS_IAM")
        self.jwt_api = http_api(
            self.url,
            REGION,
            self.function,
            auth="JWT",
            issuer=self.issuer,
            cors={
                "AllowOrigins": ["http://localhost:3000"],
                "AllowMethods": ["GET", "POST"],
                "AllowHeaders": ["authorization", "content-type"],
                "MaxAge": 600,
            },
        )
        self.live = websocket_api(self.url, REGION, self.function)

    @property
    def gateway(self) -> Any:
        return self.server.fidelity.gateway


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emulator = Emulator()
    yield emulator
    emulator.server.stop()


def call(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def token(emulator: Emulator, **claims: Any) -> str:
    return request_token(emulator.issuer, {"aud": "board", **claims})


# -- W1: the endpoint ------------------------------------------------------------------------
def test_api_endpoint_is_a_loopback_port_of_its_own_for_each_api(emulator: Emulator) -> None:
    """W1: GetApi's ApiEndpoint names the API's own loopback port."""
    apis = client("apigatewayv2", emulator.url).get_apis()["Items"]
    endpoints = {a["ApiId"]: a["ApiEndpoint"] for a in apis}
    assert endpoints[emulator.iam_api["ApiId"]].startswith("http://127.0.0.1:")
    assert endpoints[emulator.live["ApiId"]].startswith("ws://127.0.0.1:")
    assert len(set(endpoints.values())) == len(endpoints)
    # the execute-api host and the emulator's own endpoint serve no API
    status, _, body = call(emulator.url + "/tasks")
    assert status != 200 or b"route" not in body


# -- the HTTP API ----------------------------------------------------------------------------
def test_an_http_api_event_is_payload_format_2_0_with_stage_variables(emulator: Emulator) -> None:
    url = emulator.jwt_api["ApiEndpoint"] + "/tasks/t%201?project=a&project=b"
    status, headers, body = call(
        url, headers={"Authorization": f"Bearer {token(emulator, sub='ana')}", "Cookie": "a=1; b=2"}
    )
    assert status == 200, body
    assert json.loads(body) == {"path": "/tasks/t%201", "route": "GET /tasks/{task_id}", "region": REGION}
    assert headers["apigw-requestid"]
    event = emulator.stub.of("GET /tasks/{task_id}")[-1]
    assert event["version"] == "2.0"
    assert event["pathParameters"] == {"task_id": "t 1"}
    assert event["queryStringParameters"] == {"project": "a,b"}
    assert event["rawQueryString"] == "project=a&project=b"
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["stageVariables"] == {"websocketUrl": "ws://x/live", "region": REGION}
    context = event["requestContext"]
    assert context["stage"] == "$default" and context["apiId"] == emulator.jwt_api["ApiId"]
    assert context["http"]["method"] == "GET" and context["authorizer"]["jwt"]["claims"]["sub"] == "ana"
    assert "body" not in event and event["isBase64Encoded"] is False


def test_routes_match_most_specific_first_and_anything_else_is_404(emulator: Emulator) -> None:
    base = emulator.jwt_api["ApiEndpoint"]
    auth = {"Authorization": token(emulator)}  # without "Bearer ": API Gateway takes the token alone too
    assert json.loads(call(base + "/tasks", headers=auth)[2])["route"] == "GET /tasks"
    assert json.loads(call(base + "/files/a/b/c", method="DELETE", headers=auth)[2])["route"] == "ANY /files/{path+}"
    for path, method in (("/nope", "GET"), ("/tasks", "PUT"), ("/tasks/a/b", "GET"), ("/tasks", "HEAD")):
        status, _, body = call(base + path, method=method, headers=auth)
        assert (status, body if method != "HEAD" else b'{"message": "Not Found"}') == (
            404,
            b'{"message": "Not Found"}',
        ), path


def test_a_body_that_is_not_text_reaches_the_function_base64_encoded(emulator: Emulator) -> None:
    """W4: a body whose content type is not text arrives base64-encoded."""
    base, auth = emulator.jwt_api["ApiEndpoint"], {"Authorization": f"Bearer {token(emulator)}"}
    call(base + "/tasks", "POST", {**auth, "Content-Type": "application/json"}, b'{"title": "x"}')
    assert emulator.stub.of("POST /tasks")[-1]["body"] == '{"title": "x"}'
    call(base + "/tasks", "POST", {**auth, "Content-Type": "application/octet-stream"}, b'{"title": "x"}')
    event = emulator.stub.of("POST /tasks")[-1]
    assert event["isBase64Encoded"] is True and event["body"] == "eyJ0aXRsZSI6ICJ4In0="


def test_iam_routes_need_a_valid_sigv4_signature_for_this_api(emulator: Emulator) -> None:
    """W2: a signature for this URL, body, region and service, with a known secret."""
    base = emulator.iam_api["ApiEndpoint"]
    assert call(base + "/tasks")[0:3:2] == (403, b'{"message": "Forbidden"}')
    assert call(base + "/tasks", headers=signed("GET", base + "/tasks"))[0] == 200
    assert call(base + "/tasks?x=1", headers=signed("GET", base + "/tasks"))[0] == 403  # signed another URL
    assert call(base + "/tasks", headers=signed("GET", base + "/tasks", region="us-east-2"))[0] == 403
    assert call(base + "/tasks", headers=signed("GET", base + "/tasks", secret="wrong"))[0] == 403
    body = b'{"title": "x"}'
    headers = signed("POST", base + "/tasks", body=body, headers={"content-type": "application/json"})
    assert call(base + "/tasks", "POST", headers, body)[0] == 200
    assert call(base + "/tasks", "POST", headers, b'{"title": "y"}')[0] == 403  # the body is signed too
    assert call(base + "/")[0] == 200  # the board's routes are open
    assert emulator.stub.of("GET /tasks")[-1]["requestContext"]["authorizer"]["iam"]["accessKey"] == "sandbox"


def test_jwt_routes_take_only_a_valid_token_of_the_issuer_for_the_audience(emulator: Emulator) -> None:
    """W3: only a token of the issuer, for the audience, in its lifetime."""
    url = emulator.jwt_api["ApiEndpoint"] + "/tasks"
    now = int(time.time())
    bad = {
        "no token": "",
        "wrong audience": token(emulator, aud="someone-else"),
        "expired": token(emulator, iat=now - 7200, exp=now - 3600),
        "not yet valid": token(emulator, nbf=now + 3600),
        "tampered": token(emulator)[:-6] + "AAAAAA",
        "not a jwt": "abc.def",
    }
    for why, value in bad.items():
        status, headers, body = call(url, headers={"Authorization": f"Bearer {value}"} if value else {})
        assert (status, body) == (401, b'{"message": "Unauthorized"}'), why
        assert headers["www-authenticate"].startswith("Bearer"), why
    assert call(url, headers={"Authorization": f"Bearer {token(emulator, client_id='board', aud=None)}"})[0] == 401
    assert call(url, headers={"Authorization": f"Bearer {token(emulator)}"})[0] == 200
    assert call(emulator.jwt_api["ApiEndpoint"] + "/board/index.html")[0] == 200


def test_cors_preflight_is_answered_by_the_api_and_the_functions_cors_headers_dropped(emulator: Emulator) -> None:
    """W6: with CORS configured, the API's CORS headers, never the function's."""
    url = emulator.jwt_api["ApiEndpoint"] + "/tasks"
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    status, headers, _ = call(url, "OPTIONS", {"Origin": "http://localhost:3000", **asked})
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["access-control-allow-methods"] == "GET,POST" and headers["access-control-max-age"] == "600"
    status, headers, _ = call(url, "OPTIONS", {"Origin": "https://evil.example", **asked})
    assert status == 204 and "access-control-allow-origin" not in headers
    auth = {"Authorization": f"Bearer {token(emulator)}"}
    _, headers, _ = call(url, headers={"Origin": "http://localhost:3000", **auth})
    assert headers["access-control-allow-origin"] == "http://localhost:3000"  # not the function's evil.example
    _, headers, _ = call(url, headers={"Origin": "https://evil.example", **auth})
    assert "access-control-allow-origin" not in headers


def test_a_failing_function_is_a_500_and_a_plain_json_answer_a_200(emulator: Emulator) -> None:
    base, auth = emulator.jwt_api["ApiEndpoint"], {"Authorization": f"Bearer {token(emulator)}"}
    assert call(base + "/fail", headers=auth)[0:3:2] == (500, b'{"message": "Internal Server Error"}')
    status, headers, body = call(base + "/plain", headers=auth)
    assert (status, json.loads(body), headers["content-type"]) == (200, {"just": "json"}, "application/json")


def test_without_the_invoke_permission_the_api_answers_500_and_the_function_never_runs(emulator: Emulator) -> None:
    """W5: the function's policy must let API Gateway invoke it for this API."""
    api = http_api(emulator.url, REGION, emulator.function, auth="NONE", permit=False)
    before = len(emulator.stub.events)
    assert call(api["ApiEndpoint"] + "/tasks")[0:3:2] == (500, b'{"message": "Internal Server Error"}')
    assert len(emulator.stub.events) == before
    assert emulator.gateway.records[-1]["outcome"] == "no-permission"
    client("apigatewayv2", emulator.url).delete_api(ApiId=api["ApiId"])
    with pytest.raises(OSError):
        urllib.request.urlopen(api["ApiEndpoint"] + "/tasks", timeout=2)


def test_default_route_throttling_answers_429_past_the_burst(emulator: Emulator) -> None:
    """W11: the stage's default route throttling, on the injected clock."""
    api = http_api(emulator.url, REGION, emulator.function, auth="NONE", throttle=(2, 1))
    url = api["ApiEndpoint"] + "/tasks"
    assert [call(url)[0] for _ in range(3)] == [200, 200, 429]
    emulator.clock.advance(1.0)
    assert call(url)[0] == 200
    client("apigatewayv2", emulator.url).delete_api(ApiId=api["ApiId"])


# -- the WebSocket API -----------------------------------------------------------------------
def live_url(emulator: Emulator, query: str = "") -> str:
    return emulator.live["ApiEndpoint"] + "/live" + query


def open_socket(emulator: Emulator, query: str = "") -> Any:
    url = live_url(emulator, query)
    return connect(url, additional_headers=signed("GET", url.replace("ws://", "http://")), open_timeout=10)


def management(emulator: Emulator) -> Any:
    endpoint = emulator.live["ApiEndpoint"].replace("ws://", "http://") + "/live"
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)


def connection_id_of(emulator: Emulator, before: int) -> str:
    connects = emulator.stub.of("$connect")[before:]
    return str(connects[-1]["requestContext"]["connectionId"])


def test_messages_are_routed_by_the_selection_expression_and_answered_through_the_management_api(
    emulator: Emulator,
) -> None:
    before = len(emulator.stub.of("$connect"))
    with open_socket(emulator, "?token=ok") as socket:
        socket.send(json.dumps({"action": "echo", "n": 1}))
        assert json.loads(socket.recv(timeout=10)) == {
            "action": "echo",
            "n": 1,
        }  # posted back; not the return value (W10)
        socket.send("not json")
        assert socket.recv(timeout=10) == "not json"  # $default
        connection = connection_id_of(emulator, before)
        info = management(emulator).get_connection(ConnectionId=connection)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        event = emulator.stub.of("$connect")[-1]
        assert event["queryStringParameters"] == {"token": "ok"}
        assert event["requestContext"]["domainName"] == emulator.live["ApiEndpoint"].removeprefix("ws://")
        assert event["requestContext"]["stage"] == "live" and connection.endswith("=") and len(connection) == 16
        assert event["requestContext"]["identity"]["accessKey"] == "sandbox"  # who signed the handshake
    deadline = time.monotonic() + 10
    while not [e for e in emulator.stub.of("$disconnect") if e["requestContext"]["connectionId"] == connection]:
        assert time.monotonic() < deadline, "no $disconnect"
        time.sleep(0.02)
    with pytest.raises(management(emulator).exceptions.GoneException):
        management(emulator).post_to_connection(ConnectionId=connection, Data=b"late")


def test_a_route_answers_the_client_only_with_a_route_response(emulator: Emulator) -> None:
    """W10: the function's return value reaches the client only with a route response."""
    two_way = websocket_api(emulator.url, REGION, emulator.function, auth="NONE", two_way=True)
    url = two_way["ApiEndpoint"] + "/live"
    with connect(url, open_timeout=10) as socket:
        socket.send(json.dumps({"action": "echo"}))
        assert {socket.recv(timeout=10), socket.recv(timeout=10)} == {'{"action": "echo"}', "two-way answer"}
    with open_socket(emulator) as socket:
        socket.send(json.dumps({"action": "silent"}))
        socket.send(json.dumps({"action": "echo"}))
        assert socket.recv(timeout=10) == '{"action": "echo"}'  # nothing from `silent`
        socket.send(json.dumps({"action": "echo", "n": 2}))
        assert socket.recv(timeout=10) == '{"action": "echo", "n": 2}'  # nor the first echo's return value
    client("apigatewayv2", emulator.url).delete_api(ApiId=two_way["ApiId"])


def test_the_messages_of_one_connection_are_handled_at_once_in_no_promised_order(emulator: Emulator) -> None:
    """W13: a message whose invocation is still running does not hold back the next one."""
    emulator.stub.released.clear()
    with open_socket(emulator) as socket:
        socket.send(json.dumps({"action": "hold"}))
        socket.send(json.dumps({"action": "echo", "n": 2}))
        try:
            first = socket.recv(timeout=5)
        except TimeoutError:
            first = None
        finally:
            emulator.stub.released.set()
        assert first == '{"action": "echo", "n": 2}', "the second message waited for the first to be handled"
        assert socket.recv(timeout=10) == '{"action": "hold"}'


def test_connect_refused_or_unsigned_opens_no_socket_and_a_post_during_connect_is_gone(emulator: Emulator) -> None:
    """W9: no socket when $connect refuses; a post during $connect is Gone."""
    with pytest.raises(InvalidStatus) as refused:
        open_socket(emulator, "?token=bad")
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as unsigned:
        connect(live_url(emulator), open_timeout=10)
    assert unsigned.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(emulator.live["ApiEndpoint"] + "/other-stage", open_timeout=10)
    with open_socket(emulator, "?early=1"):
        pass
    assert emulator.stub.early[-1] == "GoneException"


def test_the_management_api_needs_a_signature_and_refuses_oversized_posts(emulator: Emulator) -> None:
    """W7: a post over 32 KB closes the connection (1009), over 128 KB is refused."""
    before = len(emulator.stub.of("$connect"))
    with open_socket(emulator) as socket:
        connection = connection_id_of(emulator, before)
        url = emulator.live["ApiEndpoint"].replace("ws://", "http://") + f"/live/@connections/{connection}"
        assert call(url, "POST", {}, b"x")[0] == 403
        with pytest.raises(management(emulator).exceptions.PayloadTooLargeException):
            management(emulator).post_to_connection(ConnectionId=connection, Data=b"x" * (128 * 1024 + 1))
        management(emulator).post_to_connection(ConnectionId=connection, Data=b"x" * (32 * 1024))
        assert len(socket.recv(timeout=10)) == 32 * 1024
        management(emulator).post_to_connection(ConnectionId=connection, Data=b"x" * (32 * 1024 + 1))  # W7
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 1009


def test_a_frame_over_32_kb_from_the_client_closes_the_connection(emulator: Emulator) -> None:
    """W7: a frame over 32 KB closes the connection with 1009."""
    with open_socket(emulator) as socket:
        socket.send("y" * (32 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 1009


def test_delete_connection_closes_it_and_disconnect_is_invoked(emulator: Emulator) -> None:
    before = len(emulator.stub.of("$connect"))
    with open_socket(emulator) as socket:
        connection = connection_id_of(emulator, before)
        management(emulator).delete_connection(ConnectionId=connection)
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)


def test_idle_connections_close_after_10_minutes_and_every_connection_after_2_hours(emulator: Emulator) -> None:
    """W8: only a message counts as activity, not a ping; 2 hours at most."""
    with open_socket(emulator) as idle, open_socket(emulator) as busy:
        for _ in range(11):  # 11 × 5 minutes: busy sends a message each time, idle only pings
            emulator.clock.advance(300)
            idle.ping()
            busy.send(json.dumps({"action": "silent"}))
            time.sleep(0.05)  # the message reaches the gateway before the sweep
            emulator.gateway.sweep()
            if idle.protocol.state.name != "OPEN":
                break
        with pytest.raises(ConnectionClosed) as closed:
            idle.recv(timeout=10)
        assert closed.value.rcvd.code == 1001
        busy.send(json.dumps({"action": "echo"}))
        assert busy.recv(timeout=10) == '{"action": "echo"}'
        emulator.clock.advance(7200)
        busy.send(json.dumps({"action": "silent"}))
        time.sleep(0.05)
        emulator.gateway.sweep()
        with pytest.raises(ConnectionClosed):
            busy.recv(timeout=10)


def test_the_sandbox_issuers_login_page_hands_a_token_back_to_a_loopback_redirect(emulator: Emulator) -> None:
    """The hosted login the board sends people to (JWT_LOGIN_URL): the token in the fragment (W3)."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    asked = {"client_id": "board", "response_type": "token", "redirect_uri": "http://127.0.0.1:8080/", "state": "s1"}
    status, headers, page = call(f"{emulator.issuer}/login?{urlencode(asked)}")
    assert status == 200 and b'<label for="username">' in page and headers["content-type"].startswith("text/html")

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None  # look at the redirect instead of following it

    opener = urllib.request.build_opener(Keep)
    with pytest.raises(urllib.error.HTTPError) as redirected:
        opener.open(f"{emulator.issuer}/login?{urlencode({**asked, 'username': 'ana'})}", timeout=10)
    location = redirected.value.headers["Location"]
    assert location.startswith("http://127.0.0.1:8080/#")
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
    assert fragment["state"] == "s1" and fragment["token_type"] == "Bearer"
    url = emulator.jwt_api["ApiEndpoint"] + "/tasks"
    assert call(url, headers={"Authorization": f"Bearer {fragment['id_token']}"})[0] == 200
    elsewhere = {**asked, "redirect_uri": "https://evil.example/"}
    assert call(f"{emulator.issuer}/login?{urlencode(elsewhere)}")[0] == 400


def test_an_http_api_writes_its_access_log_only_to_a_log_group_that_exists(emulator: Emulator) -> None:
    """W12: one line a request, in the stage's format; a group that is gone gets nothing, and is not made."""
    logs = client("logs", emulator.url)
    form = (
        '{"id":"$context.requestId","route":"$context.routeKey",'
        '"status":"$context.status","ip":"$context.identity.sourceIp"}'
    )
    arns = {}
    for group in ("/test/access", "/test/gone"):
        logs.create_log_group(logGroupName=group)
        arns[group] = f"arn:aws:logs:{REGION}:123456789012:log-group:{group}"
    logged = http_api(emulator.url, REGION, emulator.function, auth="NONE", access_log=(arns["/test/access"], form))
    unlogged = http_api(emulator.url, REGION, emulator.function, auth="NONE", access_log=(arns["/test/gone"], form))
    logs.delete_log_group(logGroupName="/test/gone")
    _, headers, _ = call(logged["ApiEndpoint"] + "/tasks")
    call(logged["ApiEndpoint"] + "/nope")
    lines = [json.loads(e["message"]) for e in logs.filter_log_events(logGroupName="/test/access")["events"]]
    assert lines == [
        {"id": headers["apigw-requestid"], "route": "GET /tasks", "status": "200", "ip": "127.0.0.1"},
        {"id": lines[1]["id"], "route": "-", "status": "404", "ip": "127.0.0.1"},
    ]
    assert call(unlogged["ApiEndpoint"] + "/tasks")[0] == 200
    assert "/test/gone" not in [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    for api in (logged, unlogged):
        client("apigatewayv2", emulator.url).delete_api(ApiId=api["ApiId"])
