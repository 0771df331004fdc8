"""Aurora DSQL: one cluster per region, and the peering that makes them one database.

Create (aurora-dsql.md 1.7): A with the witness -> B with the witness and A -> update A
with B -> wait for both. A and B sit in PENDING_SETUP until the update, which is expected.
Delete (1.8): protection off on both -> delete A (PENDING_DELETE) -> delete B -> wait
until both are gone. A peered pair can only be deleted together, so the peering's delete
is that whole procedure and each cluster's own delete then finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.errors import error_message, is_not_found
from taskmgmt_deploy.aws.retry import call_with_retry, is_dsql_conflict
from taskmgmt_deploy.aws.waiting import poll
from taskmgmt_deploy.context import StepContext
from taskmgmt_deploy.errors import ProtectedError
from taskmgmt_deploy.models import Change, Observed, Record, Ref, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_none

HEALTHY = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
GOING = frozenset({"DELETING", "DELETED", "PENDING_DELETE"})
CLUSTER_TIMEOUT = 30 * 60.0  # the Terraform provider's create/update/delete timeout
POLL_INTERVAL = 2.0  # GetCluster is cheap; a coarser poll only adds to every deploy's wait


class DsqlClusterStep(AwsStep):
    kind = "dsql_cluster"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        dsql = self.aws.get("dsql", res.region)
        cluster = None
        if record is not None and record.id:
            cluster = get_cluster(dsql, record.id)
        if cluster is None or cluster["status"] in GOING:
            cluster = find_cluster(dsql, res.key, res.spec.get("tags", {}))
        return None if cluster is None else cluster_observed(cluster)

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"deletion_protection": spec["deletion_protection"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        dsql = self.aws.get("dsql", res.region)
        if observed is None:
            # Not ACTIVE yet: an unpeered cluster stays in PENDING_SETUP (some responses say
            # UPDATING) until the peering step links it. Only its endpoint is needed now.
            identifier = self._create(dsql, spec, ctx)
            settled = lambda c: bool(c.get("endpoint"))  # noqa: E731
        else:
            identifier = observed.outputs["id"]
            call_with_retry(
                lambda: dsql.update_cluster(
                    identifier=identifier, deletionProtectionEnabled=spec["deletion_protection"]
                ),
                is_dsql_conflict,
                "dsql_conflict",
                ctx.clock,
                ctx.progress,
            )
            settled = lambda c: c["status"] != "UPDATING"  # noqa: E731
        cluster = poll(
            lambda: dsql.get_cluster(identifier=identifier),
            done=settled,
            failed=_failed,
            state=lambda c: c["status"],
            what=f"cluster {identifier}",
            ctx=ctx,
            timeout=CLUSTER_TIMEOUT,
            interval=POLL_INTERVAL,
        )
        return cluster_outputs(cluster)

    def _create(self, dsql: Any, spec: Mapping[str, Any], ctx: StepContext) -> str:
        properties: dict[str, Any] = {"witnessRegion": spec["witness_region"]}
        if spec.get("peer_arn"):
            properties["clusters"] = [spec["peer_arn"]]
        kwargs: dict[str, Any] = {
            "deletionProtectionEnabled": spec["deletion_protection"],
            "tags": dict(spec["tags"]),
            "multiRegionProperties": properties,
        }
        if ctx.token:  # the same token after a crash returns the same cluster, not a second one
            kwargs["clientToken"] = ctx.token
        return str(dsql.create_cluster(**kwargs)["identifier"])

    def guard_delete(self, record: Record, observed: Observed | None) -> str | None:
        if observed is not None and observed.live.get("deletion_protection"):
            return f"DSQL cluster {observed.outputs['id']} ({record.region}) has deletion protection on"
        return None

    def delete(self, record: Record, ctx: StepContext) -> None:
        dsql = self.aws.get("dsql", record.region)
        identifier = record.id or (record.arn or "").rsplit("/", 1)[-1]
        if identifier and request_delete(dsql, identifier, ctx):
            # A peer that is still alive holds this one in PENDING_DELETE: that is done for us.
            wait_gone(dsql, identifier, ctx, pending_delete_is_done=True)

    def health(self, observed: Observed) -> str | None:
        status = observed.state
        if status == "FAILED":
            return "cluster creation FAILED"
        if status == "PENDING_SETUP":
            return "not peered yet (PENDING_SETUP): run deploy to finish peering"
        if status in GOING:
            return f"cluster is being deleted ({status})"
        return None


class DsqlPeeringStep(AwsStep):
    kind = "dsql_peering"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        recorded = record.outputs if record else {}
        pair = []
        for side in ("primary", "secondary"):
            region = res.spec.get(f"{side}_region") or recorded.get(f"{side}_region")
            if not region:
                return None
            dsql = self.aws.get("dsql", region)
            known = recorded.get(f"{side}_id")
            cluster = get_cluster(dsql, known) if known else None
            ref = res.spec.get(f"{side}_id")
            if (cluster is None or cluster["status"] in GOING) and isinstance(ref, Ref):
                cluster = find_cluster(dsql, ref.key, res.spec.get("tags", {}))
            if cluster is None:
                return None
            pair.append(cluster)
        primary, secondary = pair
        return Observed(
            outputs=_pair_outputs(primary, secondary),
            live={"peers": peers_of(primary), "clusters_healthy": all(c["status"] in HEALTHY for c in pair)},
            state=f"{primary['status']}/{secondary['status']}",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"peers": [spec["secondary_arn"]], "clusters_healthy": True}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        primary = self.aws.get("dsql", spec["primary_region"])
        secondary = self.aws.get("dsql", spec["secondary_region"])
        current = primary.get_cluster(identifier=spec["primary_id"])
        if spec["secondary_arn"] not in peers_of(current):
            ctx.progress("peering the clusters through witness " + spec["witness_region"])
            call_with_retry(
                lambda: primary.update_cluster(
                    identifier=spec["primary_id"],
                    multiRegionProperties={
                        "witnessRegion": spec["witness_region"],
                        "clusters": [spec["secondary_arn"]],
                    },
                ),
                is_dsql_conflict,
                "dsql_conflict",
                ctx.clock,
                ctx.progress,
            )
        clusters = [(primary, spec["primary_id"]), (secondary, spec["secondary_id"])]
        pair = poll(
            lambda: [client.get_cluster(identifier=ident) for client, ident in clusters],
            done=lambda p: all(c["status"] in HEALTHY for c in p),
            failed=lambda p: next((m for c in p if (m := _failed(c))), None),
            state=lambda p: "/".join(c["status"] for c in p),
            what="both DSQL clusters to become ACTIVE",
            ctx=ctx,
            timeout=CLUSTER_TIMEOUT,
            interval=POLL_INTERVAL,
        )
        return _pair_outputs(*pair)

    def delete(self, record: Record, ctx: StepContext) -> None:
        """The multi-Region delete: both clusters, in order, then wait until both are gone."""
        pair = [
            (self.aws.get("dsql", record.outputs[f"{side}_region"]), record.outputs[f"{side}_id"])
            for side in ("primary", "secondary")
        ]
        requested = [(client, ident) for client, ident in pair if request_delete(client, ident, ctx)]
        for client, ident in requested:
            wait_gone(client, ident, ctx, pending_delete_is_done=False)


# -- helpers shared by both steps -------------------------------------------------------


def get_cluster(dsql: Any, identifier: str) -> dict[str, Any] | None:
    return absent_is_none(lambda: dsql.get_cluster(identifier=identifier))


def find_cluster(dsql: Any, key: str, tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The oldest live cluster tagged with this resource key (CreateCluster takes no name)."""
    wanted = {**tags, "taskmgmt:key": key}
    matches = [
        c
        for c in _all_clusters(dsql)
        if c["status"] not in GOING and all((c.get("tags") or {}).get(k) == v for k, v in wanted.items())
    ]
    return min(matches, key=lambda c: c["creationTime"]) if matches else None


def _all_clusters(dsql: Any) -> Iterator[dict[str, Any]]:
    for page in dsql.get_paginator("list_clusters").paginate():
        for summary in page["clusters"]:
            cluster = get_cluster(dsql, summary["identifier"])
            if cluster is not None:
                yield cluster


def cluster_outputs(cluster: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": cluster["identifier"],
        "arn": cluster["arn"],
        "endpoint": cluster.get("endpoint"),
        "region": cluster["arn"].split(":")[3],
    }


def cluster_observed(cluster: Mapping[str, Any]) -> Observed:
    properties = cluster.get("multiRegionProperties") or {}
    return Observed(
        outputs=cluster_outputs(cluster),
        live={
            "deletion_protection": bool(cluster.get("deletionProtectionEnabled")),
            "witness_region": properties.get("witnessRegion"),
            "peers": peers_of(cluster),
        },
        state=cluster["status"],
    )


def peers_of(cluster: Mapping[str, Any]) -> list[str]:
    """Peer ARNs; some responses list the cluster's own ARN too, which is not a peer."""
    listed = (cluster.get("multiRegionProperties") or {}).get("clusters") or []
    return sorted(arn for arn in listed if arn != cluster["arn"])


def _pair_outputs(primary: Mapping[str, Any], secondary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{primary['identifier']}+{secondary['identifier']}",
        "primary_id": primary["identifier"],
        "secondary_id": secondary["identifier"],
        "primary_region": primary["arn"].split(":")[3],
        "secondary_region": secondary["arn"].split(":")[3],
    }


def _failed(cluster: Mapping[str, Any]) -> str | None:
    return "cluster status FAILED" if cluster["status"] == "FAILED" else None


def request_delete(dsql: Any, identifier: str, ctx: StepContext) -> bool:
    """Turn protection off (only under --force) and ask for deletion. False if already gone."""
    cluster = get_cluster(dsql, identifier)
    if cluster is None:
        return False
    if cluster["status"] in ("DELETING", "DELETED"):
        return True
    if cluster.get("deletionProtectionEnabled"):
        if not ctx.force:
            raise ProtectedError(f"DSQL cluster {identifier} has deletion protection on")
        ctx.progress(f"turning deletion protection off on {identifier}")
        call_with_retry(
            lambda: dsql.update_cluster(identifier=identifier, deletionProtectionEnabled=False),
            is_dsql_conflict,
            "dsql_conflict",
            ctx.clock,
            ctx.progress,
        )
        poll(
            lambda: dsql.get_cluster(identifier=identifier),
            done=lambda c: c["status"] != "UPDATING",
            what=f"cluster {identifier} update",
            ctx=ctx,
            timeout=CLUSTER_TIMEOUT,
            interval=POLL_INTERVAL,
        )
    try:
        call_with_retry(
            lambda: dsql.delete_cluster(identifier=identifier),
            is_dsql_conflict_not_protection,
            "dsql_conflict",
            ctx.clock,
            ctx.progress,
        )
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def is_dsql_conflict_not_protection(exc: BaseException) -> bool:
    return is_dsql_conflict(exc) and "protection" not in error_message(exc).lower()


def wait_gone(dsql: Any, identifier: str, ctx: StepContext, pending_delete_is_done: bool) -> None:
    def done(cluster: dict[str, Any] | None) -> bool:
        return cluster is None or (pending_delete_is_done and cluster["status"] == "PENDING_DELETE")

    poll(
        lambda: get_cluster(dsql, identifier),
        done=done,
        what=f"cluster {identifier} to be deleted",
        state=lambda c: c["status"] if c else "gone",
        ctx=ctx,
        timeout=CLUSTER_TIMEOUT,
        interval=POLL_INTERVAL,
    )
