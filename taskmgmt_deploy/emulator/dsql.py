"""Aurora DSQL as AWS documents it (aurora-dsql.md 1.4, 1.7, 1.8, 1.10), over moto's model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from moto.dsql.exceptions import ResourceNotFoundException, ValidationException
from moto.dsql.models import AuroraDSQLBackend, Cluster, dsql_backends

from taskmgmt_deploy.clock import Clock
from taskmgmt_deploy.emulator.patching import Patches

# AWS's own table, kept apart from taskmgmt's (regions.py) on purpose: the emulator plays
# AWS, so a mistake in the tool's table must not be mirrored here.
AWS_REGION_SETS = (
    ("us-east-1", "us-east-2", "us-west-2"),
    ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
    ("eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3"),
)


def _same_set(*regions: str) -> bool:
    return any(all(r in regions_set for r in regions) for regions_set in AWS_REGION_SETS)


@dataclass
class _State:
    status: str
    until: float | None = None  # when a transitional status ends
    next_status: str | None = None
    peers: list[str] = field(default_factory=list)
    witness: str | None = None


class DsqlFidelity:
    def __init__(
        self,
        clock: Clock,
        activation_seconds: float,
        deletion_seconds: float,
        update_seconds: float,
        lock: threading.RLock,
    ):
        self.clock = clock
        self.activation_seconds = activation_seconds
        self.deletion_seconds = deletion_seconds
        self.update_seconds = update_seconds
        self.lock = lock
        self.states: dict[str, _State] = {}  # by cluster ARN

    # -- model ------------------------------------------------------------------------
    def _cluster(self, arn: str) -> Cluster | None:
        parts = arn.split(":")
        if len(parts) < 6:
            return None
        account, region, identifier = parts[4], parts[3], parts[5].split("/", 1)[-1]
        try:
            return dsql_backends[account][region].clusters.get(identifier)
        except KeyError:
            return None

    def _set(self, cluster: Cluster, status: str, seconds: float | None = None, then: str | None = None) -> None:
        state = self.states[cluster.arn]
        state.status = status
        state.until = None if seconds is None else self.clock.now() + seconds
        state.next_status = then
        cluster._status = status

    def _refresh(self, cluster: Cluster) -> None:
        state = self.states.get(cluster.arn)
        if state is None:
            return
        if state.until is not None and self.clock.now() >= state.until:
            state.status, state.until, state.next_status = state.next_status or state.status, None, None
        cluster._status = state.status

    def _peered(self, arn: str) -> bool:
        """Peered once both clusters list each other (create B with A, then update A with B)."""
        state = self.states[arn]
        return bool(state.peers) and all(p in self.states and arn in self.states[p].peers for p in state.peers)

    def _validate_properties(self, region: str, properties: dict[str, Any] | None) -> None:
        if not properties:
            return
        witness = properties.get("witnessRegion")
        if witness is not None:
            if witness == region:
                raise ValidationException("The witness Region must differ from the cluster's Region.")
            if not _same_set(region, witness):
                raise ValidationException(f"Witness Region {witness} is not in the Region set of {region}.")
        for peer in properties.get("clusters") or []:
            peer_region = peer.split(":")[3] if peer.count(":") >= 5 else ""
            if self._cluster(peer) is None:
                raise ValidationException(f"Peer cluster {peer} does not exist.")
            if not _same_set(region, peer_region) or (witness and not _same_set(region, peer_region, witness)):
                raise ValidationException("Multi-Region clusters must be created within a single Region set.")

    # -- patched operations -------------------------------------------------------------
    def create(self, original: Any, backend: AuroraDSQLBackend, *args: Any, **kwargs: Any) -> Cluster:
        properties = kwargs.get("multi_region_properties")
        with self.lock:
            self._validate_properties(backend.region_name, properties)
            known = set(backend.clusters)
            cluster = original(backend, *args, **kwargs)
            if cluster.identifier in known:  # same client token: the same cluster
                return cluster
            cluster._transitions = []  # statuses are ours from now on
            cluster.endpoint = f"{cluster.identifier}.dsql.{backend.region_name}.on.aws"
            state = _State(status="CREATING")
            if properties and properties.get("witnessRegion"):
                state.witness = properties["witnessRegion"]
                state.peers = [p for p in properties.get("clusters") or [] if p != cluster.arn]
            self.states[cluster.arn] = state
            if state.witness:
                self._set(cluster, "PENDING_SETUP")
                self._activate_if_peered(cluster.arn)
            else:
                self._set(cluster, "CREATING", self.activation_seconds, "ACTIVE")
            return cluster

    def _activate_if_peered(self, arn: str) -> None:
        if not self._peered(arn):
            return
        for member in [arn, *self.states[arn].peers]:
            cluster = self._cluster(member)
            if cluster is not None and self.states[member].status in ("PENDING_SETUP", "UPDATING"):
                self._set(cluster, "CREATING", self.activation_seconds, "ACTIVE")

    def update(self, original: Any, backend: AuroraDSQLBackend, identifier: str, *args: Any, **kwargs: Any) -> Cluster:
        properties = kwargs.get("multi_region_properties")
        protection = kwargs.get("deletion_protection_enabled")
        with self.lock:
            cluster = self.get(self._original_get, backend, identifier)
            if properties is not None:
                self._validate_properties(backend.region_name, properties)
            cluster = original(backend, identifier, *args, **kwargs)
            state = self.states.get(cluster.arn)
            if state is None:
                return cluster
            if properties is not None:
                state.peers = [p for p in properties.get("clusters") or [] if p != cluster.arn]
                state.witness = properties.get("witnessRegion", state.witness)
                self._activate_if_peered(cluster.arn)
            elif protection is not None and state.status == "ACTIVE":
                self._set(cluster, "UPDATING", self.update_seconds, "ACTIVE")
            return cluster

    def delete(self, original: Any, backend: AuroraDSQLBackend, identifier: str) -> Cluster:
        with self.lock:
            cluster = self.get(self._original_get, backend, identifier)
            if cluster.deletion_protection_enabled:
                error = ValidationException("Deletion protection is enabled for this cluster.")
                error.reason = "deletionProtectionEnabled"
                raise error
            state = self.states.get(cluster.arn)
            if state is None:
                return original(backend, identifier)
            if state.status in ("DELETING", "DELETED"):
                return cluster
            alive = [
                p
                for p in state.peers
                if p in self.states
                and self.states[p].status not in ("DELETING", "DELETED", "PENDING_DELETE")
                and self._cluster(p) is not None
            ]
            if alive and self._peered(cluster.arn):
                self._set(cluster, "PENDING_DELETE")
            else:
                self._set(cluster, "DELETING", self.deletion_seconds, "DELETED")
                for peer in state.peers:  # the last one out releases the others
                    other = self._cluster(peer)
                    if other is not None and self.states.get(peer, _State("")).status == "PENDING_DELETE":
                        self._set(other, "DELETING", self.deletion_seconds, "DELETED")
            return cluster

    def get(self, original: Any, backend: AuroraDSQLBackend, identifier: str) -> Cluster:
        with self.lock:
            cluster = backend.clusters.get(identifier)
            if cluster is not None and cluster.arn in self.states:
                self._refresh(cluster)
                if cluster._status == "DELETED":
                    backend.clusters.pop(identifier, None)
                    self.states.pop(cluster.arn, None)
                    raise ResourceNotFoundException(cluster.arn, identifier, "cluster")
                return cluster
            return original(backend, identifier)

    def install(self, patches: Patches) -> None:
        self._original_get = AuroraDSQLBackend.get_cluster
        for name, method in (
            ("create_cluster", self.create),
            ("update_cluster", self.update),
            ("delete_cluster", self.delete),
            ("get_cluster", self.get),
        ):
            patches.around(AuroraDSQLBackend, name, method)
