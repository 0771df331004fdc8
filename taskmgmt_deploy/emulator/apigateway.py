"""API Gateway v2's control plane as AWS documents it (docs/pessimistic-emulation.md, section H):
UpdateStage and GetAuthorizers, which moto lacks; list calls that answer in pages; and the
validation AWS does that moto skips (authorization on a WebSocket route other than $connect, a
JWT authorizer's settings, the access-log destination, stage variables)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from moto.apigatewayv2.exceptions import BadRequestException
from moto.apigatewayv2.models import Api, ApiGatewayV2Backend, Stage
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.logs.models import logs_backends

from taskmgmt_deploy.emulator.patching import Patches

PAGE = 5  # items per page of GetApis, GetRoutes, GetIntegrations, GetAuthorizers (H4)
STAGE_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
STAGE_VARIABLE_VALUE = re.compile(r"^[A-Za-z0-9\-._~:/?#&=,]+$")
STAGE_VARIABLE_MAX = 2048
LOG_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:logs:([a-z0-9-]+):(\d{12}):log-group:([^:*]+)$")
STAGE_FIELDS = {
    "accessLogSettings": "access_log_settings",
    "autoDeploy": "auto_deploy",
    "defaultRouteSettings": "default_route_settings",
    "description": "description",
    "routeSettings": "route_settings",
    "stageVariables": "stage_variables",
}


class ApiGatewayFidelity:
    def reset(self) -> None:
        """It keeps nothing beside moto's state."""

    def install(self, patches: Patches) -> None:
        patches.around(ApiGatewayV2Backend, "create_route", self.create_route)
        patches.around(ApiGatewayV2Backend, "update_route", self.update_route)
        patches.around(ApiGatewayV2Backend, "create_authorizer", self.create_authorizer)
        patches.around(ApiGatewayV2Backend, "create_stage", self.create_stage)
        patches.operation(ApiGatewayV2Response, "UpdateStage", self.update_stage)
        patches.operation(ApiGatewayV2Response, "GetAuthorizers", self.get_authorizers)
        for listing in ("get_apis", "get_routes", "get_integrations"):
            patches.around(ApiGatewayV2Response, listing, self.paged)

    @staticmethod
    def create_route(original: Any, backend: ApiGatewayV2Backend, api_id: str, *args: Any, **kwargs: Any) -> Any:
        _check_route(backend.get_api(api_id), kwargs.get("route_key"), kwargs.get("authorization_type"))
        return original(backend, api_id, *args, **kwargs)

    @staticmethod
    def update_route(original: Any, backend: ApiGatewayV2Backend, api_id: str, *args: Any, **kwargs: Any) -> Any:
        api = backend.get_api(api_id)
        route = api.get_route(kwargs["route_id"])
        _check_route(api, kwargs.get("route_key") or route.route_key, kwargs.get("authorization_type"))
        return original(backend, api_id, *args, **kwargs)

    @staticmethod
    def create_authorizer(original: Any, backend: ApiGatewayV2Backend, api_id: str, *args: Any, **kwargs: Any) -> Any:
        """H2: a JWT authorizer exists only on HTTP APIs, with an issuer, an audience and where the
        token comes from."""
        if kwargs.get("authorizer_type") == "JWT":
            if backend.get_api(api_id).protocol_type != "HTTP":
                raise BadRequestException("JWT authorizers are supported only for HTTP APIs")
            jwt = kwargs.get("jwt_config") or {}
            if not jwt.get("Issuer") and not jwt.get("issuer"):
                raise BadRequestException("JwtConfiguration.Issuer is required for a JWT authorizer")
            if not (jwt.get("Audience") or jwt.get("audience")):
                raise BadRequestException("JwtConfiguration.Audience is required for a JWT authorizer")
            if not kwargs.get("identity_source"):
                raise BadRequestException("IdentitySource is required for a JWT authorizer")
        return original(backend, api_id, *args, **kwargs)

    @staticmethod
    def create_stage(original: Any, backend: ApiGatewayV2Backend, api_id: str, config: dict[str, Any]) -> Any:
        _check_stage(backend, config)
        return original(backend, api_id, config)

    @staticmethod
    def update_stage(response: ApiGatewayV2Response) -> Any:
        """UpdateStage (PATCH /v2/apis/{apiId}/stages/{stageName}), which moto lacks: the fields
        given replace the stage's, the others stay."""
        api_id, stage_name = response.path.split("/")[-3], unquote(response.path.split("/")[-1])
        backend = response.apigatewayv2_backend
        stage: Stage = backend.get_stage(api_id, stage_name)
        changes = json.loads(response.body or "{}")
        _check_stage(backend, changes)
        for field, attribute in STAGE_FIELDS.items():
            if field in changes:
                setattr(stage, attribute, changes[field])
        return 200, {}, json.dumps(stage.to_json())

    @staticmethod
    def get_authorizers(response: ApiGatewayV2Response) -> Any:
        """GetAuthorizers, which moto lacks, in pages like the other lists (H4)."""
        api = response.apigatewayv2_backend.get_api(response.path.split("/")[-2])
        items = [a.to_json() for a in api.authorizers.values()]
        return 200, {}, json.dumps(_page(items, response.querystring))

    @staticmethod
    def paged(original: Any, response: ApiGatewayV2Response) -> Any:
        """H4: at most PAGE items an answer, and a NextToken for the rest (moto: all at once)."""
        status, headers, body = original(response)
        return status, headers, json.dumps(_page(json.loads(body)["items"], response.querystring))


def _page(items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
    start = int((query.get("nextToken") or ["0"])[0])
    answer: dict[str, Any] = {"items": items[start : start + PAGE]}
    if start + PAGE < len(items):
        answer["nextToken"] = str(start + PAGE)
    return answer


def _check_route(api: Api, route_key: str | None, authorization: str | None) -> None:
    """H1: a WebSocket API is authorized at $connect only; any other route takes NONE."""
    if api.protocol_type == "WEBSOCKET" and route_key != "$connect" and authorization not in (None, "NONE"):
        raise BadRequestException(
            f"Currently, authorization is restricted to the $connect route only (route {route_key})"
        )


def _check_stage(backend: ApiGatewayV2Backend, config: dict[str, Any]) -> None:
    for name, value in (config.get("stageVariables") or {}).items():
        if not STAGE_VARIABLE_NAME.match(name):
            raise BadRequestException(f"Stage variable name {name} must be alphanumeric or underscores")
        if not STAGE_VARIABLE_VALUE.match(str(value)) or len(str(value)) > STAGE_VARIABLE_MAX:
            raise BadRequestException(f"Stage variable value {value} contains characters that are not allowed")
    logs = config.get("accessLogSettings")
    if logs:
        _check_destination(backend, logs)


def _check_destination(backend: ApiGatewayV2Backend, logs: dict[str, Any]) -> None:
    """H3: the ARN of a log group that exists, of the API's account and region, without the
    ':*' CloudWatch Logs puts after a group's ARN; and a format."""
    match = LOG_GROUP_ARN.match(str(logs.get("destinationArn", "")))
    if not match or match.group(1) != backend.region_name or match.group(2) != backend.account_id:
        raise BadRequestException(f"Invalid destination ARN for access logs: {logs.get('destinationArn')}")
    if match.group(3) not in logs_backends[backend.account_id][backend.region_name].groups:
        raise BadRequestException(f"The log group {match.group(3)} for access logs does not exist")
    if not logs.get("format"):
        raise BadRequestException("Access log settings need a format")
