"""API Gateway v2: the region's HTTP API and WebSocket API. Each step owns its API with the
integration to the function, the routes, the JWT authorizer (HTTP, API_AUTH=jwt), the stage and
the function's invoke permission, scoped by SourceArn to this API.

An API has no idempotency token: one whose create answered but was not recorded is found again
by its name and its `taskmgmt:key` tag (names are not unique in API Gateway)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, managed_tags
from taskmgmt_deploy.steps.lambda_fn import LambdaPermissionStep, _statement_live, call_when_ready, function_statement

SCOPED = "scoped to this API"
AUTHORIZER = "jwt"


class ApiStep(AwsStep):
    protocol: ClassVar[str]

    # -- read ---------------------------------------------------------------------------------
    def read(self, res: Resource, record: Record | None) -> Observed | None:
        gw = self.aws.get("apigatewayv2", res.region)
        api_id = record.outputs.get("id") if record else None
        api = absent_is_none(lambda: gw.get_api(ApiId=api_id)) if api_id else None
        api = api or self._find(gw, res.name, res.spec.get("tags", {}).get("taskmgmt:key"))
        if api is None:
            return None
        api_id = api["ApiId"]
        outputs = self._outputs(api, res.region, res.spec)
        integrations = {i["IntegrationId"]: i for i in _pages(gw, "get_integrations", ApiId=api_id)}
        listed = _pages(gw, "get_routes", ApiId=api_id)
        routes = {
            r["RouteKey"]: {
                "authorization": r.get("AuthorizationType", "NONE"),
                "target": integrations.get(r.get("Target", "").removeprefix("integrations/"), {}).get("IntegrationUri"),
            }
            for r in listed
        }
        stage = absent_is_none(lambda: gw.get_stage(ApiId=api_id, StageName=res.spec["stage"]))
        live = {
            "routes": routes,
            "payload_format": sorted({i.get("PayloadFormatVersion", "1.0") for i in integrations.values()}),
            "authorizer": _authorizer_live(self._authorizers(gw, api_id, listed).get(AUTHORIZER)),
            "cors": api.get("CorsConfiguration"),
            "stage": _stage_live(stage),
            "permission": self._permission_live(res, outputs),
            "tags": managed_tags(api.get("Tags") or {}, res.spec.get("tags", {})),
        }
        return Observed(outputs=outputs, live=live, state=f"{len(routes)} routes")

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        uri = self.integration_uri(res.region, spec["function_arn"])
        return {
            "routes": {key: {"authorization": auth, "target": uri} for key, auth in spec["routes"].items()},
            **({"payload_format": [spec["payload_format"]]} if spec.get("payload_format") else {}),
            "authorizer": spec.get("authorizer"),
            "cors": spec.get("cors"),
            "stage": _stage_want(spec),
            "permission": SCOPED,
            "tags": spec["tags"],
        }

    def _find(self, gw: Any, name: str, key: str | None) -> dict[str, Any] | None:
        for api in _pages(gw, "get_apis"):
            ours = key is None or (api.get("Tags") or {}).get("taskmgmt:key") == key
            if api["Name"] == name and api.get("ProtocolType") == self.protocol and ours:
                return dict(api)
        return None

    @staticmethod
    def _authorizers(gw: Any, api_id: str, routes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The authorizers the routes use, by name (GetAuthorizer each: moto's server has no GetAuthorizers)."""
        ids = sorted({r["AuthorizerId"] for r in routes if r.get("AuthorizerId")})
        found = [absent_is_none(lambda i=i: gw.get_authorizer(ApiId=api_id, AuthorizerId=i)) for i in ids]
        return {a["Name"]: a for a in found if a}

    def _permission_live(self, res: Resource, outputs: Mapping[str, Any]) -> str:
        statement = function_statement(
            self.aws, res.region, res.spec.get("function_name"), res.spec.get("permission_id")
        )
        if statement is None:
            return "missing"
        live = _statement_live(statement)
        wanted = {"principal": "apigateway.amazonaws.com", "action": "lambda:InvokeFunction"}
        if live["source_arn"] == f"{outputs['execution_arn']}/*" and all(live[k] == v for k, v in wanted.items()):
            return SCOPED
        return f"{live['principal']} from {live['source_arn']}"

    # -- apply --------------------------------------------------------------------------------
    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        gw = self.aws.get("apigatewayv2", res.region)
        if observed is None:
            api = gw.create_api(Name=res.name, ProtocolType=self.protocol, Tags=dict(spec["tags"]), **_api_fields(spec))
        else:
            api = gw.get_api(ApiId=observed.outputs["id"])
            self._update_api(gw, api, spec, res.region)
        api_id = api["ApiId"]

        def listed(operation: str) -> list[dict[str, Any]]:
            return [] if observed is None else _pages(gw, operation, ApiId=api_id)  # a new API has none yet

        integrations, routes = listed("get_integrations"), listed("get_routes")
        authorizers = list(self._authorizers(gw, api_id, routes).values())
        integration = self._integration(gw, api_id, res.region, spec, integrations)
        authorizer = self._authorizer(gw, api_id, spec.get("authorizer"), authorizers)
        self._routes(gw, api_id, spec["routes"], integration, authorizer, routes)
        for stale in authorizers:
            if stale["Name"] != AUTHORIZER or authorizer is None:
                gw.delete_authorizer(ApiId=api_id, AuthorizerId=stale["AuthorizerId"])
        for stale in integrations:
            if stale["IntegrationId"] != integration:
                gw.delete_integration(ApiId=api_id, IntegrationId=stale["IntegrationId"])
        self._stage(gw, api_id, spec, fresh=observed is None)
        outputs = self._outputs(api, res.region, spec)
        self._permit(res, spec, outputs, ctx)
        return outputs

    def _update_api(self, gw: Any, api: Mapping[str, Any], spec: Mapping[str, Any], region: str) -> None:
        if spec.get("cors") and api.get("CorsConfiguration") != spec["cors"]:
            gw.update_api(ApiId=api["ApiId"], CorsConfiguration=dict(spec["cors"]))
        elif not spec.get("cors") and api.get("CorsConfiguration"):
            gw.delete_cors_configuration(ApiId=api["ApiId"])
        if managed_tags(api.get("Tags") or {}, spec["tags"]) != dict(spec["tags"]):
            gw.tag_resource(
                ResourceArn=_arn(self._execution_arn(region, api["ApiId"]), region, api["ApiId"]),
                Tags=dict(spec["tags"]),
            )

    def _integration(
        self, gw: Any, api_id: str, region: str, spec: Mapping[str, Any], current: list[dict[str, Any]]
    ) -> str:
        uri = self.integration_uri(region, spec["function_arn"])
        fields = {"IntegrationType": "AWS_PROXY", "IntegrationUri": uri, **self.integration_fields(spec)}
        for found in current:
            if found.get("IntegrationUri") == uri:
                if any(found.get(k) != v for k, v in fields.items()):
                    gw.update_integration(ApiId=api_id, IntegrationId=found["IntegrationId"], **fields)
                return str(found["IntegrationId"])
        return str(gw.create_integration(ApiId=api_id, **fields)["IntegrationId"])

    def _authorizer(
        self, gw: Any, api_id: str, wanted: Mapping[str, Any] | None, current: list[dict[str, Any]]
    ) -> str | None:
        if not wanted:
            return None
        fields = {
            "AuthorizerType": "JWT",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {"Issuer": wanted["issuer"], "Audience": list(wanted["audience"])},
        }
        found = next((a for a in current if a["Name"] == AUTHORIZER), None)
        if found is None:
            return str(gw.create_authorizer(ApiId=api_id, Name=AUTHORIZER, **fields)["AuthorizerId"])
        if _authorizer_live(found) != dict(wanted):
            gw.update_authorizer(ApiId=api_id, AuthorizerId=found["AuthorizerId"], **fields)
        return str(found["AuthorizerId"])

    @staticmethod
    def _routes(
        gw: Any,
        api_id: str,
        wanted: Mapping[str, str],
        integration: str,
        authorizer: str | None,
        listed: list[dict[str, Any]],
    ) -> None:
        current = {r["RouteKey"]: r for r in listed}
        for key, auth in wanted.items():
            fields = {"AuthorizationType": auth, "Target": f"integrations/{integration}"}
            if auth == "JWT":
                fields["AuthorizerId"] = authorizer
            have = current.get(key)
            if have is None:
                gw.create_route(ApiId=api_id, RouteKey=key, **fields)
            elif any(have.get(k) != v for k, v in fields.items()):
                gw.update_route(ApiId=api_id, RouteId=have["RouteId"], **fields)
        for key, have in current.items():
            if key not in wanted:
                gw.delete_route(ApiId=api_id, RouteId=have["RouteId"])

    @staticmethod
    def _stage(gw: Any, api_id: str, spec: Mapping[str, Any], fresh: bool) -> None:
        fields: dict[str, Any] = {
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingBurstLimit": spec["throttle"]["burst"],
                "ThrottlingRateLimit": float(spec["throttle"]["rate"]),
            },
            "StageVariables": dict(spec.get("stage_variables") or {}),
        }
        if spec.get("access_log_arn"):
            fields["AccessLogSettings"] = {
                "DestinationArn": _group_arn(spec["access_log_arn"]),
                "Format": spec["access_log_format"],
            }
        stage = None if fresh else absent_is_none(lambda: gw.get_stage(ApiId=api_id, StageName=spec["stage"]))
        if stage is None:
            gw.create_stage(ApiId=api_id, StageName=spec["stage"], **fields)
        elif _stage_live(stage) != _stage_want(spec):
            gw.update_stage(ApiId=api_id, StageName=spec["stage"], **fields)

    def _permit(self, res: Resource, spec: Mapping[str, Any], outputs: Mapping[str, Any], ctx: StepContext) -> None:
        if self._permission_live(res, outputs) == SCOPED:
            return
        lam, function, sid = self.aws.get("lambda", res.region), spec["function_name"], spec["permission_id"]
        LambdaPermissionStep._remove(lam, function, sid, ctx)
        call_when_ready(
            lambda: lam.add_permission(
                FunctionName=function,
                StatementId=sid,
                Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com",
                SourceArn=f"{outputs['execution_arn']}/*",
            ),
            ctx,
        )

    # -- delete -------------------------------------------------------------------------------
    def delete(self, record: Record, ctx: StepContext) -> None:
        function, sid = record.outputs.get("function_name"), record.outputs.get("permission_id")
        if function and sid:
            LambdaPermissionStep._remove(self.aws.get("lambda", record.region), function, sid, ctx)
        api_id = record.outputs.get("id")
        if api_id:
            absent_is_done(lambda: self.aws.get("apigatewayv2", record.region).delete_api(ApiId=api_id))

    # -- what differs between the two kinds ---------------------------------------------------
    def integration_uri(self, region: str, function_arn: Any) -> Any:
        return function_arn

    def integration_fields(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def url(self, endpoint: str, spec: Mapping[str, Any]) -> str:
        return endpoint

    def _execution_arn(self, region: str, api_id: str) -> str:
        return self.aws.arn("execute-api", region, api_id)

    def _outputs(self, api: Mapping[str, Any], region: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        execution = self._execution_arn(region, api["ApiId"])
        return {
            "id": api["ApiId"],
            "arn": _arn(execution, region, api["ApiId"]),
            "name": api["Name"],
            "endpoint": api["ApiEndpoint"],  # always GetApi's: never built from the id
            "url": self.url(api["ApiEndpoint"], spec),
            "execution_arn": execution,
            "stage": spec.get("stage"),
            "function_name": spec.get("function_name"),
            "permission_id": spec.get("permission_id"),
        }


class HttpApiStep(ApiStep):
    kind = "http_api"
    protocol = "HTTP"

    def integration_fields(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"PayloadFormatVersion": spec["payload_format"]}


class WebSocketApiStep(ApiStep):
    kind = "websocket_api"
    protocol = "WEBSOCKET"

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        """No CORS and no JWT authorizer on a WebSocket API: AWS has neither for it."""
        return {k: v for k, v in super().desired(res, spec).items() if k not in ("cors", "authorizer")}

    def integration_uri(self, region: str, function_arn: Any) -> Any:
        if not isinstance(function_arn, str):
            return function_arn  # not known before the function exists
        partition = function_arn.split(":")[1]
        return f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"

    def integration_fields(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"IntegrationMethod": "POST"}

    def url(self, endpoint: str, spec: Mapping[str, Any]) -> str:
        return f"{endpoint}/{spec['stage']}"


def _api_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if spec.get("route_selection"):
        fields["RouteSelectionExpression"] = spec["route_selection"]
    if spec.get("cors"):
        fields["CorsConfiguration"] = dict(spec["cors"])
    return fields


def _pages(client: Any, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a GetX list, following NextToken (pages may be short: H4)."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = getattr(client, operation)(**kwargs, **({"NextToken": token} if token else {}))
        items += page.get("Items", [])
        token = page.get("NextToken")
        if not token:
            return items


def _arn(execution_arn: str, region: str, api_id: str) -> str:
    partition = execution_arn.split(":")[1]
    return f"arn:{partition}:apigateway:{region}::/apis/{api_id}"


def _group_arn(arn: Any) -> Any:
    """A log group's ARN as API Gateway takes it: without the ':*' CloudWatch Logs reports (H3)."""
    return arn.removesuffix(":*") if isinstance(arn, str) else arn


def _authorizer_live(found: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if found is None:
        return None
    jwt = found.get("JwtConfiguration") or {}
    return {"issuer": jwt.get("Issuer"), "audience": list(jwt.get("Audience") or [])}


def _stage_want(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "auto_deploy": True,
        "throttle": {"burst": spec["throttle"]["burst"], "rate": float(spec["throttle"]["rate"])},
        "variables": dict(spec.get("stage_variables") or {}),
        "access_logs": (
            {"arn": _group_arn(spec["access_log_arn"]), "format": spec["access_log_format"]}
            if spec.get("access_log_arn")
            else None
        ),
    }


def _stage_live(stage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if stage is None:
        return None
    settings, logs = stage.get("DefaultRouteSettings") or {}, stage.get("AccessLogSettings")
    return {
        "auto_deploy": bool(stage.get("AutoDeploy")),
        "throttle": {
            "burst": settings.get("ThrottlingBurstLimit"),
            "rate": float(settings["ThrottlingRateLimit"]) if "ThrottlingRateLimit" in settings else None,
        },
        "variables": dict(stage.get("StageVariables") or {}),
        "access_logs": {"arn": logs.get("DestinationArn"), "format": logs.get("Format")} if logs else None,
    }
