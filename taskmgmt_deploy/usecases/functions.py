"""Call the deployed task processor through Lambda Invoke, in either region."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import error_code, error_message, is_not_found
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import resource_key
from taskmgmt_deploy.errors import TaskmgmtError, UserError
from taskmgmt_deploy.usecases.factory import recorded_config


class FunctionError(TaskmgmtError):
    """The function raised instead of answering."""


class FunctionUnavailable(TaskmgmtError):
    """The function could not be invoked: gone, or AWS (or the sandbox) cannot be reached."""


class Functions:
    def __init__(self, aws: AwsClients, manifest: Manifest, deploy_command: str = "taskmgmt deploy"):
        self.aws, self.manifest = aws, manifest
        self.deploy_command = deploy_command  # what the hint says to run when the function is gone

    @property
    def regions(self) -> tuple[str, str]:
        return recorded_config(self.manifest).regions

    def name(self, region: str) -> str:
        if region not in self.regions:
            raise UserError(
                f"--region {region!r} is invalid: environment '{self.manifest.env}' is deployed in "
                + " and ".join(self.regions)
            )
        record = self.manifest.get(resource_key("lambda_function", "task-processor", region))
        if record is None or record.state != "ready":
            raise UserError(f"the function in {region} is not deployed: run `taskmgmt deploy` first")
        return str(record.name)

    def invoke_raw(self, region: str, payload: bytes) -> tuple[bytes, str | None]:
        name = self.name(region)
        try:
            answer = self.aws.get("lambda", region).invoke(FunctionName=name, Payload=payload)
        except ClientError as exc:
            reason = f"{error_code(exc)}: {error_message(exc)}"
            hint = f"; deploy it with `{self.deploy_command}`" if is_not_found(exc) else ""
            raise FunctionUnavailable(f"the function {name} in {region} cannot be invoked ({reason}){hint}") from None
        except BotoCoreError as exc:
            raise FunctionUnavailable(f"the function {name} in {region} cannot be reached: {exc}") from None
        return answer["Payload"].read(), answer.get("FunctionError")

    def request(
        self, region: str, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """An API Gateway-style request; returns (status, parsed body)."""
        event = {
            "httpMethod": method,
            "path": path,
            "queryStringParameters": query,
            "headers": {"content-type": "application/json"},
            "body": None if body is None else json.dumps(body),
        }
        raw, error = self.invoke_raw(region, json.dumps(event).encode())
        if error:
            raise FunctionError(f"the function in {region} failed: {raw.decode(errors='replace')[:300]}")
        response = json.loads(raw)
        return int(response["statusCode"]), json.loads(response["body"]) if response.get("body") else None


def invoke_failure(payload: bytes, function_error: str | None) -> str | None:
    """Why an invocation failed, in one line, or None when the function ran and answered: an
    HTTP answer below 400, or an event applied or recognised as a duplicate."""
    if function_error:
        return f"the function failed ({function_error})"
    try:
        answer = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    status = answer.get("statusCode")
    if isinstance(status, int) and status >= 400:
        return f"the function answered {status}{_error_of(answer.get('body'))}"
    if answer.get("status") == "dropped":
        return f"the function dropped the event: {answer.get('reason')}"
    return None


def _error_of(body: Any) -> str:
    try:
        error = json.loads(body)
        return f" ({error['error']}: {error['message']})"
    except (TypeError, ValueError, KeyError):
        return ""
