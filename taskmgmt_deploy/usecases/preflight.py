"""Preflight: before anything is created, what would make a deploy fail late. Reads only, all at
once: the credentials, each region (enabled, DSQL reachable), the DSQL cluster quota, Lambda
(arm64, reserved concurrency headroom), the customer key, and whether the caller may do what
`taskmgmt policy` lists (iam:SimulatePrincipalPolicy, where the caller may use it).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import error_code, error_message, is_not_found
from taskmgmt_deploy.aws.finder import cluster_tags
from taskmgmt_deploy.errors import one_line
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import StackConfig
from taskmgmt_deploy.stack.policy import deployer_policy
from taskmgmt_deploy.stack.regions import LAMBDA_ARM64
from taskmgmt_deploy.steps.kms import key_problem

# The documented default, used when Service Quotas does not report the quota.
MULTI_REGION_CLUSTERS_DEFAULT = 5
_QUOTA_NAME = re.compile(r"multi-region clusters", re.IGNORECASE)
UNRESERVED_MINIMUM = 100  # Lambda keeps this much of the account's concurrency unreserved
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
# What the key policy must let each service do with the key (CloudWatch: publish alarms to the
# encrypted topic; CloudWatch Logs: write the encrypted log group).
KEY_USERS = {
    "cloudwatch.amazonaws.com": ("kms:Decrypt", "kms:GenerateDataKey"),
    "logs.{region}.amazonaws.com": ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False

    @property
    def outcome(self) -> str:
        return "skip" if self.skipped else ("ok" if self.ok else "FAIL")


def preflight(stack: StackConfig, aws: AwsClients, max_workers: int = 16) -> list[Check]:
    """Every check, in a fixed order; those after the credentials run in parallel."""
    try:
        identity = aws.identity()
    except (ClientError, BotoCoreError) as exc:
        return [Check("credentials", False, f"cannot identify the caller: {one_line(exc)}")]
    checks = _Checks(stack, aws, identity)
    jobs: list[tuple[str, Callable[[], Check]]] = [("regions", checks.region_set)]
    jobs += [(f"region {r}", lambda r=r: checks.region(r)) for r in (*stack.regions, stack.witness_region)]
    jobs += [(f"DSQL quota {r}", lambda r=r: checks.cluster_quota(r)) for r in stack.regions]
    jobs += [(f"Lambda {r}", lambda r=r: checks.function(r)) for r in stack.regions]
    if stack.kms_key:
        jobs += [(f"KMS key {r}", lambda r=r: checks.key(r)) for r in stack.regions]
    jobs.append(("permissions", checks.permissions))
    with ThreadPoolExecutor(max_workers) as pool:
        results = list(pool.map(lambda job: _guarded(*job), jobs))
    return [Check("credentials", True, f"account {identity['Account']} as {identity['Arn']}"), *results]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """An AWS error fails the check it happened in, with the error's one line."""
    try:
        return check()
    except (ClientError, BotoCoreError) as exc:
        return Check(name, False, one_line(exc))


class _Checks:
    def __init__(self, stack: StackConfig, aws: AwsClients, identity: Mapping[str, str]):
        self.stack, self.aws, self.identity = stack, aws, identity
        self.account = identity["Account"]

    def region_set(self) -> Check:
        s = self.stack
        return Check(
            "regions",
            True,
            f"{s.primary_region} and {s.secondary_region}, witness {s.witness_region}: one DSQL region set",
        )

    def region(self, region: str) -> Check:
        name = f"region {region}"
        try:
            status = self.aws.get("account").get_region_opt_status(RegionName=region)["RegionOptStatus"]
        except ClientError as exc:
            if error_code(exc) not in DENIED:
                raise
            status = None  # not readable: reaching DSQL there says enough
        if status is not None and status not in ("ENABLED", "ENABLED_BY_DEFAULT"):
            return Check(name, False, f"the region is {status} for this account: enable it first")
        self.aws.get("dsql", region).list_clusters(maxResults=1)
        enabled = "enabled" if status else "opt-in status not readable"
        return Check(name, True, f"{enabled}, DSQL reachable")

    def cluster_quota(self, region: str) -> Check:
        dsql = self.aws.get("dsql", region)
        ours = blueprint.cluster_key(self.stack, region)
        used, exists = 0, False
        for page in dsql.get_paginator("list_clusters").paginate():
            for summary in page["clusters"]:
                cluster = self._cluster(dsql, summary["identifier"])
                if cluster is None:
                    continue
                tags = cluster_tags(dsql, cluster)
                if tags.get("taskmgmt:key") == ours and all(tags.get(k) == v for k, v in self.stack.tags().items()):
                    exists = True
                elif cluster.get("multiRegionProperties") or cluster.get("_unreadable"):
                    used += 1
        quota, source = self._quota(region)
        need = 0 if exists else 1
        detail = f"{used} of {quota} multi-Region clusters used{source}; this stack needs {need} more"
        return Check(f"DSQL quota {region}", used + need <= quota, detail)

    @staticmethod
    def _cluster(dsql: Any, identifier: str) -> dict[str, Any] | None:
        """A cluster that may not be read (another team's) counts as a multi-Region one."""
        try:
            return dict(dsql.get_cluster(identifier=identifier))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            if error_code(exc) in DENIED:
                return {"_unreadable": True}
            raise

    def _quota(self, region: str) -> tuple[int, str]:
        try:
            pages = self.aws.get("service-quotas", region).get_paginator("list_service_quotas")
            for page in pages.paginate(ServiceCode="dsql"):
                for quota in page.get("Quotas", []):
                    if _QUOTA_NAME.search(quota.get("QuotaName", "")):
                        return int(quota["Value"]), ""
        except ClientError as exc:
            if error_code(exc) not in (*DENIED, "NoSuchResourceException"):
                raise
        return MULTI_REGION_CLUSTERS_DEFAULT, " (the default quota: Service Quotas did not report it)"

    def function(self, region: str) -> Check:
        name = f"Lambda {region}"
        if region not in LAMBDA_ARM64:
            return Check(name, False, "Lambda offers no arm64 functions in this region")
        lam = self.aws.get("lambda", region)
        unreserved = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
        wanted = self.stack.reserved_concurrency
        if not wanted:
            return Check(name, True, f"arm64 offered; {unreserved} concurrency unreserved")
        try:
            current = lam.get_function_concurrency(FunctionName=blueprint.function_name(self.stack))
            held = int(current.get("ReservedConcurrentExecutions") or 0)
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            held = 0
        left = unreserved + held - wanted
        detail = f"reserving {wanted} leaves {left} of the account's concurrency unreserved"
        if left < UNRESERVED_MINIMUM:
            return Check(name, False, f"{detail}; Lambda keeps at least {UNRESERVED_MINIMUM}: ask for a higher limit")
        return Check(name, True, f"arm64 offered; {detail}")

    def key(self, region: str) -> Check:
        name = f"KMS key {region}"
        kms = self.aws.get("kms", region)
        try:
            meta = kms.describe_key(KeyId=self.stack.kms_key)["KeyMetadata"]
        except ClientError as exc:
            if is_not_found(exc):
                return Check(name, False, f"{self.stack.kms_key} does not exist in {region}")
            raise
        problem = key_problem(meta)
        if problem:
            return Check(name, False, f"{self.stack.kms_key}: {problem}")
        policy = json.loads(kms.get_key_policy(KeyId=meta["Arn"], PolicyName="default")["Policy"])
        missing = [
            f"{service.format(region=region)} {action}"
            for service, actions in KEY_USERS.items()
            for action in actions
            if not _grants(policy, service.format(region=region), action)
        ]
        if missing:
            return Check(name, False, "the key policy does not let " + ", ".join(missing))
        return Check(name, True, f"{meta['Arn']}, enabled, usable by CloudWatch and CloudWatch Logs")

    def permissions(self) -> Check:
        name = "permissions"
        principal = _principal_arn(self.identity["Arn"])
        if principal is None:
            return Check(name, True, "not simulated for the account's root user", skipped=True)
        partition = self.identity["Arn"].split(":")[1]
        policy = deployer_policy(self.stack, self.account, partition)
        iam = self.aws.get("iam")
        first, *rest = policy["Statement"]
        try:
            denied = _denied(iam, principal, first)  # alone: it tells whether the caller may simulate at all
            with ThreadPoolExecutor(8) as pool:
                denied += [a for found in pool.map(lambda s: _denied(iam, principal, s), rest) for a in found]
        except ClientError as exc:
            if error_code(exc) in DENIED:
                return Check(name, True, "the caller may not call iam:SimulatePrincipalPolicy", skipped=True)
            if is_not_found(exc) or error_code(exc) == "NoSuchEntity":
                return Check(name, True, f"cannot simulate {principal}: {error_message(exc)}", skipped=True)
            raise
        if denied:
            return Check(name, False, "denied: " + ", ".join(sorted(set(denied))))
        actions = sum(len(s["Action"]) for s in policy["Statement"])
        return Check(name, True, f"all {actions} actions of `taskmgmt policy` allowed for {principal}")


def _principal_arn(caller: str) -> str | None:
    """The IAM principal SimulatePrincipalPolicy takes for the caller (a role has no path here;
    a user is always named in IAM's form, whatever service the identity's ARN names)."""
    parts = caller.split(":", 5)
    resource = parts[5]
    if resource.startswith("assumed-role/"):
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{resource.split('/')[1]}"
    if resource.startswith("user/"):
        return f"arn:{parts[1]}:iam::{parts[4]}:{resource}"
    return None


def _denied(iam: Any, principal: str, statement: Mapping[str, Any]) -> list[str]:
    resources = [r for r in statement["Resource"] if r != "*"]
    answer = iam.simulate_principal_policy(
        PolicySourceArn=principal,
        ActionNames=statement["Action"],
        **({"ResourceArns": resources} if resources else {}),
        ContextEntries=_context(statement.get("Condition") or {}),
    )
    return [r["EvalActionName"] for r in answer["EvaluationResults"] if r["EvalDecision"] != "allowed"]


def _context(condition: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Context values that meet our own conditions: the requests the tool makes carry them."""
    entries = []
    for operator, tests in condition.items():
        for key, value in tests.items():
            values = value if isinstance(value, list) else [value]
            listed = operator.startswith("ForAnyValue")
            entries.append(
                {
                    "ContextKeyName": key,
                    "ContextKeyValues": values if listed else values[:1],
                    "ContextKeyType": "stringList" if listed else "string",
                }
            )
    return entries


def _grants(policy: Mapping[str, Any], service: str, action: str) -> bool:
    """Whether an Allow statement names the service principal (or everyone) and the action. Its
    conditions are not evaluated: a key policy usually limits the service to this account."""
    for statement in _listed(policy.get("Statement")):
        principal = statement.get("Principal")
        services = _listed(principal.get("Service")) if isinstance(principal, Mapping) else []
        actions = [a.lower() for a in _listed(statement.get("Action"))]
        if (
            statement.get("Effect") == "Allow"
            and (principal == "*" or service in services)
            and any(fnmatch.fnmatchcase(action.lower(), pattern) for pattern in actions)
        ):
            return True
    return False


def _listed(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]
