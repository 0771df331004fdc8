"""CloudWatch Logs as AWS documents it: only the retention periods AWS lists, and a KMS key for a
log group only by its ARN and only if its policy lets the region's Logs service use it
(docs/pessimistic-emulation.md, section G)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException
from moto.logs.models import LogsBackend, logs_backends
from moto.logs.responses import LogsResponse

from taskmgmt_deploy.emulator.kms import usable_by
from taskmgmt_deploy.emulator.patching import Patches

# What https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html has a key
# policy grant to logs.<region>.amazonaws.com.
LOGS_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey")

# AWS's list, kept apart from stack/config.py's LOG_RETENTION_VALUES on purpose: the emulator stands in
# for AWS, so a wrong value in the tool's list must be refused here, not agreed with.
RETENTION_DAYS = {
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
}


class LogsFidelity:
    @staticmethod
    def put_retention_policy(original: Any, backend: LogsBackend, log_group_name: str, retention_in_days: int) -> Any:
        if int(retention_in_days) not in RETENTION_DAYS:
            raise InvalidParameterException(
                f"1 validation error detected: Value '{retention_in_days}' at 'retentionInDays' "
                "failed to satisfy constraint: Member must satisfy enum value set"
            )
        return original(backend, log_group_name, retention_in_days)

    @staticmethod
    def create_log_group(original: Any, backend: LogsBackend, log_group_name: str, tags: Any, **kwargs: Any) -> Any:
        if kwargs.get("kmsKeyId"):
            _check_key(backend, kwargs["kmsKeyId"])
        return original(backend, log_group_name, tags, **kwargs)

    @staticmethod
    def associate_kms_key(response: LogsResponse) -> str:
        """AssociateKmsKey, which moto lacks."""
        backend = response.logs_backend
        name, key = response._get_param("logGroupName"), response._get_param("kmsKeyId")
        if name not in backend.groups:
            raise ResourceNotFoundException()
        _check_key(backend, key)
        backend.groups[name].kms_key_id = key
        return ""

    def reset(self) -> None:
        """It keeps nothing beside moto's state."""

    def install(self, patches: Patches) -> None:
        patches.around(LogsBackend, "put_retention_policy", self.put_retention_policy)
        patches.around(LogsBackend, "create_log_group", self.create_log_group)
        patches.operation(LogsResponse, "AssociateKmsKey", self.associate_kms_key)


def _check_key(backend: LogsBackend, key: str) -> None:
    if not str(key).startswith("arn:"):
        raise InvalidParameterException(f"kmsKeyId {key} must be the ARN of a KMS key")
    service = f"logs.{backend.region_name}.amazonaws.com"
    problem = usable_by(backend.account_id, backend.region_name, key, service, LOGS_KEY_ACTIONS)
    if problem:
        raise InvalidParameterException(f"The specified KMS key cannot be used with CloudWatch Logs: {problem}")


class FunctionLogs:
    """What Lambda does with a function's output: each line becomes an event in the log group
    its LoggingConfig names (else /aws/lambda/NAME), in a stream of the day. A group that does
    not exist gets nothing: the tool creates the group, and the function's role may not."""

    def __init__(self, log_group_of: Callable[[str], str | None]):
        self.log_group_of = log_group_of
        self._lock = threading.Lock()  # invocations run at once; moto's backends are not thread-safe

    def __call__(self, invocation: Any, lines: list[tuple[int, str]]) -> None:
        account = invocation.function_arn.split(":")[4]
        backend = logs_backends[account][invocation.region]
        group_name = self.log_group_of(invocation.function_arn) or f"/aws/lambda/{invocation.function_name}"
        stream = time.strftime("%Y/%m/%d/[$LATEST]sandbox", time.gmtime())
        with self._lock:
            group = backend.groups.get(group_name)
            if group is None:
                return
            if stream not in group.streams:
                group.create_log_stream(stream)
            backend.put_log_events(group_name, stream, [{"timestamp": ms, "message": line} for ms, line in lines])
