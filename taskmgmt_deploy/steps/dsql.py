"""Aurora DSQL: one cluster per region, and the peering that makes them one database.

Create, as https://docs.aws.amazon.com/aurora-dsql/latest/userguide/multi-region-aws-cli.html
does it: A with the witness -> B with the witness and A -> update A with B -> wait until both
are ACTIVE, with no wait in between. A and B sit in PENDING_SETUP until the update, and the
model makes `endpoint` optional, so a new cluster's endpoint is the one AWS reports when it
reports one and otherwise `{identifier}.dsql.{region}.on.aws`, the documented form
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/accessing.html).

Delete, as https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cluster-lifecycle.html
describes it: deletion protection off on both clusters (only under --force) -> delete A, which
waits in PENDING_DELETE -> delete B -> wait until both are gone. AWS refuses to change a
cluster whose peer is PENDING_DELETE, hence protection off on both before deleting either. A
cluster already PENDING_DELETE or DELETING has its delete requested: it gets no second
DeleteCluster and no UpdateCluster. Each call re-reads the cluster first, so a destroy killed
between any two calls resumes where it stopped. Both steps delete the whole pair this way:
the peering from its record, a cluster with the peers it lists (the peering record may be
lost), so whichever runs first does the work and the others find nothing left.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from taskmgmt_deploy.aws.errors import error_message
from taskmgmt_deploy.aws.finder import cluster_tags
from taskmgmt_deploy.aws.retry import call_with_retry, is_dsql_conflict
from taskmgmt_deploy.aws.waiting import poll
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Ref, Resource
from taskmgmt_deploy.errors import ProtectedError, TaskmgmtError
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, present

HEALTHY = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
GOING = frozenset({"DELETING", "DELETED", "PENDING_DELETE"})  # its delete was requested
BUSY = frozenset({"CREATING", "UPDATING"})  # a change is in progress; delete after it
CLUSTER_TIMEOUT = 30 * 60.0  # the Terraform provider's create/update/delete timeout
POLL_INTERVAL = 2.0  # GetCluster is cheap; a coarser poll only adds to every deploy's wait

Member = tuple[Any, str]  # (the dsql client of the cluster's region, its identifier)


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
        return {"deletion_protection": spec["deletion_protection"], **present(spec, "kms_key_arn")}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        dsql = self.aws.get("dsql", res.region)
        if observed is None:
            # Nothing to wait for: the cluster stays in PENDING_SETUP until the peering step
            # links it, and its id, ARN and endpoint are known now.
            return cluster_outputs(self._create(dsql, spec, ctx))
        identifier = observed.outputs["id"]
        changes: dict[str, Any] = {}
        if "deletion_protection" in change.diff:
            changes["deletionProtectionEnabled"] = spec["deletion_protection"]
        if "kms_key_arn" in change.diff:
            changes["kmsEncryptionKey"] = spec["kms_key_arn"]
        call_with_retry(
            lambda: dsql.update_cluster(identifier=identifier, **changes),
            is_dsql_conflict,
            "dsql_conflict",
            ctx.clock,
            ctx.progress,
        )
        cluster = poll(
            lambda: dsql.get_cluster(identifier=identifier),
            done=lambda c: c["status"] != "UPDATING",
            failed=_failed,
            state=lambda c: c["status"],
            what=f"cluster {identifier}",
            ctx=ctx,
            timeout=CLUSTER_TIMEOUT,
            interval=POLL_INTERVAL,
        )
        return cluster_outputs(cluster)

    def _create(self, dsql: Any, spec: Mapping[str, Any], ctx: StepContext) -> Mapping[str, Any]:
        properties: dict[str, Any] = {"witnessRegion": spec["witness_region"]}
        if spec.get("peer_arn"):
            properties["clusters"] = [spec["peer_arn"]]
        kwargs: dict[str, Any] = {
            "deletionProtectionEnabled": spec["deletion_protection"],
            "tags": dict(spec["tags"]),
            "multiRegionProperties": properties,
        }
        if spec.get("kms_key_arn"):
            kwargs["kmsEncryptionKey"] = spec["kms_key_arn"]
        if ctx.token:  # the same token after a crash returns the same cluster, not a second one
            kwargs["clientToken"] = ctx.token
        return dsql.create_cluster(**kwargs)

    def guard_delete(self, record: Record, observed: Observed | None) -> str | None:
        if observed is not None and observed.live.get("deletion_protection"):
            return f"DSQL cluster {observed.outputs['id']} ({record.region}) has deletion protection on"
        return None

    def delete(self, record: Record, ctx: StepContext) -> None:
        """This cluster goes with its peers: alone, it would wait in PENDING_DELETE for ever."""
        dsql = self.aws.get("dsql", record.region)
        identifier = record.id or (record.arn or "").rsplit("/", 1)[-1]
        cluster = get_cluster(dsql, identifier) if identifier else None
        if cluster is not None:
            peers = [(self.aws.get("dsql", region_of(arn)), arn.rsplit("/", 1)[-1]) for arn in peers_of(cluster)]
            delete_clusters([(dsql, identifier), *peers], ctx)

    def health(self, observed: Observed) -> str | None:
        status = observed.state
        if status == "FAILED":
            return "cluster creation FAILED"
        if status == "PENDING_SETUP":
            return "not peered yet (PENDING_SETUP): run deploy to finish peering"
        if status in GOING:
            return f"cluster is being deleted ({status})"
        if observed.live.get("encryption_status") == "KMS_KEY_INACCESSIBLE":
            return "its KMS key is inaccessible (disabled, deleted, or its policy changed): the data cannot be read"
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
            expect="peering usually takes a few minutes",
            ctx=ctx,
            timeout=CLUSTER_TIMEOUT,
            interval=POLL_INTERVAL,
        )
        return _pair_outputs(*pair)

    def delete(self, record: Record, ctx: StepContext) -> None:
        """A peering recorded before it was made has no clusters: theirs delete them."""
        out = record.outputs
        sides = [side for side in ("primary", "secondary") if out.get(f"{side}_id") and out.get(f"{side}_region")]
        delete_clusters([(self.aws.get("dsql", out[f"{side}_region"]), out[f"{side}_id"]) for side in sides], ctx)


# -- helpers shared by both steps -------------------------------------------------------


def get_cluster(dsql: Any, identifier: str) -> dict[str, Any] | None:
    return absent_is_none(lambda: dsql.get_cluster(identifier=identifier))


def find_cluster(dsql: Any, key: str, tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The oldest live cluster tagged with this resource key (CreateCluster takes no name)."""
    wanted = {**tags, "taskmgmt:key": key}
    matches = [
        c
        for c in _all_clusters(dsql)
        if c["status"] not in GOING and all(cluster_tags(dsql, c).get(k) == v for k, v in wanted.items())
    ]
    return min(matches, key=lambda c: c["creationTime"]) if matches else None


def _all_clusters(dsql: Any) -> Iterator[dict[str, Any]]:
    for page in dsql.get_paginator("list_clusters").paginate():
        for summary in page["clusters"]:
            cluster = get_cluster(dsql, summary["identifier"])
            if cluster is not None:
                yield cluster


def cluster_outputs(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """From CreateCluster or GetCluster; AWS's endpoint wins once it reports one."""
    identifier, region = cluster["identifier"], region_of(cluster["arn"])
    return {
        "id": identifier,
        "arn": cluster["arn"],
        "endpoint": cluster.get("endpoint") or endpoint_of(identifier, region),
        "region": region,
    }


def cluster_observed(cluster: Mapping[str, Any]) -> Observed:
    properties = cluster.get("multiRegionProperties") or {}
    encryption = cluster.get("encryptionDetails") or {}
    return Observed(
        outputs=cluster_outputs(cluster),
        live={
            "deletion_protection": bool(cluster.get("deletionProtectionEnabled")),
            "witness_region": properties.get("witnessRegion"),
            "peers": peers_of(cluster),
            "kms_key_arn": encryption.get("kmsKeyArn"),
            "encryption_status": encryption.get("encryptionStatus"),
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
        "primary_region": region_of(primary["arn"]),
        "secondary_region": region_of(secondary["arn"]),
    }


def _failed(cluster: Mapping[str, Any]) -> str | None:
    return "cluster status FAILED" if cluster["status"] == "FAILED" else None


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def endpoint_of(identifier: str, region: str) -> str:
    """The documented endpoint form, for a cluster that does not report one yet."""
    return f"{identifier}.dsql.{region}.on.aws"


def delete_clusters(members: list[Member], ctx: StepContext) -> None:
    """The multi-Region delete, from whatever state a previous run left the clusters in."""
    clusters = [(member, cluster) for member in members if (cluster := get_cluster(*member)) is not None]
    protected = [m for m, c in clusters if c.get("deletionProtectionEnabled") and c["status"] not in GOING]
    if protected:
        _check_unprotectable(protected, clusters, ctx)
        for dsql, identifier in protected:
            _turn_protection_off(dsql, identifier, ctx)
    for dsql, identifier in members:  # a change in progress (ours, or a killed run's) ends first
        wait_settled(dsql, identifier, ctx)
    for dsql, identifier in members:
        _request_delete(dsql, identifier, ctx)
    for dsql, identifier in members:
        wait_gone(dsql, identifier, ctx)


def _check_unprotectable(
    protected: list[Member], clusters: list[tuple[Member, dict[str, Any]]], ctx: StepContext
) -> None:
    names = ", ".join(identifier for _, identifier in protected)
    if not ctx.force:
        raise ProtectedError(f"DSQL cluster {names} has deletion protection on")
    leaving = [f"{m[1]} ({c['status']})" for m, c in clusters if c["status"] in GOING]
    if leaving:
        raise TaskmgmtError(
            f"DSQL cluster {names} has deletion protection on and its peer {', '.join(leaving)} is already "
            "being deleted: AWS refuses to change a cluster whose peer is PENDING_DELETE, so the pair cannot "
            "be finished from here (turn protection off on both before deleting either)"
        )


# Each attempt re-reads the cluster: a conflict because another run got there first ends
# with nothing left to do, and a cluster whose delete was requested is never changed.


def _turn_protection_off(dsql: Any, identifier: str, ctx: StepContext) -> None:
    def attempt() -> None:
        cluster = _not_leaving(dsql, identifier)
        if cluster is not None and cluster.get("deletionProtectionEnabled"):
            ctx.progress(f"turning deletion protection off on {identifier}")
            # A delete of the pair run elsewhere (a parallel sweep) may remove it between the read and the update.
            absent_is_done(lambda: dsql.update_cluster(identifier=identifier, deletionProtectionEnabled=False))

    call_with_retry(attempt, is_dsql_conflict_not_protection, "dsql_conflict", ctx.clock, ctx.progress)


def _request_delete(dsql: Any, identifier: str, ctx: StepContext) -> None:
    def attempt() -> None:
        if _not_leaving(dsql, identifier) is not None:
            ctx.progress(f"deleting {identifier}")
            absent_is_done(lambda: dsql.delete_cluster(identifier=identifier))

    call_with_retry(attempt, is_dsql_conflict_not_protection, "dsql_conflict", ctx.clock, ctx.progress)


def _not_leaving(dsql: Any, identifier: str) -> dict[str, Any] | None:
    """The cluster, unless it is gone or its delete was already requested."""
    cluster = get_cluster(dsql, identifier)
    return None if cluster is None or cluster["status"] in GOING else cluster


def is_dsql_conflict_not_protection(exc: BaseException) -> bool:
    """moto refuses a protected delete with ConflictException; that one never resolves by waiting."""
    return is_dsql_conflict(exc) and "protection" not in error_message(exc).lower()


def wait_settled(dsql: Any, identifier: str, ctx: StepContext) -> None:
    poll(
        lambda: get_cluster(dsql, identifier),
        done=lambda c: c is None or c["status"] not in BUSY,
        what=f"cluster {identifier} update",
        state=lambda c: c["status"] if c else "gone",
        ctx=ctx,
        timeout=CLUSTER_TIMEOUT,
        interval=POLL_INTERVAL,
    )


def wait_gone(dsql: Any, identifier: str, ctx: StepContext) -> None:
    poll(
        lambda: get_cluster(dsql, identifier),
        done=lambda c: c is None,
        what=f"cluster {identifier} to be deleted",
        expect="usually a few minutes",
        state=lambda c: c["status"] if c else "gone",
        ctx=ctx,
        timeout=CLUSTER_TIMEOUT,
        interval=POLL_INTERVAL,
    )
