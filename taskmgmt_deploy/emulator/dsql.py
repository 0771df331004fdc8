"""Aurora DSQL's control plane as AWS documents it, over moto's model.

moto creates every cluster ACTIVE, keeps peer lists verbatim and deletes at once. Here, on
the fidelity clock:
- a cluster created with a witness Region waits in PENDING_SETUP until it and its peer list
  each other, then both go CREATING -> ACTIVE; deleting one of a peered pair leaves it in
  PENDING_DELETE until the last peer is deleted
  (https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cluster-lifecycle.html);
- it has no endpoint until it is ACTIVE (the model makes `endpoint` optional), and then the
  real `{identifier}.dsql.{region}.on.aws`;
- a change is refused while one is in progress, and so is any change to a cluster whose
  delete was requested or whose peer is PENDING_DELETE;
- a protected cluster refuses deletion with the documented ValidationException;
- ListClusters shows a new cluster only a while after CreateCluster (GetCluster at once), so a
  run that died before recording its cluster finds it again only by its client token.

Every choice where the documentation is silent takes the least forgiving reading; each is
a row of section D in docs/pessimistic-emulation.md. `requests` logs every mutating call,
so tests can say which calls a run made.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.dsql.exceptions import ConflictException, ResourceNotFoundException, ValidationException
from moto.dsql.models import AuroraDSQLBackend, Cluster, dsql_backends
from moto.dsql.responses import AuroraDSQLResponse

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.kms import find_key, usable_by
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.policy import EXPLICIT_DENY, Principal, Request, decide, statements

# AWS's own table, kept apart from taskmgmt's (stack/regions.py) on purpose: the emulator plays
# AWS, so a mistake in the tool's table must not be mirrored here.
AWS_REGION_SETS = (
    ("us-east-1", "us-east-2", "us-west-2"),
    ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
    ("eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3"),
)
SERVING = frozenset({"ACTIVE", "IDLE", "INACTIVE", "UPDATING"})  # an activated cluster has an endpoint
BUSY = frozenset({"CREATING", "UPDATING"})  # a change is in progress
LEAVING = frozenset({"PENDING_DELETE", "DELETING", "DELETED"})  # its delete was requested
SETTLED = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
POLICY_LIMIT = 20480  # characters of a cluster policy
# What DSQL may check with the caller's own credentials when it is given a customer managed key:
# the API reference does not say, so the emulator takes the broad reading (see row K2).
KMS_ON_BEHALF = ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")


class ServiceQuotaExceededException(ServiceException):
    code = "ServiceQuotaExceededException"


def _same_set(*regions: str) -> bool:
    return any(all(r in regions_set for r in regions) for regions_set in AWS_REGION_SETS)


class ClusterStorage(Protocol):
    """Where clusters keep their data (the sandbox: a PostgreSQL database per pair)."""

    def created(self, endpoint: str, peers: list[str]) -> None: ...  # peers: the endpoints it was created with

    def deleted(self, endpoint: str) -> None: ...


@dataclass
class _State:
    status: str
    until: float | None = None  # when a transitional status ends
    next_status: str | None = None
    peers: list[str] = field(default_factory=list)
    witness: str | None = None
    endpoint: str | None = None  # what GetCluster reports once the cluster has been ACTIVE
    activated: bool = False
    created: float = 0.0  # when CreateCluster made it (ListClusters shows it `listing_seconds` later)


@dataclass(frozen=True)
class Authorization:
    """A permission AWS checks with the caller's credentials inside one of its calls."""

    action: str
    resource: str
    via: str  # kms:ViaService


@dataclass(frozen=True)
class DsqlRequest:
    """One mutating call as the emulator received it, and how it answered."""

    operation: str  # CreateCluster, UpdateCluster, DeleteCluster
    region: str
    identifier: str | None
    change: str = ""  # what an UpdateCluster asked for
    error: str | None = None  # the error code it was refused with
    token: str | None = None  # the client token a CreateCluster sent


class DsqlFidelity:
    def __init__(
        self,
        clock: Clock,
        activation_seconds: float,
        deletion_seconds: float,
        update_seconds: float,
        listing_seconds: float,
        lock: threading.RLock,
        multi_region_quota: int = 5,
        storage: ClusterStorage | None = None,
    ):
        self.clock = clock
        self.multi_region_quota = multi_region_quota
        self.storage = storage
        self.activation_seconds = activation_seconds
        self.deletion_seconds = deletion_seconds
        self.update_seconds = update_seconds
        self.listing_seconds = listing_seconds
        self.lock = lock
        self.reset()

    def reset(self) -> None:
        """Forget every cluster's state and every request (moto's reset forgets the clusters)."""
        self.states: dict[str, _State] = {}  # by cluster ARN
        self.requests: list[DsqlRequest] = []
        self.authorizations: list[Authorization] = []

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
        self._show(cluster, state)

    def _refresh(self, cluster: Cluster) -> None:
        state = self.states.get(cluster.arn)
        if state is None:
            return
        if state.until is not None and self.clock.now() >= state.until:
            state.status, state.until, state.next_status = state.next_status or state.status, None, None
        self._show(cluster, state)

    def _show(self, cluster: Cluster, state: _State) -> None:
        """What moto serializes: our status, and the endpoint only once the cluster has been ACTIVE."""
        state.activated = state.activated or state.status == "ACTIVE"
        cluster._status = state.status
        cluster.endpoint = state.endpoint if state.activated and state.status in SERVING else None
        properties = cluster.multi_region_properties
        if state.witness and properties is not None:
            # GetCluster lists the cluster itself among `clusters`, as AWS's examples show.
            cluster.multi_region_properties = {**properties, "clusters": sorted({cluster.arn, *state.peers})}

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

    def _refuse_change(self, cluster: Cluster, state: _State, operation: str) -> None:
        """AWS answers ConflictException to a change it cannot make in the cluster's current state."""
        if state.status in LEAVING:
            raise ConflictException(
                f"{operation}: cluster {cluster.identifier} is {state.status}.", cluster.identifier, "cluster"
            )
        if state.status in BUSY:
            raise ConflictException(
                f"{operation}: cluster {cluster.identifier} is {state.status}; retry when it is ACTIVE.",
                cluster.identifier,
                "cluster",
            )

    def _logged(
        self,
        operation: str,
        region: str,
        identifier: str | None,
        change: str,
        call: Callable[[], Cluster],
        token: str | None = None,
    ) -> Cluster:
        """Make the call and log it with its outcome."""
        try:
            cluster = call()
        except ServiceException as exc:
            self.requests.append(DsqlRequest(operation, region, identifier, change, exc.code, token))
            raise
        self.requests.append(DsqlRequest(operation, region, cluster.identifier, change, token=token))
        return cluster

    # -- patched operations -------------------------------------------------------------
    def create(self, original: Any, backend: AuroraDSQLBackend, *args: Any, **kwargs: Any) -> Cluster:
        with self.lock:
            return self._logged(
                "CreateCluster",
                backend.region_name,
                None,
                "",
                lambda: self._create(original, backend, *args, **kwargs),
                kwargs.get("client_token"),
            )

    def _create(self, original: Any, backend: AuroraDSQLBackend, *args: Any, **kwargs: Any) -> Cluster:
        properties = kwargs.get("multi_region_properties")
        self._validate_properties(backend.region_name, properties)
        key = self._customer_key(backend, kwargs.get("kms_encryption_key"))
        known = set(backend.clusters)
        token = kwargs.get("client_token")
        retried = token is not None and any(c.client_token == token for c in backend.clusters.values())
        if properties and properties.get("witnessRegion") and not retried:
            self._check_quota(backend)
        cluster = original(backend, *args, **kwargs)
        if cluster.identifier in known:  # same client token: the same cluster
            return cluster
        _encrypt_with(cluster, key)
        cluster._transitions = []  # statuses are ours from now on
        state = _State(
            status="CREATING",
            endpoint=f"{cluster.identifier}.dsql.{backend.region_name}.on.aws",
            created=self.clock.now(),
        )
        if properties and properties.get("witnessRegion"):
            state.witness = properties["witnessRegion"]
            state.peers = [p for p in properties.get("clusters") or [] if p != cluster.arn]
        self.states[cluster.arn] = state
        if self.storage is not None:  # a cluster created with a peer shares the peer's data
            peers = [self.states[p].endpoint or "" for p in state.peers if p in self.states]
            self.storage.created(state.endpoint or "", peers)
        if not state.witness:
            self._set(cluster, "CREATING", self.activation_seconds, "ACTIVE")
            return cluster
        self._set(cluster, "PENDING_SETUP")
        self._activate_if_peered(cluster.arn)
        if state.status == "PENDING_SETUP":
            # AWS's examples answer a multi-Region create with UPDATING in one place and
            # PENDING_SETUP in another: the create says UPDATING, the next GetCluster PENDING_SETUP.
            cluster._status = "UPDATING"
        return cluster

    def _check_quota(self, backend: AuroraDSQLBackend) -> None:
        """Multi-Region clusters per account and region (adjustable, 5 by default)."""
        live = [
            c
            for c in backend.clusters.values()
            if c.arn in self.states and self.states[c.arn].witness and self.states[c.arn].status not in LEAVING
        ]
        if len(live) >= self.multi_region_quota:
            raise ServiceQuotaExceededException("ServiceQuotaExceededException", "You have reached the cluster limit.")

    def _customer_key(self, backend: AuroraDSQLBackend, key_id: str | None) -> str | None:
        """The ARN of the customer managed key DSQL is given, checked; its use is authorized with
        the caller's credentials through DSQL (recorded in `authorizations`)."""
        if key_id is None or key_id == "AWS_OWNED_KMS_KEY":
            return None
        account, region = backend.account_id, backend.region_name
        problem = usable_by(account, region, key_id, "dsql.amazonaws.com", ())
        if problem:
            raise ValidationException(problem)
        key = find_key(account, region, key_id)
        assert key is not None
        self.authorizations += [Authorization(a, key.arn, f"dsql.{region}.amazonaws.com") for a in KMS_ON_BEHALF]
        return str(key.arn)

    def _activate_if_peered(self, arn: str) -> None:
        if not self._peered(arn):
            return
        for member in [arn, *self.states[arn].peers]:
            cluster = self._cluster(member)
            if cluster is not None and self.states[member].status == "PENDING_SETUP":
                self._set(cluster, "CREATING", self.activation_seconds, "ACTIVE")

    def update(self, original: Any, backend: AuroraDSQLBackend, identifier: str, *args: Any, **kwargs: Any) -> Cluster:
        protection = kwargs.get("deletion_protection_enabled")
        asked = [] if protection is None else [f"deletionProtectionEnabled={protection}"]
        if kwargs.get("multi_region_properties") is not None:
            asked.append("multiRegionProperties")
        if kwargs.get("kms_encryption_key") is not None:
            asked.append("kmsEncryptionKey")
        change = ", ".join(asked)
        with self.lock:
            return self._logged(
                "UpdateCluster",
                backend.region_name,
                identifier,
                change,
                lambda: self._update(original, backend, identifier, *args, **kwargs),
            )

    def _update(self, original: Any, backend: AuroraDSQLBackend, identifier: str, *args: Any, **kwargs: Any) -> Cluster:
        properties = kwargs.get("multi_region_properties")
        cluster = self.get(self._original_get, backend, identifier)
        state = self.states.get(cluster.arn)
        if state is not None:
            self._refuse_change(cluster, state, "UpdateCluster")
            leaving = [p for p in state.peers if p in self.states and self.states[p].status == "PENDING_DELETE"]
            if leaving:
                raise ConflictException(
                    f"UpdateCluster: the peer {leaving[0]} of cluster {identifier} is PENDING_DELETE.",
                    identifier,
                    "cluster",
                )
        if properties is not None:
            self._validate_properties(backend.region_name, properties)
        key = self._customer_key(backend, kwargs.get("kms_encryption_key"))
        cluster = original(backend, identifier, *args, **kwargs)
        _encrypt_with(cluster, key)
        if state is None:
            return cluster
        changes = kwargs.get("deletion_protection_enabled") is not None or kwargs.get("kms_encryption_key") is not None
        if properties is not None:
            state.peers = [p for p in properties.get("clusters") or [] if p != cluster.arn]
            state.witness = properties.get("witnessRegion", state.witness)
            self._activate_if_peered(cluster.arn)
        elif changes and state.status == "ACTIVE":
            self._set(cluster, "UPDATING", self.update_seconds, "ACTIVE")
        self._show(cluster, state)
        return cluster

    def delete(self, original: Any, backend: AuroraDSQLBackend, identifier: str) -> Cluster:
        with self.lock:
            return self._logged(
                "DeleteCluster",
                backend.region_name,
                identifier,
                "",
                lambda: self._delete(original, backend, identifier),
            )

    def _delete(self, original: Any, backend: AuroraDSQLBackend, identifier: str) -> Cluster:
        cluster = self.get(self._original_get, backend, identifier)
        state = self.states.get(cluster.arn)
        if state is not None:
            self._refuse_change(cluster, state, "DeleteCluster")
        if cluster.deletion_protection_enabled:
            error = ValidationException("Deletion protection is enabled for this cluster.")
            error.reason = "deletionProtectionEnabled"
            raise error
        if state is None:
            return original(backend, identifier)
        alive = [
            p
            for p in state.peers
            if p in self.states and self.states[p].status not in LEAVING and self._cluster(p) is not None
        ]
        if alive and self._peered(cluster.arn):
            self._set(cluster, "PENDING_DELETE")
        else:
            self._set(cluster, "DELETING", self.deletion_seconds, "DELETED")
            leaving = [state]
            for peer in state.peers:  # the last one out releases the others
                other = self._cluster(peer)
                if other is not None and peer in self.states and self.states[peer].status == "PENDING_DELETE":
                    self._set(other, "DELETING", self.deletion_seconds, "DELETED")
                    leaving.append(self.states[peer])
            if self.storage is not None:
                for gone in leaving:
                    self.storage.deleted(gone.endpoint or "")
        return cluster

    def put_policy(
        self, original: Any, backend: AuroraDSQLBackend, identifier: str, policy: str, expected: str | None
    ) -> str:
        change = "expectedPolicyVersion" if expected else ""
        with self.lock:
            try:
                cluster = self.get(self._original_get, backend, identifier)
                state = self.states.get(cluster.arn)
                if state is not None and state.status not in SETTLED:
                    raise ConflictException(
                        f"PutClusterPolicy: cluster {identifier} is {state.status}.", identifier, "cluster"
                    )
                _check_policy(cluster, policy)
                version = original(backend, identifier, policy, expected)
            except ServiceException as exc:
                self.requests.append(DsqlRequest("PutClusterPolicy", backend.region_name, identifier, change, exc.code))
                raise
            self.requests.append(DsqlRequest("PutClusterPolicy", backend.region_name, identifier, change))
            return str(version)

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

    def list_clusters(
        self, original: Any, backend: AuroraDSQLBackend, *args: Any, **kwargs: Any
    ) -> tuple[list[Cluster], Any]:
        """Only clusters created at least `listing_seconds` ago (a page may come out short)."""
        clusters, next_token = original(backend, *args, **kwargs)
        with self.lock:
            now = self.clock.now()
            listed = [
                c
                for c in clusters
                if c.arn not in self.states or now - self.states[c.arn].created >= self.listing_seconds
            ]
        return listed, next_token

    def install(self, patches: Patches) -> None:
        self._original_get = AuroraDSQLBackend.get_cluster
        for name, method in (
            ("create_cluster", self.create),
            ("update_cluster", self.update),
            ("delete_cluster", self.delete),
            ("get_cluster", self.get),
            ("list_clusters", self.list_clusters),
            ("put_cluster_policy", self.put_policy),
        ):
            patches.around(AuroraDSQLBackend, name, method)
        patches.around(AuroraDSQLResponse, "get_cluster", _get_cluster_without_tags)


def _get_cluster_without_tags(original: Any, response: AuroraDSQLResponse) -> ActionResult:
    """GetCluster's `tags` is optional in its output: answer without it, so the stack's clusters
    are known by ListTagsForResource whenever GetCluster is silent (row D23)."""
    return ActionResult(_Untagged(original(response).result))


class _Untagged:
    def __init__(self, cluster: Any):
        self._cluster = cluster

    def __getattr__(self, name: str) -> Any:
        return None if name == "tags" else getattr(self._cluster, name)


def _encrypt_with(cluster: Cluster, key_arn: str | None) -> None:
    """GetCluster names the key by its ARN, however the request named it (moto echoes the request)."""
    if key_arn is not None:
        cluster.encryption_details = {
            "encryptionStatus": "ENABLED",
            "encryptionType": "CUSTOMER_MANAGED_KMS_KEY",
            "kmsKeyArn": key_arn,
        }


def _check_policy(cluster: Cluster, text: str) -> None:
    """What AWS refuses in a cluster policy, read pessimistically: not JSON, too long, no
    Version or Statement, a statement without a principal, an action outside dsql:, a resource
    other than the cluster, or a policy that denies this account's root managing the policy
    (https://docs.aws.amazon.com/aurora-dsql/latest/APIReference/API_PutClusterPolicy.html)."""
    if len(text) > POLICY_LIMIT:
        raise ValidationException(f"The policy is longer than {POLICY_LIMIT} characters.")
    try:
        document = json.loads(text)
    except ValueError:
        raise ValidationException("The policy is not valid JSON.") from None
    if document.get("Version") != "2012-10-17" or not document.get("Statement"):
        raise ValidationException("The policy needs Version 2012-10-17 and at least one Statement.")
    for statement in statements(document):
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        resources = statement.get("Resource")
        resources = [resources] if isinstance(resources, str) else resources or []
        if "Principal" not in statement or not actions:
            raise ValidationException("Each statement needs a Principal and an Action.")
        if not all(a.lower().startswith("dsql:") for a in actions):
            raise ValidationException(f"A cluster policy may only name dsql: actions, not {actions}.")
        if any(r not in (cluster.arn, "*") for r in resources):
            raise ValidationException(f"A cluster policy's Resource must be the cluster {cluster.arn}.")
    root = Principal(arn=f"arn:aws:iam::{cluster.account_id}:root", account=cluster.account_id)
    for action in ("dsql:PutClusterPolicy", "dsql:GetClusterPolicy", "dsql:DeleteClusterPolicy"):
        if decide([document], Request(action, cluster.arn, root)) == EXPLICIT_DENY:
            raise ValidationException(
                f"The policy would deny {action} to this account: set bypassPolicyLockoutSafetyCheck to put it."
            )
