"""S3 as the shared state uses it, made as strict as AWS documents it (docs/pessimistic-emulation.md, T)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="state")
    client.put_bucket_versioning(Bucket="state", VersioningConfiguration={"Status": "Enabled"})
    return client


def refusal(call, **params) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_failed_condition_soon_after_a_change_is_a_409_conflict_later_a_412(s3, clock, aws):
    """Row T1."""
    etag = s3.put_object(Bucket="state", Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    s3.put_object(Bucket="state", Key="k", Body=b"2", IfMatch=etag)
    for call, params in (
        (s3.put_object, {"Body": b"x", "IfNoneMatch": "*"}),
        (s3.put_object, {"Body": b"x", "IfMatch": etag}),
        (s3.delete_object, {"IfMatch": etag}),
    ):
        assert refusal(call, Bucket="state", Key="k", **params) == ("ConditionalRequestConflict", 409)
    clock.advance(aws.settings.s3_conflict_window)
    assert refusal(s3.put_object, Bucket="state", Key="k", Body=b"x", IfMatch=etag) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="state", Key="k")["Body"].read() == b"2"


def test_if_match_takes_the_etag_only_as_s3_returned_it(s3, clock, aws):
    """Row T2."""
    etag = s3.put_object(Bucket="state", Key="k", Body=b"1")["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    clock.advance(aws.settings.s3_conflict_window)
    for call, params in ((s3.put_object, {"Body": b"x"}), (s3.delete_object, {})):
        assert refusal(call, Bucket="state", Key="k", IfMatch=etag.strip('"'), **params) == ("PreconditionFailed", 412)
    assert s3.put_object(Bucket="state", Key="k", Body=b"2", IfMatch=etag)["ETag"] != etag


def test_versions_come_two_a_page_in_no_promised_order(s3):
    """Row T3."""
    for n in range(5):
        s3.put_object(Bucket="state", Key="k", Body=str(n).encode())
    first = s3.list_object_versions(Bucket="state", Prefix="k")
    assert first["IsTruncated"] and len(first["Versions"]) == 2
    assert [v["IsLatest"] for v in first["Versions"]] == [False, True]  # oldest first within the page
    pages = s3.get_paginator("list_object_versions").paginate(Bucket="state", Prefix="k")
    assert sum(len(page.get("Versions", [])) for page in pages) == 5


def test_a_bucket_of_another_account_refuses_every_call(aws):
    """Row T4."""
    from moto.s3.models import s3_backends

    s3_backends["210987654321"]["aws"].create_bucket("theirs", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    assert refusal(s3.put_object, Bucket="theirs", Key="k", Body=b"x") == ("AccessDenied", 403)
    assert refusal(s3.list_object_versions, Bucket="theirs")[0] == "AccessDenied"
    assert refusal(s3.head_bucket, Bucket="theirs")[1] == 403


def test_a_tls_only_bucket_policy_lets_tls_requests_through(s3):
    """moto denies a request whenever a statement's condition does not hold; IAM does not."""
    import json

    from taskmgmt_deploy.stack.config import S3Url
    from taskmgmt_deploy.usecases.state import tls_only_policy

    policy = tls_only_policy(S3Url("state"), "arn:aws:iam::123456789012:user/me")
    s3.put_bucket_policy(Bucket="state", Policy=json.dumps(policy))
    assert s3.put_object(Bucket="state", Key="k", Body=b"x")["ETag"]
