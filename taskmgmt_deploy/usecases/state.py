"""`taskmgmt state`: set up a bucket for shared state, move a local state there, look at it.

The bucket keeps every version of the manifest (versioning), encrypts at rest by default
(the configured KMS key, else S3's own keys), blocks public access and refuses requests
that do not use TLS. https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import error_code
from taskmgmt_deploy.aws.s3state import ABSENT, refusals, s3_state
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.errors import ManifestError, UserError
from taskmgmt_deploy.stack.config import S3Url, Settings
from taskmgmt_deploy.stack.policy import state_statements
from taskmgmt_deploy.usecases import factory


def init_bucket(settings: Settings, url: S3Url, aws: AwsClients) -> list[str]:
    """Create the bucket if needed and set its protections (each call is idempotent); what was done."""
    s3 = aws.get("s3")
    region = settings.stack.primary_region
    done = []
    with refusals(url):
        try:
            s3.head_bucket(Bucket=url.bucket)
        except ClientError as exc:
            if error_code(exc) not in (*ABSENT, "NoSuchBucket"):
                raise
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=url.bucket, **where)
            done.append(f"created bucket {url.bucket} in {region}")
        s3.put_bucket_versioning(Bucket=url.bucket, VersioningConfiguration={"Status": "Enabled"})
        rule: dict[str, Any] = {"SSEAlgorithm": "AES256"}
        if settings.stack.kms_key:
            rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": settings.stack.kms_key}
        s3.put_bucket_encryption(
            Bucket=url.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": rule, "BucketKeyEnabled": "KMSMasterKeyID" in rule}]
            },
        )
        s3.put_public_access_block(
            Bucket=url.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_policy(Bucket=url.bucket, Policy=json.dumps(tls_only_policy(url, aws.identity()["Arn"])))
    key = f"KMS key {settings.stack.kms_key}" if settings.stack.kms_key else "S3 managed keys"
    done.append(f"bucket {url.bucket}: versioning on, encrypted with {key}, public access blocked, TLS required")
    return done


def tls_only_policy(url: S3Url, caller_arn: str) -> dict[str, Any]:
    partition = caller_arn.split(":")[1]
    bucket = f"arn:{partition}:s3:::{url.bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyRequestsWithoutTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket, f"{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def member_statements(settings: Settings, url: S3Url, aws: AwsClients) -> list[dict[str, Any]]:
    partition = aws.identity()["Arn"].split(":")[1]
    return state_statements(settings.stack, url, aws.account_id(), partition)


def push(settings: Settings, url: S3Url, aws: AwsClients, force: bool) -> str:
    """Copy the local manifest to `url`; refuses to replace a remote one unless `force`. Both
    locks are held: no local run changes the manifest while it is copied, and no remote one
    while it is replaced."""
    env = settings.stack.env
    local = factory.env_state(replace(settings, state_url=None))
    remote = s3_state(aws.get("s3"), url, env, factory.RUNTIME.clock)
    with factory.take_lock(settings, "state push", lambda _: None, local):
        text = local.manifest.read()
        if text is None:
            raise ManifestError(f"no local state to push: {local.manifest.where} does not exist")
        Manifest.load(local.manifest)  # a damaged manifest is not pushed
        with factory.take_lock(settings, "state push", lambda _: None, remote):
            existing = remote.manifest.read()
            if existing is not None and not force:
                raise UserError(
                    f"a state of environment '{env}' already exists at {remote.manifest.where}; nothing was "
                    "changed. Pass --force to replace it (its version stays in `taskmgmt state history`)"
                )
            remote.manifest.write(text)()
    return remote.manifest.where


def pull(settings: Settings, url: S3Url, aws: AwsClients) -> tuple[str, Manifest]:
    """The remote manifest's text, checked to be a manifest."""
    document = s3_state(aws.get("s3"), url, settings.stack.env, factory.RUNTIME.clock).manifest
    manifest = Manifest.load(document)
    if manifest is None:
        raise ManifestError(f"no state of environment '{settings.stack.env}' at {document.where}")
    return manifest.text(), manifest


@dataclass(frozen=True)
class Version:
    version_id: str
    modified: str
    size: int | None  # None: a delete marker (the state was deleted, by destroy)
    latest: bool


def history(settings: Settings, url: S3Url, aws: AwsClients) -> list[Version]:
    """Every version of the environment's manifest, newest first. The listing is read page by
    page and sorted here: its order and page size are not promised (docs/pessimistic-emulation.md T3)."""
    key = url.key(f"{settings.stack.env}.json")
    versions: list[Version] = []
    with refusals(url):
        for page in aws.get("s3").get_paginator("list_object_versions").paginate(Bucket=url.bucket, Prefix=key):
            for item in page.get("Versions", []):
                if item["Key"] == key:
                    versions.append(_version(item, item["Size"]))
            for item in page.get("DeleteMarkers", []):
                if item["Key"] == key:
                    versions.append(_version(item, None))
    return sorted(versions, key=lambda v: (v.latest, v.modified), reverse=True)


def _version(item: dict[str, Any], size: int | None) -> Version:
    modified = item["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return Version(str(item["VersionId"]), modified, size, bool(item["IsLatest"]))
