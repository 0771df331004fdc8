"""The function's log group, created before the function so Lambda never has to (the role
is not allowed to create log groups), with retention, tags and, when KMS_KEY is set, the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.errors import is_already_exists
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, present


class LogGroupStep(AwsStep):
    kind = "log_group"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        group = find_log_group(self.aws.get("logs", res.region), res.name)
        if group is None:
            return None
        live = {"retention_days": group.get("retentionInDays")}
        if "kms_key_arn" in res.spec:
            live["kms_key_arn"] = group.get("kmsKeyId")
        return Observed(outputs=_outputs(group), live=live, state=f"{group.get('storedBytes', 0)} bytes")

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"retention_days": spec["retention_days"], **present(spec, "kms_key_arn")}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        logs = self.aws.get("logs", res.region)
        key = spec.get("kms_key_arn")
        if observed is None:
            try:
                logs.create_log_group(
                    logGroupName=res.name, tags=dict(spec["tags"]), **({"kmsKeyId": key} if key else {})
                )
            except ClientError as exc:
                if not is_already_exists(exc):
                    raise
                observed = self.read(res, None)
        if key and observed is not None and observed.live.get("kms_key_arn") != key:
            logs.associate_kms_key(logGroupName=res.name, kmsKeyId=key)
        logs.put_retention_policy(logGroupName=res.name, retentionInDays=spec["retention_days"])
        group = find_log_group(logs, res.name)
        if group is None:
            raise RuntimeError(f"log group {res.name} vanished right after it was created")
        return _outputs(group)

    def delete(self, record: Record, ctx: StepContext) -> None:
        absent_is_done(lambda: self.aws.get("logs", record.region).delete_log_group(logGroupName=record.name))


def find_log_group(logs: Any, name: str) -> dict[str, Any] | None:
    """Exact match only: a prefix query also returns /aws/lambda/name-other groups."""
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page.get("logGroups", []):
            if group["logGroupName"] == name:
                return group
    return None


def _outputs(group: Mapping[str, Any]) -> dict[str, Any]:
    # `arn` ends with ":*" (covers the group's streams), which is what the policy needs.
    return {"id": group["logGroupName"], "name": group["logGroupName"], "arn": group["arn"]}
