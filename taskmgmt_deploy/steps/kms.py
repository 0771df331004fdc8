"""The customer managed key, looked up in each region. It is the user's: taskmgmt never
creates, changes or deletes it; it reads its ARN for the resources it encrypts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.errors import TaskmgmtError
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_none


class KmsKeyStep(AwsStep):
    kind = "kms_key"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        key_id = res.spec.get("key_id") or (record.name if record else res.name)
        meta = absent_is_none(lambda: self.aws.get("kms", res.region).describe_key(KeyId=key_id)["KeyMetadata"])
        if meta is None:
            return None
        return Observed(
            outputs={"id": meta["KeyId"], "arn": meta["Arn"], "name": key_id},
            state=key_problem(meta) or f"{meta['KeyState']}, customer managed",
        )

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        raise TaskmgmtError(
            f"KMS key {spec['key_id']} does not exist in {res.region}: create it (or replicate the multi-Region "
            "key there) first; taskmgmt never creates keys"
        )

    def delete(self, record: Record, ctx: StepContext) -> None:
        """The key is the user's: destroy leaves it."""

    def health(self, observed: Observed) -> str | None:
        return None if observed.state.endswith("customer managed") else observed.state


def key_problem(meta: Mapping[str, Any]) -> str | None:
    """Why this key cannot encrypt the stack's clusters, topics and log groups, or None."""
    if meta.get("KeyManager") != "CUSTOMER":
        return "an AWS managed key: CloudWatch alarms cannot publish to a topic encrypted with it"
    if meta.get("KeyState") != "Enabled":
        return f"the key is {meta.get('KeyState')}"
    if meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or meta.get("KeyUsage") != "ENCRYPT_DECRYPT":
        return "not a symmetric encryption key"
    return None
