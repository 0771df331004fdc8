"""An HTTP API's data plane: stage, CORS, route, authorization, throttling, and the Lambda proxy
integration with payload format 2.0, answered the way API Gateway answers."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from taskmgmt_deploy.emulator.gateway import integration as lambda_proxy
from taskmgmt_deploy.emulator.gateway.access_logs import AccessLogs
from taskmgmt_deploy.emulator.gateway.auth import Denied, KeySets, SecretFor, bearer, check_sigv4, verify_jwt
from taskmgmt_deploy.emulator.gateway.wire import Request, Response

TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
)
INTEGRATION_TIMEOUT = 30.0


def _cfg(config: dict[str, Any] | None, name: str, default: Any = None) -> Any:
    """A setting as moto stores it (the wire's camelCase) or as a caller may give it (PascalCase)."""
    config = config or {}
    return config.get(name, config.get(name[0].upper() + name[1:], default))


def match_route(routes: list[Any], method: str, path: str) -> tuple[Any, dict[str, str]] | None:
    """The most specific route: exact segments before variables before a greedy variable, a
    method before ANY; `$default` only when nothing else matches."""
    best: tuple[tuple[int, ...], Any, dict[str, str]] | None = None
    default = None
    segments = path.strip("/").split("/") if path.strip("/") else []
    for route in routes:
        if route.route_key == "$default":
            default = route
            continue
        route_method, _, template = route.route_key.partition(" ")
        if route_method not in ("ANY", method):
            continue
        params = _match_path(template, segments)
        if params is None:
            continue
        parts = template.strip("/").split("/") if template.strip("/") else []
        greedy = bool(parts) and parts[-1].endswith("+}")
        score = (int(not greedy), sum(not p.startswith("{") for p in parts), len(parts), int(route_method != "ANY"))
        if best is None or score > best[0]:
            best = (score, route, params)
    if best is not None:
        return best[1], best[2]
    return (default, {}) if default is not None else None


def _match_path(template: str, segments: list[str]) -> dict[str, str] | None:
    parts = template.strip("/").split("/") if template.strip("/") else []
    params: dict[str, str] = {}
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("+}"):
            if index != len(parts) - 1 or index >= len(segments):
                return None
            params[part[1:-2]] = unquote("/".join(segments[index:]))
            return params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not segments[index]:
                return None
            params[part[1:-1]] = unquote(segments[index])
        elif part != segments[index]:
            return None
    return params if len(parts) == len(segments) else None


class Throttle:
    """A token bucket per stage: `burst` requests at once, refilled at `rate` a second."""

    def __init__(self, clock_now: Callable[[], float]):
        self.now = clock_now
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, key: tuple[str, str], burst: int | None, rate: float | None) -> bool:
        if burst is None and rate is None:
            return True
        burst_n = float(burst if burst is not None else 5000)
        rate_n = float(rate if rate is not None else 10000)
        with self._lock:
            now = self.now()
            tokens, then = self._buckets.get(key, (burst_n, now))
            tokens = min(burst_n, tokens + (now - then) * rate_n)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1, now)
            return True


class HttpApi:
    def __init__(
        self,
        now: Callable[[], float],
        wall: Callable[[], float],
        secret_for: SecretFor,
        key_sets: KeySets,
        record: Callable[[dict[str, Any]], None],
    ):
        self.now, self.wall = now, wall
        self.secret_for = secret_for
        self.key_sets = key_sets
        self.record = record
        self.throttle = Throttle(now)
        self.access_logs = AccessLogs()

    # -- the request, step by step ---------------------------------------------------------
    def handle(
        self, api: Any, request: Request, host: str, invoke: Callable[[Any, str, bytes], tuple[bytes, str | None]]
    ) -> Response:
        started, wall = time.monotonic(), self.wall()
        stage, path = self._stage(api, request.path)
        if stage is None:
            return Response.message(404, "Not Found")
        context: dict[str, Any] = {
            "requestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode(),
            "identity.sourceIp": request.peer,
            "identity.userAgent": request.header("user-agent"),
            "requestTime": datetime.fromtimestamp(wall, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(wall * 1000),
            "httpMethod": request.method,
            "path": path,
            "protocol": request.version,
            "apiId": api.api_id,
            "stage": stage.name,
            "domainName": host,
        }
        cors, origin = api.cors_configuration, request.header("origin")
        if cors and request.method == "OPTIONS" and origin and request.header("access-control-request-method"):
            response = self._preflight(cors, request)
        else:
            response = self._with_cors(cors, origin, self._routed(api, stage, path, request, host, invoke, context))
        context.update(
            status=response.status,
            responseLength=len(response.body),
            responseLatency=int((time.monotonic() - started) * 1000),
        )
        response.context = context
        self.access_logs.write(stage, api.api_id, context)
        return response

    def _routed(
        self,
        api: Any,
        stage: Any,
        path: str,
        request: Request,
        host: str,
        invoke: Callable[[Any, str, bytes], tuple[bytes, str | None]],
        context: dict[str, Any],
    ) -> Response:
        request_id = context["requestId"]
        found = match_route(list(api.routes.values()), request.method, path)
        if found is None:
            return Response.message(404, "Not Found")
        route, params = found
        context["routeKey"] = route.route_key
        headers = request.lowered()
        try:
            authorizer = self._authorize(api, route, request, headers, host)
        except Denied as denied:
            self.record({"api": api.api_id, "route": route.route_key, "outcome": "denied", "why": str(denied)})
            context["authorizer.error"] = str(denied) or "Unauthorized"
            return self._denial(route, str(denied))
        settings = {**(stage.default_route_settings or {}), **((stage.route_settings or {}).get(route.route_key) or {})}
        burst, rate = _cfg(settings, "throttlingBurstLimit"), _cfg(settings, "throttlingRateLimit")
        if not self.throttle.allow((api.api_id, stage.name), burst, rate):
            return Response.message(429, "Too Many Requests")
        event = self.event(api, stage, route, request, headers, path, params, host, request_id, authorizer)
        region, account = api.backend.region_name, api.backend.account_id
        source_arn = f"arn:aws:execute-api:{region}:{account}:{api.api_id}/{stage.name}/{request.method}{path}"
        try:
            raw, error = invoke(lambda_proxy.integration_of(api, route), source_arn, json.dumps(event).encode())
        except lambda_proxy.IntegrationFailed as failed:
            self.record({"api": api.api_id, "route": route.route_key, "outcome": failed.outcome, "why": str(failed)})
            context["integrationErrorMessage"] = str(failed)
            timeout = failed.outcome == "timeout"
            status, message = (503, "Service Unavailable") if timeout else (500, "Internal Server Error")
            return Response.message(status, message, {"apigw-requestid": request_id})
        response = self.response(raw, error)
        outcome = {"outcome": "invoked", "status": response.status, "event": event}
        self.record({"api": api.api_id, "route": route.route_key, **outcome})
        response.headers["apigw-requestid"] = request_id
        return response

    @staticmethod
    def _stage(api: Any, path: str) -> tuple[Any, str]:
        if "$default" in api.stages:
            return api.stages["$default"], path
        first, _, rest = path.lstrip("/").partition("/")
        stage = api.stages.get(first)
        return stage, "/" + rest

    def _authorize(
        self, api: Any, route: Any, request: Request, headers: dict[str, str], host: str
    ) -> dict[str, Any] | None:
        kind = (route.authorization_type or "NONE").upper()
        if kind == "NONE":
            return None
        if kind == "AWS_IAM":
            caller = check_sigv4(
                request.method,
                f"http://{host}{request.target}",
                headers,
                request.body,
                api.backend.region_name,
                self.wall(),
                self.secret_for,
            )
            return {
                "iam": {
                    "accessKey": caller.access_key,
                    "accountId": api.backend.account_id,
                    "callerId": caller.access_key,
                }
            }
        if kind == "JWT":
            authorizer = api.authorizers.get(route.authorizer_id or "")
            if authorizer is None or (authorizer.authorizer_type or "").upper() != "JWT":
                raise Denied("the route's JWT authorizer does not exist")
            config = authorizer.jwt_config or {}
            sources = authorizer.identity_source or ["$request.header.Authorization"]
            source = sources[0] if isinstance(sources, list) else str(sources)
            token = (
                bearer(headers.get(source.rsplit(".", 1)[-1].lower()))
                if source.startswith("$request.header.")
                else None
            )
            if not token:
                raise Denied("")
            claims = verify_jwt(
                token,
                str(_cfg(config, "issuer", "")),
                list(_cfg(config, "audience", []) or []),
                list(route.authorization_scopes or []),
                self.key_sets,
                self.wall(),
            )
            scopes = claims.get("scope", claims.get("scp"))
            return {
                "jwt": {
                    "claims": {
                        k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v)
                        for k, v in claims.items()
                    },
                    "scopes": (scopes.split() if isinstance(scopes, str) else scopes) or None,
                }
            }
        raise Denied(f"authorization type {kind} is not emulated")

    @staticmethod
    def _denial(route: Any, why: str) -> Response:
        if (route.authorization_type or "").upper() == "JWT":
            challenge = 'Bearer scope="" error="invalid_token"' + (f' error_description="{why}"' if why else "")
            return Response.message(401, "Unauthorized", {"www-authenticate": challenge})
        return Response.message(403, why or "Forbidden")

    def event(
        self,
        api: Any,
        stage: Any,
        route: Any,
        request: Request,
        headers: dict[str, str],
        path: str,
        params: dict[str, str],
        host: str,
        request_id: str,
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The payload format 2.0 event, as API Gateway builds it."""
        wall = self.wall()
        query: dict[str, list[str]] = {}
        for key, value in request.query_pairs():
            query.setdefault(key, []).append(value)
        cookies = [c.strip() for c in (headers.pop("cookie", "") or "").split(";") if c.strip()]
        content_type = headers.get("content-type", "").lower()
        is_text = content_type.startswith(TEXT_TYPES)
        body = request.body
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": path,
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "accountId": api.backend.account_id,
                "apiId": api.api_id,
                "domainName": host,
                "domainPrefix": host.split(".", maxsplit=1)[0],
                "http": {
                    "method": request.method,
                    "path": path,
                    "protocol": request.version,
                    "sourceIp": request.peer,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": route.route_key,
                "stage": stage.name,
                "time": datetime.fromtimestamp(wall, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(wall * 1000),
            },
            "isBase64Encoded": bool(body) and not is_text,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
        if params:
            event["pathParameters"] = params
        if stage.stage_variables:
            event["stageVariables"] = dict(stage.stage_variables)
        if authorizer:
            event["requestContext"]["authorizer"] = authorizer
        if body:
            event["body"] = body.decode("utf-8", "replace") if is_text else base64.b64encode(body).decode()
        return event

    @staticmethod
    def response(raw: bytes, error: str | None) -> Response:
        """The function's answer as API Gateway reads payload format 2.0."""
        if error:
            return Response.message(500, "Internal Server Error")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            return Response.message(500, "Internal Server Error")
        if not (isinstance(answer, dict) and "statusCode" in answer):
            return Response(200, {"content-type": "application/json"}, json.dumps(answer).encode())
        try:
            status = int(answer["statusCode"])
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            body = answer.get("body") or ""
            payload = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
        except (ValueError, TypeError, AttributeError):
            return Response.message(500, "Internal Server Error")
        cookies = answer.get("cookies") or []
        if cookies:
            headers["set-cookie"] = "\r\nset-cookie: ".join(str(c) for c in cookies)
        return Response(status, headers, payload)

    # -- CORS ------------------------------------------------------------------------------
    @staticmethod
    def _allowed_origin(cors: dict[str, Any], origin: str | None) -> str | None:
        origins = list(_cfg(cors, "allowOrigins", []) or [])
        if not origin:
            return None
        if "*" in origins:
            return "*"
        return origin if origin in origins else None

    def _preflight(self, cors: dict[str, Any], request: Request) -> Response:
        """API Gateway answers a preflight itself once CORS is configured, whatever the routes."""
        allowed = self._allowed_origin(cors, request.header("origin"))
        response = Response(204, {})
        if allowed is None:
            return response
        methods = list(_cfg(cors, "allowMethods", []) or [])
        headers = list(_cfg(cors, "allowHeaders", []) or [])
        asked_method = request.header("access-control-request-method") or ""
        if "*" not in methods and asked_method.upper() not in [m.upper() for m in methods]:
            return response
        response.headers["access-control-allow-origin"] = allowed
        response.headers["access-control-allow-methods"] = asked_method if "*" in methods else ",".join(methods)
        asked_headers = request.header("access-control-request-headers")
        if headers:
            response.headers["access-control-allow-headers"] = (
                asked_headers or "*" if "*" in headers else ",".join(headers)
            )
        max_age = _cfg(cors, "maxAge")
        if max_age is not None:
            response.headers["access-control-max-age"] = str(max_age)
        if _cfg(cors, "allowCredentials"):
            response.headers["access-control-allow-credentials"] = "true"
        return response

    def _with_cors(self, cors: dict[str, Any] | None, origin: str | None, response: Response) -> Response:
        """With CORS configured, the integration's own CORS headers are dropped and the API's used (W6)."""
        if not cors:
            return response
        for key in [k for k in response.headers if k.lower().startswith("access-control-")]:
            del response.headers[key]
        allowed = self._allowed_origin(cors, origin)
        if allowed is not None:
            response.headers["access-control-allow-origin"] = allowed
            exposed = list(_cfg(cors, "exposeHeaders", []) or [])
            if exposed:
                response.headers["access-control-expose-headers"] = ",".join(exposed)
            if _cfg(cors, "allowCredentials"):
                response.headers["access-control-allow-credentials"] = "true"
            if allowed != "*":
                response.headers["vary"] = "Origin"
        return response
