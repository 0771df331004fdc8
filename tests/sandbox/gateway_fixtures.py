"""An emulator serving API Gateway's data plane in this process, with a stub function standing in
for the task processor: APIs are created here directly, as the deploy would create them."""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
OTHER_REGION = "us-east-2"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@dataclass
class StubFunction:
    """Answers like the task processor would: echoes HTTP events, accepts or refuses $connect by
    the `token` query parameter, answers `echo` messages through the management API."""

    events: list[dict[str, Any]] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)  # what a `hold` message waits for
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, invocation: Any) -> tuple[bytes, str | None]:
        event = json.loads(invocation.payload or b"{}")
        with self.lock:
            self.events.append(event)
        if event.get("version") == "2.0":
            if event["rawPath"] == "/fail":
                return json.dumps({"errorMessage": "boom", "errorType": "RuntimeError"}).encode(), "Unhandled"
            if event["rawPath"] == "/plain":
                return json.dumps({"just": "json"}).encode(), None
            body = {"path": event["rawPath"], "route": event["routeKey"], "region": invocation.region}
            headers = {"content-type": "application/json", "access-control-allow-origin": "https://evil.example"}
            return json.dumps({"statusCode": 200, "headers": headers, "body": json.dumps(body)}).encode(), None
        context = event["requestContext"]
        route = context["routeKey"]
        if route == "$connect":
            query = event.get("queryStringParameters") or {}
            if query.get("early"):  # a post to the connection before $connect has answered
                try:
                    self._post(context, b"too early", invocation.region)
                except Exception as exc:  # noqa: BLE001 - recorded for the test
                    self.early.append(type(exc).__name__)
            refused = query.get("token") == "bad"
            return json.dumps({"statusCode": 401 if refused else 200}).encode(), None
        if route in ("echo", "$default"):
            if '"hold"' in event["body"]:
                assert self.released.wait(10), "the test never released the held message"
            self._post(context, event["body"].encode(), invocation.region)
            return json.dumps({"statusCode": 200, "body": "two-way answer"}).encode(), None
        return json.dumps({"statusCode": 200}).encode(), None

    @staticmethod
    def _post(context: dict[str, Any], data: bytes, region: str) -> None:
        endpoint = f"http://{context['domainName']}/{context['stage']}"
        management = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=region, **CREDENTIALS)
        management.post_to_connection(ConnectionId=context["connectionId"], Data=data)

    def of(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e for e in self.events if (e.get("routeKey") or e.get("requestContext", {}).get("routeKey")) == route
            ]


def client(service: str, endpoint: str, region: str = REGION) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **CREDENTIALS)


def make_function(endpoint: str, region: str, name: str = "stub") -> str:
    iam = client("iam", endpoint, region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName=f"{name}-role")["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    fn = client("lambda", endpoint, region).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    return str(fn["FunctionArn"])


def allow(endpoint: str, region: str, function: str, api_id: str, sid: str) -> None:
    client("lambda", endpoint, region).add_permission(
        FunctionName=function,
        StatementId=sid,
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}/*",
    )


def http_api(
    endpoint: str,
    region: str,
    function: str,
    auth: str = "AWS_IAM",
    issuer: str | None = None,
    cors: dict | None = None,
    permit: bool = True,
    throttle: tuple[int, int] = (50, 100),
    name: str = "test-tasks",
    access_log: tuple[str, str] | None = None,
) -> dict[str, Any]:
    api_client = client("apigatewayv2", endpoint, region)
    extra = {"CorsConfiguration": cors} if cors else {}
    api = api_client.create_api(Name=name, ProtocolType="HTTP", **extra)
    api_id = api["ApiId"]
    integration = api_client.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function, PayloadFormatVersion="2.0"
    )["IntegrationId"]
    authorizer: dict[str, Any] = {"AuthorizationType": auth}
    if auth == "JWT":
        authorizer["AuthorizerId"] = api_client.create_authorizer(
            ApiId=api_id,
            Name="jwt",
            AuthorizerType="JWT",
            IdentitySource=["$request.header.Authorization"],
            JwtConfiguration={"Issuer": issuer, "Audience": ["board"]},
        )["AuthorizerId"]
    for key in (
        "GET /tasks",
        "POST /tasks",
        "GET /tasks/{task_id}",
        "DELETE /tasks/{task_id}",
        "GET /fail",
        "GET /plain",
        "ANY /files/{path+}",
    ):
        api_client.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}", **authorizer)
    for key in ("GET /", "GET /board/{file}"):
        api_client.create_route(
            ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}", AuthorizationType="NONE"
        )
    api_client.create_stage(
        ApiId=api_id,
        StageName="$default",
        AutoDeploy=True,
        StageVariables={"websocketUrl": "ws://x/live", "region": region},
        DefaultRouteSettings={"ThrottlingBurstLimit": throttle[0], "ThrottlingRateLimit": throttle[1]},
        **({"AccessLogSettings": {"DestinationArn": access_log[0], "Format": access_log[1]}} if access_log else {}),
    )
    if permit:
        allow(endpoint, region, function, api_id, f"http-{api_id}")
    return api_client.get_api(ApiId=api_id)


def websocket_api(
    endpoint: str, region: str, function: str, auth: str = "AWS_IAM", two_way: bool = False, name: str = "test-live"
) -> dict[str, Any]:
    api_client = client("apigatewayv2", endpoint, region)
    api = api_client.create_api(Name=name, ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")
    api_id = api["ApiId"]
    uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function}/invocations"
    integration = api_client.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri)[
        "IntegrationId"
    ]
    for key in ("$connect", "$disconnect", "echo", "$default", "silent", "subscribe"):
        extra: dict[str, Any] = {"AuthorizationType": auth if key == "$connect" else "NONE"}
        if two_way and key == "echo":
            extra["RouteResponseSelectionExpression"] = "$default"
        route = api_client.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integration}", **extra)
        if two_way and key == "echo":
            api_client.create_route_response(ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default")
    api_client.create_stage(ApiId=api_id, StageName="live", AutoDeploy=True)
    allow(endpoint, region, function, api_id, f"ws-{api_id}")
    return api_client.get_api(ApiId=api_id)


def signed(
    method: str,
    url: str,
    region: str = REGION,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret: str = "sandbox",
) -> dict[str, str]:
    """The headers of a SigV4-signed request to execute-api (what serve and the CLI send)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials("sandbox", secret), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


@dataclass
class TaskFunction:
    """A small stand-in for the task processor behind both regions' APIs: one shared store (the
    database is active-active), tasks created and deleted over HTTP, sockets subscribed to all
    changes, each change posted to every subscriber of either region through its endpoint."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscribers: dict[str, tuple[str, str]] = field(default_factory=dict)  # connection -> (endpoint, region)
    broadcast: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, invocation: Any) -> tuple[bytes, str | None]:
        event = json.loads(invocation.payload or b"{}")
        if event.get("version") == "2.0":
            return json.dumps(self._http(event, invocation.region)).encode(), None
        context = event["requestContext"]
        route, connection = context["routeKey"], context["connectionId"]
        endpoint = f"http://{context['domainName']}/{context['stage']}"
        if route == "$connect":
            refused = (event.get("queryStringParameters") or {}).get("token") == "bad"
            return json.dumps({"statusCode": 401 if refused else 200}).encode(), None
        if route == "$disconnect":
            with self.lock:
                self.subscribers.pop(connection, None)
        elif route == "subscribe":
            with self.lock:
                self.subscribers[connection] = (endpoint, invocation.region)
            _post(endpoint, invocation.region, connection, {"type": "subscribed", "all": True})
        return json.dumps({"statusCode": 200}).encode(), None

    def _http(self, event: dict[str, Any], region: str) -> dict[str, Any]:
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
        if path == "/tasks" and method == "POST":
            body = json.loads(event.get("body") or "{}")
            task = {"id": uuid.uuid4().hex, "title": body.get("title"), "version": 1}
            with self.lock:
                self.tasks[task["id"]] = task
                subscribers = list(self.subscribers.items())
            if self.broadcast:
                message = {"type": "task", "event": "task.created", "task": task, "region": region}
                for connection, (endpoint, their_region) in subscribers:
                    _post(endpoint, their_region, connection, message)
            answer = {"task": task}  # as the task API answers
            return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": json.dumps(answer)}
        if path.startswith("/tasks/") and method == "DELETE":
            with self.lock:
                gone = self.tasks.pop(path.split("/")[2], None)
            return {"statusCode": 204 if gone else 404}
        if path == "/tasks" and method == "GET":
            with self.lock:
                listed = list(self.tasks.values())
            headers = {
                "content-type": "application/json",
                "x-seen-authorization": event["headers"].get("authorization", ""),
            }
            return {"statusCode": 200, "headers": headers, "body": json.dumps({"tasks": listed})}
        return {"statusCode": 404, "body": "{}"}


def _post(endpoint: str, region: str, connection: str, message: dict[str, Any]) -> None:
    management = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=region, **CREDENTIALS)
    management.post_to_connection(ConnectionId=connection, Data=json.dumps(message).encode())


def task_stack(
    endpoint: str, names: tuple[str, str], auth: str = "AWS_IAM", issuer: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per region, the stack's two APIs under the names the deploy gives them ({prefix}-{env}-tasks,
    -live), each in front of that region's function."""
    apis = {}
    for region in (REGION, OTHER_REGION):
        function = make_function(endpoint, region, name="task-processor")
        http = http_api(endpoint, region, function, auth=auth, issuer=issuer, name=names[0])
        live = websocket_api(endpoint, region, function, auth="AWS_IAM" if auth == "AWS_IAM" else "NONE", name=names[1])
        apis[region] = {"http": http, "live": live}
    return apis
