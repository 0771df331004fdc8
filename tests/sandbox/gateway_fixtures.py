"""An emulator serving API Gateway's data plane in this process, with a stub function standing in
for the task processor: APIs are created here directly, as the deploy would create them."""

from __future__ import annotations

import io
import json
import threading
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
) -> dict[str, Any]:
    api_client = client("apigatewayv2", endpoint, region)
    extra = {"CorsConfiguration": cors} if cors else {}
    api = api_client.create_api(Name="test-tasks", ProtocolType="HTTP", **extra)
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
    for key in ("GET /tasks", "POST /tasks", "GET /tasks/{task_id}", "GET /fail", "GET /plain", "ANY /files/{path+}"):
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
    )
    if permit:
        allow(endpoint, region, function, api_id, f"http-{api_id}")
    return api_client.get_api(ApiId=api_id)


def websocket_api(
    endpoint: str, region: str, function: str, auth: str = "AWS_IAM", two_way: bool = False
) -> dict[str, Any]:
    api_client = client("apigatewayv2", endpoint, region)
    api = api_client.create_api(
        Name="test-live", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
    )
    api_id = api["ApiId"]
    uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function}/invocations"
    integration = api_client.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri)[
        "IntegrationId"
    ]
    for key in ("$connect", "$disconnect", "echo", "$default", "silent"):
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
