"""A route's Lambda proxy integration, invoked the way API Gateway invokes it: only a function
whose resource policy lets apigateway.amazonaws.com invoke it for this API (SourceArn), through
the emulator's Lambda (so the sandbox runs the function's code), within the integration timeout."""

from __future__ import annotations

import re
from typing import Any

from taskmgmt_deploy.emulator.iam import allows

APIGATEWAY = "apigateway.amazonaws.com"
_LAMBDA_PATH = re.compile(r"arn:aws[\w-]*:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<arn>arn:[^/]+)/invocations")


class IntegrationFailed(Exception):
    """API Gateway could not get an answer from the integration; `outcome` says why."""

    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome  # no-integration, no-function, no-permission, function-error, timeout


def function_arn(uri: str | None) -> str | None:
    """The function an integration URI names: its ARN, or the apigateway lambda:path form."""
    if not uri:
        return None
    match = _LAMBDA_PATH.fullmatch(uri)
    if match:
        return match["arn"]
    return uri if uri.startswith("arn:") and uri.split(":")[2] == "lambda" else None


def integration_of(api: Any, route: Any) -> Any:
    target = route.target or ""
    if not target.startswith("integrations/"):
        raise IntegrationFailed("no-integration", f"route {route.route_key} has no integration target")
    integration = api.integrations.get(target.split("/", 1)[1])
    if integration is None or integration.integration_type != "AWS_PROXY":
        raise IntegrationFailed("no-integration", f"route {route.route_key}: no AWS_PROXY integration")
    return integration


def _function(arn: str) -> tuple[Any, Any] | None:
    from moto.awslambda.models import lambda_backends
    from moto.awslambda_simple.models import lambda_simple_backends

    parts = arn.split(":")
    if len(parts) < 7:
        return None
    region, account, name = parts[3], parts[4], parts[6]
    for backends in (lambda_simple_backends, lambda_backends):
        try:
            backend = backends[account][region]
            return backend, backend.get_function(name)
        except Exception:  # noqa: BLE001, S112 - not in this backend
            continue
    return None


def invoke(integration: Any, source_arn: str, payload: bytes) -> tuple[bytes, str | None]:
    """(the function's answer, its error or None); IntegrationFailed when API Gateway gets none."""
    arn = function_arn(integration.integration_uri)
    found = _function(arn) if arn else None
    if found is None:
        raise IntegrationFailed("no-function", f"no function at {integration.integration_uri}")
    backend, fn = found
    if not allows(
        {"Statement": fn.policy.statements}, "lambda:InvokeFunction", fn.function_arn, APIGATEWAY, source_arn
    ):
        raise IntegrationFailed(
            "no-permission", f"{fn.function_name}'s policy does not let API Gateway invoke it for {source_arn}"
        )
    response_headers: dict[str, str] = {}
    answer = backend.invoke(fn.function_name, None, payload, {}, response_headers)
    raw = answer if isinstance(answer, bytes) else str(answer or "").encode()
    return raw, response_headers.get("x-amz-function-error")
