"""The manifest and lock in S3 (TASKMGMT_STATE=s3://...): every command works as with the local
state, writes are conditional, and what a user gets wrong is one line, exit 2, nothing overwritten."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.deploy.inventory import empty, expected, inventory

BUCKET = "team-state"
STATE = f"s3://{BUCKET}/taskmgmt"
KEY = "taskmgmt/dev.json"


def s3():
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def bucket(aws, runtime, cli, monkeypatch):
    done = cli("state", "init", STATE)
    assert done.code == 0, done.err
    monkeypatch.setenv("TASKMGMT_STATE", STATE)
    return done


def test_every_command_works_with_the_state_in_s3(aws, runtime, cli, calls, bucket, tmp_path):
    deployed = cli("deploy", "--yes")
    assert deployed.code == 0, deployed.err
    assert inventory() == expected()
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()  # nothing local
    recorded = json.loads(s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert {r["state"] for r in recorded["resources"]} == {"ready"}
    calls.clear()
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    s3_calls = [op for service, op in calls.calls if service == "s3"]
    assert s3_calls == ["PutObject", "GetObject", "DeleteObject"]  # lock, read, release: no write
    for args in (("deploy", "--plan"), ("status",), ("outputs", "--json"), ("logs",)):
        result = cli(*args)
        assert result.code == 0, (args, result.err)
    rebuilt = cli("status", "--rebuild")
    assert rebuilt.code == 0, rebuilt.err
    destroyed = cli("destroy", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert inventory() == empty()
    history = cli("state", "history", "--json")
    assert history.code == 0, history.err
    versions = json.loads(history.out)
    assert versions[0]["size"] is None and versions[0]["latest"]  # destroy deleted the state
    assert len(versions) > 3
