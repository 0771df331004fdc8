"""IAM as AWS documents it, over moto's model (docs/pessimistic-emulation.md, section I): a role
or policy just created or changed is not yet visible to the services that use it, and a policy
still attached cannot be deleted. Also the policy evaluation the other services use."""

from __future__ import annotations

import fnmatch
import json
import threading
from typing import Any

from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import IAMBackend, iam_backends

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.patching import Patches


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

    def install(self, patches: Patches) -> None:
        for name in ("create_role", "put_role_policy", "delete_policy"):
            patches.around(IAMBackend, name, getattr(self, name))


def allows(
    document: dict[str, Any] | str,
    action: str,
    resource: str,
    service: str | None = None,
    source_arn: str | None = None,
) -> bool:
    """Whether an Allow statement of the policy grants `action` on `resource`; for a resource
    policy, to the `service` principal calling on behalf of `source_arn`. A statement with a
    condition this does not evaluate never grants anything."""
    if isinstance(document, str):
        document = json.loads(document) if document else {}
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if (
            statement.get("Effect") == "Allow"
            and _matches(action, statement.get("Action"))
            and _matches(resource, statement.get("Resource"))
            and (service is None or _names_service(statement.get("Principal"), service))
            and _conditions_hold(statement.get("Condition") or {}, source_arn)
        ):
            return True
    return False


def _matches(value: str, patterns: str | list[str] | None) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else patterns or []
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _names_service(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    named = principal.get("Service") if isinstance(principal, dict) else principal
    return _matches(service, named) if named else False


def _conditions_hold(conditions: dict[str, Any], source_arn: str | None) -> bool:
    for operator, tests in conditions.items():
        for key, wanted in (tests if isinstance(tests, dict) else {}).items():
            if operator not in ("ArnEquals", "ArnLike") or key.lower() != "aws:sourcearn" or source_arn is None:
                return False
            if not _matches(source_arn, wanted):
                return False
    return True
