"""Lambda as AWS documents it, over moto's model (docs/pessimistic-emulation.md, section L)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
from moto.awslambda.models import LambdaBackend, LambdaFunction

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.iam import IamFidelity
from taskmgmt_deploy.emulator.patching import Patches

RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
RUNTIMES = frozenset(
    {
        "python3.10",
        "python3.11",
        "python3.12",
        "python3.13",
        "python3.14",
        "nodejs20.x",
        "nodejs22.x",
        "java21",
        "provided.al2023",
    }
)
ROLE_NOT_READY = "The role defined for the function cannot be assumed by Lambda."
UNRESERVED_MINIMUM = 100


@dataclass
class Invocation:
    """What a runner needs to execute a function the way Lambda would."""

    function_name: str
    function_arn: str
    region: str
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    code: bytes
    payload: bytes
    asynchronous: bool
    code_digest: str = ""  # hex SHA-256 of `code`, computed at upload; empty: the runner hashes it


# Returns (response payload, function error or None).
Invoker = Callable[[Invocation], "tuple[bytes, str | None]"]


def _conflict(message: str) -> LambdaClientError:
    return LambdaClientError("ResourceConflictException", message)


class LambdaFidelity:
    def __init__(
        self,
        clock: Clock,
        iam: IamFidelity,
        settle_seconds: float,
        lock: threading.RLock,
        invoker: Invoker | None,
        concurrency_limit: int = 1000,
    ):
        self.clock = clock
        self.iam = iam
        self.settle = settle_seconds
        self.concurrency_limit = concurrency_limit
        self.lock = lock
        self.invoker = invoker
        self.reset()

    def reset(self) -> None:
        """Forget every function's timeline (moto's reset forgets the functions)."""
        self.busy_until: dict[str, tuple[float, str]] = {}  # function ARN -> (until, "create"|"update")
        self.logging: dict[str, dict[str, str]] = {}  # function ARN -> LoggingConfig

    # -- state after create and update -----------------------------------------------------
    def log_group_of(self, function_arn: str) -> str | None:
        """The log group a function's LoggingConfig names, if it names one."""
        return (self.logging.get(function_arn) or {}).get("LogGroup")

    def _mark_busy(self, fn: LambdaFunction, kind: str) -> None:
        with self.lock:
            self.busy_until[fn.function_arn] = (self.clock.now() + self.settle, kind)

    def _busy(self, fn: LambdaFunction) -> str | None:
        with self.lock:
            until, kind = self.busy_until.get(fn.function_arn, (0.0, ""))
            return kind if self.clock.now() < until else None

    def _refuse_if_busy(self, fn: LambdaFunction) -> None:
        kind = self._busy(fn)
        if kind == "create":
            raise _conflict(
                "The operation cannot be performed at this time. "
                "The function is currently in the following state: Pending"
            )
        if kind == "update":
            raise _conflict(
                f"The operation cannot be performed at this time. "
                f"An update is in progress for resource: {fn.function_arn}"
            )

    def _validate_spec(self, spec: dict[str, Any]) -> None:
        runtime = spec.get("Runtime")
        if runtime is not None and runtime not in RUNTIMES:
            raise InvalidParameterValueException(f"Value {runtime} at 'runtime' failed to satisfy constraint")
        reserved = sorted(RESERVED_ENV & set((spec.get("Environment") or {}).get("Variables") or {}))
        if reserved:
            raise InvalidParameterValueException(
                "Lambda was unable to configure your environment variables because the environment variables "
                "you have provided contains reserved keys that are currently not supported for modification. "
                f"Reserved keys used in this request: {', '.join(reserved)}"
            )
        if spec.get("Role") and not self.iam.role_ready(spec["Role"]):
            raise InvalidParameterValueException(ROLE_NOT_READY)

    def _store_logging(self, fn: LambdaFunction, config: dict[str, Any] | None) -> None:
        current = self.logging.get(fn.function_arn) or {
            "LogFormat": "Text",
            "LogGroup": f"/aws/lambda/{fn.function_name}",
        }
        if config:
            current = {**current, **config}
            if current.get("LogFormat") == "JSON":
                current.setdefault("ApplicationLogLevel", "INFO")
                current.setdefault("SystemLogLevel", "INFO")
        self.logging[fn.function_arn] = current

    # -- patched operations -----------------------------------------------------------------
    def create_function(self, original: Any, backend: LambdaBackend, spec: dict[str, Any]) -> LambdaFunction:
        self._validate_spec(spec)
        fn = original(backend, spec)
        with self.lock:
            self._store_logging(fn, spec.get("LoggingConfig"))
        self._mark_busy(fn, "create")
        return fn

    def update_function_configuration(
        self, original: Any, backend: LambdaBackend, function_name: str, qualifier: str, body: dict[str, Any]
    ) -> Any:
        fn = backend.get_function(function_name, qualifier)
        self._refuse_if_busy(fn)
        self._validate_spec(body)
        original(backend, function_name, qualifier, body)
        with self.lock:
            self._store_logging(fn, body.get("LoggingConfig"))
        self._mark_busy(fn, "update")
        return fn.get_configuration()

    def update_function_code(
        self, original: Any, backend: LambdaBackend, function_name: str, qualifier: str, body: dict[str, Any]
    ) -> Any:
        fn = backend.get_function(function_name, qualifier)
        self._refuse_if_busy(fn)
        if body.get("Architectures"):
            fn.architectures = body["Architectures"]
        result = original(backend, function_name, qualifier, body)
        self._mark_busy(fn, "update")
        return result

    def get_configuration(self, original: Any, fn: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
        config = original(fn, on_create)
        with self.lock:
            if fn.function_arn in self.logging:
                config["LoggingConfig"] = dict(self.logging[fn.function_arn])
        kind = self._busy(fn)
        if kind == "create":
            config.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
            config.pop("LastUpdateStatus", None)
        elif kind == "update":
            config.update(LastUpdateStatus="InProgress", LastUpdateStatusReason="The function is being updated.")
        return config

    @staticmethod
    def get_code(original: Any, fn: LambdaFunction) -> dict[str, Any]:
        """GetFunction, as for a caller without an explicit allow for lambda:ListTags: no Tags."""
        code = original(fn)
        code.pop("Tags", None)
        return code

    def add_permission(
        self, original: Any, backend: LambdaBackend, function_name: str, qualifier: str, raw: str
    ) -> Any:
        sid = json.loads(raw).get("StatementId")
        fn = backend.get_function(function_name, qualifier)
        if sid and any(s.get("Sid") == sid for s in fn.policy.statements):
            raise _conflict(
                f"The statement id ({sid}) provided already exists. Please provide a new statement "
                "id, or remove the existing statement."
            )
        return original(backend, function_name, qualifier, raw)

    def put_function_event_invoke_config(
        self, original: Any, backend: LambdaBackend, function_name: str, config: dict[str, Any]
    ) -> Any:
        fn = backend.get_function(function_name)
        destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if destination and destination.split(":")[2] == "sqs":
            ready = self.iam.role_ready(fn.role) and self.iam.policies_ready(fn.role)
            if not ready or not self.iam.role_allows(fn.account_id, fn.role, "sqs:SendMessage", destination):
                raise InvalidParameterValueException(
                    f"The function's execution role does not have permissions to call SendMessage on {destination}"
                )
        fn.event_invoke_config = []  # a put replaces; moto appends
        return original(backend, function_name, config)

    def put_function_concurrency(self, original: Any, backend: LambdaBackend, function_name: str, reserved: str) -> Any:
        """Lambda keeps at least 100 of the account's concurrency unreserved."""
        fn = backend.get_function(function_name)
        others = sum(int(f.reserved_concurrency or 0) for f in backend.list_functions() if f is not fn)
        if self.concurrency_limit - others - int(reserved) < UNRESERVED_MINIMUM:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
            )
        return original(backend, function_name, reserved)

    def get_account_settings(self, response: Any) -> tuple[int, dict[str, str], str]:
        """GetAccountSettings, which moto lacks: the limit, less what functions reserve."""
        functions = list(response.backend.list_functions())
        reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
        settings = {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": self.concurrency_limit,
                "UnreservedConcurrentExecutions": self.concurrency_limit - reserved,
            },
            "AccountUsage": {
                "TotalCodeSize": sum(int(f.code_size or 0) for f in functions),
                "FunctionCount": len(functions),
            },
        }
        return 200, {}, json.dumps(settings)

    def invoke(
        self,
        original: Any,
        backend: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> Any:
        fn = backend.get_function(function_name, qualifier)
        if self._busy(fn) == "create":
            raise _conflict(
                "The operation cannot be performed at this time. "
                "The function is currently in the following state: Pending"
            )
        if self.invoker is None:
            return original(backend, function_name, qualifier, body, headers, response_headers)
        asynchronous = (headers or {}).get("X-Amz-Invocation-Type") == "Event"
        payload, error = self.invoker(invocation_for(fn, body, asynchronous))
        if error:
            response_headers["x-amz-function-error"] = error
        return payload

    def install(self, patches: Patches) -> None:
        for name in (
            "create_function",
            "update_function_configuration",
            "update_function_code",
            "add_permission",
            "put_function_event_invoke_config",
            "put_function_concurrency",
            "invoke",
        ):
            patches.around(LambdaBackend, name, getattr(self, name))
        from moto.awslambda import urls
        from moto.awslambda.responses import LambdaResponse

        patches.route(urls.url_paths, r"{0}/(?P<api_version>[^/]+)/account-settings/?$", LambdaResponse.dispatch)
        patches.operation(LambdaResponse, "GetAccountSettings", self.get_account_settings)
        patches.around(LambdaFunction, "get_configuration", self.get_configuration)
        patches.around(LambdaFunction, "get_code", self.get_code)
        from moto.awslambda_simple.models import LambdaSimpleBackend

        patches.around(LambdaSimpleBackend, "invoke", self.invoke)


def invocation_for(fn: LambdaFunction, body: Any, asynchronous: bool) -> Invocation:
    payload = body if isinstance(body, bytes) else (body or "").encode()
    return Invocation(
        function_name=fn.function_name,
        function_arn=fn.function_arn,
        region=fn.region,
        handler=fn.handler,
        runtime=fn.run_time,
        timeout=int(fn.timeout),
        memory=int(fn.memory_size),
        environment=dict(fn.environment_vars or {}),
        code=fn.code_bytes,
        payload=payload,
        asynchronous=asynchronous,
        code_digest=str(getattr(fn, "code_digest", "") or ""),
    )
