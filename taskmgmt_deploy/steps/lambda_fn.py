"""The task-processor function, its asynchronous-invoke settings, and the permission that
lets exactly our rule invoke it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import error_code, error_message
from taskmgmt_deploy.aws.retry import call_with_retry, is_iam_propagation, is_lambda_busy
from taskmgmt_deploy.aws.waiting import poll
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, managed_tags

T = TypeVar("T")
FUNCTION_TIMEOUT = 10 * 60.0
CODE_FIELDS = ("code_sha256", "architectures")
CONFIG_FIELDS = ("runtime", "handler", "memory", "timeout", "role", "environment", "logging", "description")


def call_when_ready(fn: Callable[[], T], ctx: StepContext) -> T:
    """Retry while the role is not yet visible to Lambda, and while the function is busy."""

    def busy_retried() -> T:
        return call_with_retry(fn, is_lambda_busy, "lambda_busy", ctx.clock, ctx.progress)

    return call_with_retry(busy_retried, is_iam_propagation, "iam_propagation", ctx.clock, ctx.progress)


def wait_settled(lam: Any, name: str, ctx: StepContext) -> dict[str, Any]:
    """Until State is Active and no update is in progress (Pending after create, InProgress after updates)."""

    def failed(cfg: Mapping[str, Any]) -> str | None:
        if cfg.get("State") == "Failed":
            return f"function failed: {cfg.get('StateReason', 'no reason given')}"
        if cfg.get("LastUpdateStatus") == "Failed":
            return f"update failed: {cfg.get('LastUpdateStatusReason', 'no reason given')}"
        return None

    return poll(
        lambda: lam.get_function_configuration(FunctionName=name),
        done=lambda cfg: cfg.get("State") == "Active" and cfg.get("LastUpdateStatus") in (None, "Successful"),
        failed=failed,
        state=lambda cfg: f"{cfg.get('State')}/{cfg.get('LastUpdateStatus')}",
        what=f"function {name}",
        expect="usually seconds",
        ctx=ctx,
        timeout=FUNCTION_TIMEOUT,
        interval=2.0,
    )


class LambdaFunctionStep(AwsStep):
    kind = "lambda_function"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        lam = self.aws.get("lambda", res.region)
        found = absent_is_none(lambda: lam.get_function(FunctionName=res.name))
        if found is None:
            return None
        cfg = found["Configuration"]
        tags = found.get("Tags")
        if tags is None:  # GetFunction returns tags only to callers explicitly allowed lambda:ListTags
            tags = lam.list_tags(Resource=cfg["FunctionArn"]).get("Tags") or {}
        live = {
            "runtime": cfg.get("Runtime"),
            "handler": cfg.get("Handler"),
            "memory": cfg.get("MemorySize"),
            "timeout": cfg.get("Timeout"),
            "role": cfg.get("Role"),
            "description": cfg.get("Description"),
            "environment": (cfg.get("Environment") or {}).get("Variables") or {},
            "architectures": cfg.get("Architectures"),
            "code_sha256": cfg.get("CodeSha256"),
            "tags": managed_tags(tags, res.spec.get("tags", {})),
        }
        if "LoggingConfig" in cfg:  # AWS always reports it; an emulator that drops it cannot be compared
            logging = cfg["LoggingConfig"]
            live["logging"] = {
                k: logging.get(k) for k in ("LogFormat", "LogGroup", "ApplicationLogLevel", "SystemLogLevel")
            }
        return Observed(
            outputs=_outputs(cfg), live=live, state=f"{cfg.get('State', '?')}/{cfg.get('LastUpdateStatus', '?')}"
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "runtime": spec["runtime"],
            "handler": spec["handler"],
            "memory": spec["memory"],
            "timeout": spec["timeout"],
            "role": spec["role_arn"],
            "description": spec["description"],
            "environment": spec["environment"],
            "logging": spec["logging"],
            "architectures": spec["architectures"],
            "code_sha256": spec["code_sha256"],
            "tags": spec["tags"],
        }

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        lam = self.aws.get("lambda", res.region)
        if observed is None and self._create(lam, res.name, spec, ctx):
            return _outputs(wait_settled(lam, res.name, ctx))
        diff = change.diff if observed is not None else dict.fromkeys(CODE_FIELDS + CONFIG_FIELDS)
        if any(f in diff for f in CODE_FIELDS):
            wait_settled(lam, res.name, ctx)
            call_when_ready(
                lambda: lam.update_function_code(
                    FunctionName=res.name,
                    ZipFile=Path(spec["package_path"]).read_bytes(),
                    Architectures=spec["architectures"],
                ),
                ctx,
            )
        if any(f in diff for f in CONFIG_FIELDS):
            wait_settled(lam, res.name, ctx)
            call_when_ready(
                lambda: lam.update_function_configuration(FunctionName=res.name, **_configuration(spec)), ctx
            )
        if "tags" in diff:
            arn = lam.get_function_configuration(FunctionName=res.name)["FunctionArn"]
            lam.tag_resource(Resource=arn, Tags=dict(spec["tags"]))
        return _outputs(wait_settled(lam, res.name, ctx))

    def _create(self, lam: Any, name: str, spec: Mapping[str, Any], ctx: StepContext) -> bool:
        """Create it; False when it already exists (a lost response), so the caller updates."""
        try:
            call_when_ready(
                lambda: lam.create_function(
                    FunctionName=name,
                    Code={"ZipFile": Path(spec["package_path"]).read_bytes()},
                    Architectures=spec["architectures"],
                    Tags=dict(spec["tags"]),
                    Publish=False,
                    **_configuration(spec),
                ),
                ctx,
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceConflictException" and "exist" in error_message(exc).lower():
                return False
            raise
        return True

    def delete(self, record: Record, ctx: StepContext) -> None:
        lam = self.aws.get("lambda", record.region)
        absent_is_done(lambda: call_when_ready(lambda: lam.delete_function(FunctionName=record.name), ctx))
        poll(
            lambda: absent_is_none(lambda: lam.get_function(FunctionName=record.name)),
            done=lambda found: found is None,
            what=f"function {record.name} to be deleted",
            ctx=ctx,
            timeout=FUNCTION_TIMEOUT,
            interval=2.0,
        )

    def health(self, observed: Observed) -> str | None:
        if observed.state.startswith("Failed") or observed.state.endswith("/Failed"):
            return f"function state {observed.state}"
        return None


def _configuration(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Runtime": spec["runtime"],
        "Role": spec["role_arn"],
        "Handler": spec["handler"],
        "Description": spec["description"],
        "Timeout": spec["timeout"],
        "MemorySize": spec["memory"],
        "Environment": {"Variables": dict(spec["environment"])},
        "LoggingConfig": dict(spec["logging"]),
    }


def _outputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": cfg["FunctionName"], "arn": cfg["FunctionArn"], "name": cfg["FunctionName"]}


class LambdaInvokeConfigStep(AwsStep):
    """Bounded retries and event age for asynchronous invocations, failures to a queue."""

    kind = "lambda_invoke_config"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        lam = self.aws.get("lambda", res.region)
        function = res.spec.get("function_name") or (record.outputs.get("function_name") if record else None)
        found = absent_is_none(lambda: lam.get_function_event_invoke_config(FunctionName=function))
        if found is None:
            return None
        return Observed(
            outputs={"id": f"{function}/event-invoke-config", "function_name": function},
            live={
                "max_retries": found.get("MaximumRetryAttempts"),
                "max_age": found.get("MaximumEventAgeInSeconds"),
                "on_failure": ((found.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
            },
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"max_retries": spec["max_retries"], "max_age": spec["max_age"], "on_failure": spec["on_failure_arn"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        lam = self.aws.get("lambda", res.region)
        # Lambda checks that the role may send to the destination: a fresh policy may not be visible yet.
        call_when_ready(
            lambda: lam.put_function_event_invoke_config(
                FunctionName=spec["function_name"],
                MaximumRetryAttempts=spec["max_retries"],
                MaximumEventAgeInSeconds=spec["max_age"],
                DestinationConfig={"OnFailure": {"Destination": spec["on_failure_arn"]}},
            ),
            ctx,
        )
        return {"id": f"{spec['function_name']}/event-invoke-config", "function_name": spec["function_name"]}

    def delete(self, record: Record, ctx: StepContext) -> None:
        lam = self.aws.get("lambda", record.region)
        function = record.outputs.get("function_name")
        if function:
            absent_is_done(lambda: lam.delete_function_event_invoke_config(FunctionName=function))


class LambdaPermissionStep(AwsStep):
    """events.amazonaws.com may invoke the function, only from the RuleArn put_rule returned."""

    kind = "lambda_permission"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        function = res.spec.get("function_name") or (record.outputs.get("function_name") if record else None)
        statement = function_statement(self.aws, res.region, function, res.name)
        if statement is None:
            return None
        return Observed(
            outputs=_permission_outputs(res.name, function), live=_statement_live(statement), state="present"
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"principal": spec["principal"], "action": "lambda:InvokeFunction", "source_arn": spec["source_arn"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        lam = self.aws.get("lambda", res.region)
        function = spec["function_name"]

        def add() -> None:
            lam.add_permission(
                FunctionName=function,
                StatementId=res.name,
                Action="lambda:InvokeFunction",
                Principal=spec["principal"],
                SourceArn=spec["source_arn"],
            )

        if observed is not None:  # statement ids are unique: replace a statement that differs
            self._remove(lam, function, res.name, ctx)
        try:
            call_when_ready(add, ctx)
        except ClientError as exc:
            if error_code(exc) != "ResourceConflictException":
                raise
            # Someone added the same id meanwhile (or an earlier response was lost): take it over.
            current = function_statement(self.aws, res.region, function, res.name, fresh=True)
            if current is None or _statement_live(current) != self.desired(res, spec):
                self._remove(lam, function, res.name, ctx)
                call_when_ready(add, ctx)
        return _permission_outputs(res.name, function)

    def delete(self, record: Record, ctx: StepContext) -> None:
        function = record.outputs.get("function_name")
        if function:
            self._remove(self.aws.get("lambda", record.region), function, record.name, ctx)

    @staticmethod
    def _remove(lam: Any, function: str, sid: str, ctx: StepContext) -> None:
        absent_is_done(
            lambda: call_when_ready(lambda: lam.remove_permission(FunctionName=function, StatementId=sid), ctx)
        )


def function_statement(
    aws: AwsClients, region: str | None, function: str | None, sid: str | None, fresh: bool = False
) -> dict[str, Any] | None:
    """The statement `sid` of the function's resource policy, or None. The policy holds every
    invoke permission (the rules' and the APIs'): in a read phase one GetPolicy serves them all;
    `fresh` asks again whatever phase is open (after a change)."""
    if not function or not sid:
        return None
    lam = aws.get("lambda", region)

    def statements() -> list[dict[str, Any]]:
        policy = absent_is_none(lambda: lam.get_policy(FunctionName=function))
        return json.loads(policy["Policy"]).get("Statement", []) if policy else []

    found = statements() if fresh else aws.shared_reads.read(("lambda:GetPolicy", region, function), statements)
    return next((s for s in found if s.get("Sid") == sid), None)


def _statement_live(statement: Mapping[str, Any]) -> dict[str, Any]:
    principal = statement.get("Principal")
    if isinstance(principal, Mapping):
        principal = principal.get("Service")
    condition = statement.get("Condition") or {}
    source = next(
        (v.get("AWS:SourceArn") for v in condition.values() if isinstance(v, Mapping) and "AWS:SourceArn" in v), None
    )
    return {"principal": principal, "action": statement.get("Action"), "source_arn": source}


def _permission_outputs(sid: str, function: str | None) -> dict[str, Any]:
    return {"id": sid, "name": sid, "function_name": function}


class LambdaConcurrencyStep(AwsStep):
    """Concurrency reserved for the function (LAMBDA_RESERVED_CONCURRENCY): Lambda keeps at least
    100 of the account's concurrency unreserved and refuses a reservation that would leave less."""

    kind = "lambda_concurrency"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        function = res.spec.get("function_name") or (record.outputs.get("function_name") if record else None)
        lam = self.aws.get("lambda", res.region)
        found = absent_is_none(lambda: lam.get_function_concurrency(FunctionName=function)) if function else None
        reserved = (found or {}).get("ReservedConcurrentExecutions")
        if reserved is None:
            return None
        return Observed(
            outputs=_concurrency_outputs(function), live={"reserved": reserved}, state=f"{reserved} reserved"
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"reserved": spec["reserved"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        lam = self.aws.get("lambda", res.region)
        call_when_ready(
            lambda: lam.put_function_concurrency(
                FunctionName=spec["function_name"], ReservedConcurrentExecutions=spec["reserved"]
            ),
            ctx,
        )
        return _concurrency_outputs(spec["function_name"])

    def delete(self, record: Record, ctx: StepContext) -> None:
        function = record.outputs.get("function_name")
        if function:
            lam = self.aws.get("lambda", record.region)
            absent_is_done(lambda: call_when_ready(lambda: lam.delete_function_concurrency(FunctionName=function), ctx))


def _concurrency_outputs(function: str | None) -> dict[str, Any]:
    return {"id": function, "function_name": function}
