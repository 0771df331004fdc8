"""KMS as AWS documents it, over moto's model (docs/pessimistic-emulation.md, section K), and the
checks other services make on a key they are asked to use.

DescribeKey of a predefined alias (alias/aws/<service>) answers with that service's AWS managed
key, created on first use (https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html);
moto knows only some of these aliases, and calls their keys customer managed.
"""

from __future__ import annotations

from typing import Any

from moto.kms.models import Key, KmsBackend, kms_backends

from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.policy import Principal, Request, allowed

AWS_ALIAS = "alias/aws/"


class KmsFidelity:
    def reset(self) -> None:
        """It keeps nothing beside moto's state."""

    @staticmethod
    def get_key_id_from_alias(original: Any, backend: KmsBackend, alias_name: str) -> str | None:
        key_id = original(backend, alias_name)
        if alias_name.startswith(AWS_ALIAS):
            if key_id is None:
                key = backend.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "Default key", None)
                backend.create_alias(key.id, alias_name)
                key_id = key.id
            backend.keys[key_id].key_manager = "AWS"
        return key_id

    @staticmethod
    def create_key(original: Any, backend: KmsBackend, policy: Any, key_usage: Any, *args: Any, **kwargs: Any) -> Key:
        """KeyUsage defaults to ENCRYPT_DECRYPT, and DescribeKey always reports it (moto leaves it out)."""
        return original(backend, policy, key_usage or "ENCRYPT_DECRYPT", *args, **kwargs)

    def install(self, patches: Patches) -> None:
        patches.around(KmsBackend, "get_key_id_from_alias", self.get_key_id_from_alias)
        patches.around(KmsBackend, "create_key", self.create_key)


def find_key(account: str, region: str, key_id: str) -> Key | None:
    """The key an id, ARN, alias or alias ARN names in that region, or None."""
    backend = kms_backends[account][region]
    try:
        return backend.keys.get(backend.any_id_to_key_id(key_id))
    except (KeyError, TypeError, AttributeError):  # moto, on an alias nothing is named by
        return None


def usable_by(account: str, region: str, key_id: str, service: str, actions: tuple[str, ...]) -> str | None:
    """Why `service` cannot use the key for `actions`, or None: the key must exist in the region,
    be a customer managed symmetric key that is enabled, and its policy must allow the service."""
    key = find_key(account, region, key_id)
    if key is None:
        return f"KMS key {key_id} does not exist in {region}"
    if key.key_manager == "AWS":
        return f"KMS key {key_id} is an AWS managed key; {service} needs a customer managed key"
    if key.key_state != "Enabled":
        return f"KMS key {key_id} is {key.key_state}"
    if key.key_spec != "SYMMETRIC_DEFAULT" or key.key_usage != "ENCRYPT_DECRYPT":
        return f"KMS key {key_id} is not a symmetric encryption key"
    for action in actions:
        if not allowed([key.policy], Request(action, key.arn, Principal(service=service))):
            return f"the policy of KMS key {key_id} does not let {service} call {action}"
    return None
