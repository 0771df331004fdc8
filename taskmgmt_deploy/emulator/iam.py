"""IAM as AWS documents it, over moto's model (docs/pessimistic-emulation.md, section I): a role
or policy just created or changed is not yet visible to the services that use it, and a policy
still attached cannot be deleted. Also the policy evaluation the other services use."""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.iam.exceptions import DeleteConflictException, IAMException, NoSuchEntity
from moto.iam.models import IAMBackend, iam_backends
from moto.iam.responses import IamResponse

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.policy import Principal, Request, allowed, decide


class AccessDenied(IAMException):
    code = "AccessDenied"


class IamFidelity:
    def __init__(self, clock: Clock, propagation_seconds: float, lock: threading.RLock):
        self.clock = clock
        self.propagation = propagation_seconds
        self.lock = lock
        self.reset()

    def reset(self) -> None:
        """Forget when roles and policies changed (moto's reset forgets the roles)."""
        self.role_created: dict[str, float] = {}  # role name -> when it was created
        self.policy_changed: dict[str, float] = {}  # role name -> when its policies last changed

    def _settled(self, changes: dict[str, float], role_arn: str) -> bool:
        changed = changes.get(role_arn.rsplit("/", 1)[-1])
        return changed is None or self.clock.now() - changed >= self.propagation

    def role_ready(self, role_arn: str) -> bool:
        """Lambda can assume a role only some time after it was created."""
        return self._settled(self.role_created, role_arn)

    def role_allows(self, account: str, role_arn: str, action: str, resource: str) -> bool:
        role_name = role_arn.rsplit("/", 1)[-1]
        iam = iam_backends[account]["global"]
        role = next((r for r in iam.roles.values() if r.name == role_name), None)
        if role is None:
            return False
        documents = list(role.policies.values()) + [p.default_version.document for p in role.managed_policies.values()]
        return any(allows(doc, action, resource) for doc in documents)

    def policies_ready(self, role_arn: str) -> bool:
        """A role's inline policies reach the services that use it only some time after a change."""
        return self._settled(self.policy_changed, role_arn)

    def create_role(self, original: Any, backend: IAMBackend, role_name: str, *args: Any, **kwargs: Any) -> Any:
        role = original(backend, role_name, *args, **kwargs)
        with self.lock:
            self.role_created[role_name] = self.clock.now()
        return role

    def put_role_policy(self, original: Any, backend: IAMBackend, role_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original(backend, role_name, *args, **kwargs)
        with self.lock:
            self.policy_changed[role_name] = self.clock.now()
        return result

    def delete_policy(self, original: Any, backend: IAMBackend, policy_arn: str) -> Any:
        policy = backend.get_policy(policy_arn)
        if policy.attachment_count > 0:
            raise DeleteConflictException("Cannot delete a policy attached to entities.")
        return original(backend, policy_arn)

    @staticmethod
    def simulate_principal_policy(response: Any) -> ActionResult:
        """SimulatePrincipalPolicy, which moto lacks: the principal's own policies (inline, managed,
        and its groups'), each action on each resource, with the context entries given. It knows
        nothing of permissions boundaries, SCPs or session policies, which can only deny more."""
        iam = iam_backends[response.current_account]["global"]
        arn = response._get_param("PolicySourceArn")
        caller = iam.get_user_from_access_key_id(response.get_access_key())
        if caller is not None:  # a user moto made: it calls with its own permissions (row I11)
            asked = Request("iam:SimulatePrincipalPolicy", arn, Principal(arn=caller.arn, account=caller.account_id))
            if decide(principal_documents(iam, caller.arn) or [], asked) != "allowed":
                raise AccessDenied(
                    f"User: {caller.arn} is not authorized to perform: iam:SimulatePrincipalPolicy on resource: {arn}"
                )
        documents = principal_documents(iam, arn)
        if documents is None:
            raise NoSuchEntity(f"The principal {arn} does not exist.")
        context = {
            entry["ContextKeyName"]: entry["ContextKeyValues"]
            if entry.get("ContextKeyType", "").endswith("List")
            else entry["ContextKeyValues"][0]
            for entry in response._get_param("ContextEntries", [])
        }
        principal = Principal(arn=arn, account=arn.split(":")[4])
        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": decide(documents, Request(action, resource, principal, context)),
                "MatchedStatements": [],
                "MissingContextValues": [],
            }
            for action in response._get_param("ActionNames", [])
            for resource in response._get_param("ResourceArns", []) or ["*"]
        ]
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    def install(self, patches: Patches) -> None:
        for name in ("create_role", "put_role_policy", "delete_policy"):
            patches.around(IAMBackend, name, getattr(self, name))
        patches.operation(IamResponse, "SimulatePrincipalPolicy", self.simulate_principal_policy)


def principal_documents(iam: IAMBackend, arn: str) -> list[Any] | None:
    """Every policy document of the user or role `arn`, or None when there is no such principal."""
    kind, _, name = arn.split(":", 5)[-1].partition("/")
    name = name.rsplit("/", 1)[-1]
    if kind == "role":
        found = next((r for r in iam.roles.values() if r.arn == arn), None)
        holders = [found] if found else []
    elif kind == "user" and name in iam.users and iam.users[name].arn == arn:
        holders = [iam.users[name], *iam.get_groups_for_user(name)]
    else:
        return None
    if not holders:
        return None
    return [
        document
        for holder in holders
        for document in [
            *holder.policies.values(),
            *(p.default_version.document for p in holder.managed_policies.values()),
        ]
    ]


def allows(
    document: dict[str, Any] | str,
    action: str,
    resource: str,
    service: str | None = None,
    source_arn: str | None = None,
) -> bool:
    """Whether the policy allows `action` on `resource`; for a resource policy, to the `service`
    principal calling on behalf of `source_arn` (emulator/policy.py decides)."""
    principal = Principal(service=service) if service else None
    context = {"aws:SourceArn": source_arn} if source_arn else {}
    return allowed([document], Request(action, resource, principal, context))
