"""The resource policy of each DSQL cluster (DSQL_CLUSTER_POLICY): only the function's role may
connect, and only principals of this account as admin. Put once both clusters are ACTIVE; an
update names the version it replaces, so a change made meanwhile is never overwritten unseen
(https://docs.aws.amazon.com/aurora-dsql/latest/APIReference/API_PutClusterPolicy.html)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.aws.retry import call_with_retry, is_dsql_conflict
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Ref, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none
from taskmgmt_deploy.steps.dsql import find_cluster


def cluster_policy(cluster_arn: str, role_arn: str) -> dict[str, Any]:
    account = cluster_arn.split(":")[4]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TheFunctionRoleConnects",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": "dsql:DbConnect",
                "Resource": cluster_arn,
            },
            {
                "Sid": "NobodyElseConnects",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "dsql:DbConnect",
                "Resource": cluster_arn,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role_arn}},
            },
            {
                "Sid": "AdminOnlyFromThisAccount",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "dsql:DbConnectAdmin",
                "Resource": cluster_arn,
                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": account}},
            },
        ],
    }


class DsqlClusterPolicyStep(AwsStep):
    kind = "dsql_cluster_policy"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        dsql = self.aws.get("dsql", res.region)
        identifier = record.outputs.get("cluster_id") if record else None
        cluster = res.spec.get("cluster_id")
        if not identifier and isinstance(cluster, Ref):
            found = find_cluster(dsql, cluster.key, res.spec.get("tags", {}))
            identifier = found["identifier"] if found else None
        if not identifier:
            return None
        current = absent_is_none(lambda: dsql.get_cluster_policy(identifier=identifier))
        if current is None:
            return None
        return Observed(
            outputs=_outputs(identifier, current["policyVersion"]),
            live={"policy": json.loads(current["policy"])},
            state=f"version {current['policyVersion']}",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"policy": cluster_policy(spec["cluster_arn"], spec["role_arn"])}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        dsql = self.aws.get("dsql", res.region)
        identifier = spec["cluster_id"]
        document = json.dumps(cluster_policy(spec["cluster_arn"], spec["role_arn"]))

        def put() -> str:
            # Re-read on every attempt: a conflict may be a version that changed meanwhile.
            current = absent_is_none(lambda: dsql.get_cluster_policy(identifier=identifier))
            kwargs = {"expectedPolicyVersion": current["policyVersion"]} if current else {}
            return str(dsql.put_cluster_policy(identifier=identifier, policy=document, **kwargs)["policyVersion"])

        version = call_with_retry(put, is_dsql_conflict, "dsql_conflict", ctx.clock, ctx.progress)
        return _outputs(identifier, version)

    def delete(self, record: Record, ctx: StepContext) -> None:
        """The policy goes with its cluster; on its own, only the version read is removed."""
        identifier = record.outputs.get("cluster_id")
        if not identifier:
            return
        dsql = self.aws.get("dsql", record.region)
        current = absent_is_none(lambda: dsql.get_cluster_policy(identifier=identifier))
        if current is not None:
            absent_is_done(
                lambda: dsql.delete_cluster_policy(
                    identifier=identifier, expectedPolicyVersion=current["policyVersion"]
                )
            )


def _outputs(identifier: str, version: str) -> dict[str, Any]:
    return {"id": identifier, "cluster_id": identifier, "version": version}
