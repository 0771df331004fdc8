"""The functions' execution role and its one inline least-privilege policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.errors import is_already_exists
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, managed_tags, tag_dict, tag_list


class IamRoleStep(AwsStep):
    kind = "iam_role"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        role = absent_is_none(lambda: self.aws.get("iam").get_role(RoleName=res.name)["Role"])
        if role is None:
            return None
        return Observed(
            outputs={"id": role["RoleId"], "arn": role["Arn"], "name": role["RoleName"]},
            live={
                "trust_policy": _as_dict(role["AssumeRolePolicyDocument"]),
                "tags": managed_tags(tag_dict(role.get("Tags")), res.spec.get("tags", {})),
            },
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"trust_policy": spec["trust_policy"], "tags": spec["tags"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        iam = self.aws.get("iam")
        trust = json.dumps(spec["trust_policy"])
        if observed is None:
            try:
                iam.create_role(
                    RoleName=res.name,
                    AssumeRolePolicyDocument=trust,
                    Description=spec["description"],
                    Tags=tag_list(spec["tags"]),
                )
            except ClientError as exc:
                if not is_already_exists(exc):
                    raise
                iam.update_assume_role_policy(RoleName=res.name, PolicyDocument=trust)
        else:
            if "trust_policy" in change.diff:
                iam.update_assume_role_policy(RoleName=res.name, PolicyDocument=trust)
            if "tags" in change.diff:
                iam.tag_role(RoleName=res.name, Tags=tag_list(spec["tags"]))
        role = iam.get_role(RoleName=res.name)["Role"]
        return {"id": role["RoleId"], "arn": role["Arn"], "name": role["RoleName"]}

    def delete(self, record: Record, ctx: StepContext) -> None:
        """Inline policies, managed attachments and instance profiles first (else DeleteConflict)."""
        iam = self.aws.get("iam")
        name = record.name
        policies = absent_is_none(lambda: iam.list_role_policies(RoleName=name)["PolicyNames"])
        if policies is None:
            return
        for policy in policies:
            absent_is_done(lambda p=policy: iam.delete_role_policy(RoleName=name, PolicyName=p))
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        for policy in attached:
            absent_is_done(lambda a=policy["PolicyArn"]: iam.detach_role_policy(RoleName=name, PolicyArn=a))
        profiles = iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]
        for profile in profiles:
            absent_is_done(
                lambda p=profile["InstanceProfileName"]: iam.remove_role_from_instance_profile(
                    InstanceProfileName=p, RoleName=name
                )
            )
        absent_is_done(lambda: iam.delete_role(RoleName=name))


class IamRolePolicyStep(AwsStep):
    kind = "iam_role_policy"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        role = res.spec["role_name"]
        found = absent_is_none(lambda: self.aws.get("iam").get_role_policy(RoleName=role, PolicyName=res.name))
        if found is None:
            return None
        return Observed(
            outputs=_policy_outputs(role, res.name),
            live={"document": _as_dict(found["PolicyDocument"])},
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"document": spec["document"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        self.aws.get("iam").put_role_policy(
            RoleName=spec["role_name"], PolicyName=res.name, PolicyDocument=json.dumps(spec["document"])
        )
        return _policy_outputs(spec["role_name"], res.name)

    def delete(self, record: Record, ctx: StepContext) -> None:
        role = record.outputs.get("role_name")
        if role:
            absent_is_done(lambda: self.aws.get("iam").delete_role_policy(RoleName=role, PolicyName=record.name))


def _policy_outputs(role: str, policy: str) -> dict[str, Any]:
    return {"id": f"{role}/{policy}", "name": policy, "role_name": role}


def _as_dict(document: Any) -> Any:
    """IAM returns policy documents decoded, but emulators may return the JSON text."""
    if isinstance(document, str):
        from urllib.parse import unquote

        return json.loads(unquote(document))
    return document
