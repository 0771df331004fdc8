"""S3 as the shared state uses it, as AWS documents it (docs/pessimistic-emulation.md, section T).

- T1: a conditional write that loses to another write of the same object fails with 409
  ConditionalRequestConflict as well as with 412 PreconditionFailed: which one is not promised.
  Here a failed condition on an object changed less than `s3_conflict_window` seconds ago
  answers 409.
- T2: If-Match names an ETag as S3 returns it, quotes included; moto also takes it unquoted.
- T3: ListObjectVersions promises no order and may return fewer than MaxKeys: here at most two
  versions a page, each page oldest first.
- T4: a bucket of another account refuses every call (moto lets any account in).

Not a row, a repair: moto's bucket policies deny a request whenever a statement's condition
does not hold, even in an Allow, and do not know aws:SecureTransport; here a bucket policy is
evaluated as IAM does (emulator/policy.py), for a request made over TLS, as boto3 makes them.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.iam.access_control import PermissionResult
from moto.s3.exceptions import PreconditionFailed, S3AccessDeniedError
from moto.s3.models import FakeBucket, S3Backend, s3_backends
from moto.s3.responses import S3Response

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.policy import ALLOWED, EXPLICIT_DENY, Principal, Request, decide

PAGE = 2  # versions in one ListObjectVersions page, at most


CONFLICT = (
    409,
    {"Content-Type": "application/xml"},
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code>'
    "<Message>A conflicting operation occurred. If using PutObject you can retry the request.</Message></Error>",
)


class S3Fidelity:
    def __init__(self, clock: Clock, conflict_window: float, lock: threading.RLock):
        self.clock, self.conflict_window, self.lock = clock, conflict_window, lock
        self.changed: dict[tuple[str, str], float] = {}  # (bucket, key) -> when last written or deleted

    def reset(self) -> None:
        with self.lock:
            self.changed.clear()

    def install(self, patches: Patches) -> None:
        patches.around(S3Response, "put_object", self.conditional_write)
        patches.around(S3Response, "delete_object", self.conditional_write)
        patches.around(S3Backend, "list_object_versions", self.list_object_versions)
        patches.around(S3Backend, "get_bucket", self.get_bucket)
        patches.around(FakeBucket, "get_permission", self.get_permission)

    def conditional_write(self, original: Any, response: S3Response) -> Any:
        """T1 and T2."""
        key = (response.bucket_name, response.parse_key_name())
        condition = response.headers.get("If-Match")
        if condition and condition != "*" and not _quoted(condition):
            raise PreconditionFailed("If-Match")
        try:
            answer = original(response)
        except PreconditionFailed:
            with self.lock:
                recent = self.clock.now() - self.changed.get(key, float("-inf")) < self.conflict_window
            if recent:
                return CONFLICT
            raise
        with self.lock:
            self.changed[key] = self.clock.now()
        return answer

    @staticmethod
    def list_object_versions(original: Any, backend: S3Backend, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        """T3: a page of at most PAGE versions, oldest first."""
        names = ("delimiter", "key_marker", "max_keys", "prefix", "version_id_marker")
        given = {**dict(zip(names, args, strict=False)), **kwargs}
        given["max_keys"] = min(int(given.get("max_keys") or PAGE), PAGE)
        versions, prefixes, markers, next_key, next_version = original(backend, bucket_name, **given)
        return versions[::-1], prefixes, markers[::-1], next_key, next_version

    @staticmethod
    def get_bucket(original: Any, backend: S3Backend, bucket_name: str) -> Any:
        """T4: another account's bucket is not ours to use."""
        owner = s3_backends.bucket_accounts.get(bucket_name)
        if bucket_name not in backend.buckets and owner is not None and owner[1] != backend.account_id:
            raise S3AccessDeniedError()
        return original(backend, bucket_name)

    @staticmethod
    def get_permission(original: Any, bucket: FakeBucket, action: str, resource: str) -> Any:
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        caller = Principal(arn=f"arn:aws:iam::{bucket.account_id}:root", account=bucket.account_id)
        request = Request(action, resource, caller, {"aws:SecureTransport": "true"})
        decision = decide([bucket.policy.decode()], request)
        if decision == EXPLICIT_DENY:
            return PermissionResult.DENIED
        return PermissionResult.PERMITTED if decision == ALLOWED else PermissionResult.NEUTRAL


def _quoted(etag: str) -> bool:
    return len(etag) > 1 and etag[0] == etag[-1] == '"'
