"""`taskmgmt preflight`: what would make a first deploy fail late, found in seconds by reading
only; one line per check, exit 0 only if all pass; deploy runs it first and creates nothing
when a check fails."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskmgmt_deploy.emulator.fidelity import FidelitySettings
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import load_settings
from taskmgmt_deploy.stack.policy import deployer_policy
from tests.conftest import READ_PREFIXES
from tests.deploy.inventory import empty, inventory

ACCOUNT = "123456789012"
CHECKS = [
    "credentials",
    "regions",
    "region us-east-1",
    "region us-west-2",
    "region us-east-2",
    "DSQL quota us-east-1",
    "DSQL quota us-west-2",
    "Lambda us-east-1",
    "Lambda us-west-2",
    "permissions",
]


def lines(result: Any) -> dict[str, str]:
    """check name -> outcome, from the one line each check prints."""
    found = {}
    for line in result.out.strip().splitlines():
        outcome, text = line.split(None, 1)
        found[text.split(":", 1)[0]] = outcome
    return found


def act_as_user(monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any]) -> str:
    """The CI user with `policy` inline; its keys become the tool's credentials."""
    iam = boto3.client("iam", region_name="us-east-1")
    arn = iam.create_user(UserName="ci")["User"]["Arn"]
    iam.put_user_policy(UserName="ci", PolicyName="deploy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    return str(arn)


def the_policy(*without: str) -> dict[str, Any]:
    policy = deployer_policy(load_settings({}, {}, Path.cwd()).stack, ACCOUNT)
    return {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] not in without]}


def test_all_checks_pass_one_line_each_and_read_only(aws, runtime, cli, calls, monkeypatch):
    user = act_as_user(monkeypatch, the_policy())
    result = cli("preflight")
    assert result.code == 0, result.out + result.err
    assert list(lines(result)) == CHECKS
    assert set(lines(result).values()) == {"ok"}
    assert f"allowed for {user}" in result.out
    assert calls.mutating() == []
    report = json.loads(cli("preflight", "--json").out)
    assert report["ok"] is True and [c["name"] for c in report["checks"]] == CHECKS


def test_denied_actions_are_listed(aws, runtime, cli, monkeypatch):
    act_as_user(monkeypatch, the_policy("ManageTheAlarmTopics", "PassTheFunctionRoleToLambdaOnly"))
    result = cli("preflight")
    assert result.code == 1
    assert lines(result)["permissions"] == "FAIL"
    denied = next(line for line in result.out.splitlines() if "permissions:" in line)
    assert "iam:PassRole" in denied and "sns:CreateTopic" in denied and "lambda:CreateFunction" not in denied


def test_a_caller_that_may_not_simulate_is_skipped_not_failed(aws, runtime, cli, monkeypatch):
    act_as_user(monkeypatch, the_policy("PreflightSimulatesTheCaller"))
    result = cli("preflight")
    assert result.code == 0, result.out
    assert lines(result)["permissions"] == "skip"


@pytest.fixture
def fidelity_settings():
    return FidelitySettings(dsql_multi_region_clusters=2, lambda_concurrency=1000)


@pytest.mark.parametrize(
    ("setup", "args", "failed", "why"),
    [
        ("disable-witness", (), "region us-east-2", "DISABLED for this account"),
        ("quota-used", (), "DSQL quota us-east-1", "2 of 2 multi-Region clusters used"),
        ("none", ("--reserved-concurrency", "950"), "Lambda us-west-2", "Lambda keeps at least 100"),
        ("none", ("--kms-key", "alias/missing"), "KMS key us-east-1", "does not exist in us-east-1"),
        ("key-for-nobody", ("--kms-key", "alias/taskmgmt"), "KMS key us-west-2", "cloudwatch.amazonaws.com"),
    ],
)
def test_each_failure_is_named_and_exits_1(aws, runtime, cli, clock, setup, args, failed, why):
    if setup == "disable-witness":
        aws.account.region_status["us-east-2"] = "DISABLED"
    elif setup == "quota-used":
        east = boto3.client("dsql", region_name="us-east-1")
        for _ in range(2):
            east.create_cluster(deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"})
        clock.advance(aws.settings.dsql_listing)  # listed only a while after they were made (row D15)
    elif setup == "key-for-nobody":
        for region in ("us-east-1", "us-west-2"):
            kms = boto3.client("kms", region_name=region)
            kms.create_alias(AliasName="alias/taskmgmt", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    result = cli("preflight", *args)
    assert result.code == 1
    assert lines(result)[failed] == "FAIL"
    line = next(line for line in result.out.splitlines() if f"{failed}:" in line)
    assert why in line


def test_deploy_stops_before_creating_anything_and_skip_preflight_goes_on(aws, runtime, cli, calls, tmp_path):
    aws.account.region_status["us-east-2"] = "DISABLED"
    stopped = cli("deploy", "--yes")
    assert stopped.code != 0
    assert "preflight failed (region us-east-2): nothing was created" in stopped.err
    assert [line for line in stopped.err.splitlines() if line.startswith("error:")] == [  # one error line...
        "error: preflight failed (region us-east-2): nothing was created; "
        "fix it, or pass --skip-preflight to deploy anyway"
    ]
    assert "FAIL  region us-east-2" in stopped.err and stopped.out == ""  # ...after the checks, on stderr
    assert calls.mutating() == []
    assert inventory() == empty() and not (tmp_path / ".taskmgmt" / "dev.json").exists()

    calls.clear()
    skipped = cli("deploy", "--yes", "--skip-preflight")
    assert skipped.code == 0, skipped.err
    assert calls.count("GetRegionOptStatus") == 0 and calls.count("SimulatePrincipalPolicy") == 0


def test_the_checks_read_in_parallel(aws, runtime, cli, monkeypatch):
    """After the identity, the first call of every check is in flight at once: eight calls wait
    at a barrier that opens only when all eight arrive (one at a time, it would break)."""
    act_as_user(monkeypatch, the_policy())
    barrier = threading.Barrier(8, timeout=30)
    seen: list[str] = []
    lock = threading.Lock()
    made = runtime.session_factory

    def first_calls(event_name: str, **_: Any) -> None:
        operation = event_name.split(".")[2]
        assert operation.startswith(READ_PREFIXES), operation
        with lock:
            seen.append(operation)
            index = len(seen)
        if 2 <= index <= 9:  # after GetCallerIdentity
            barrier.wait()

    def session(settings: Any) -> Any:
        created = made(settings)
        created.events.register("before-call", first_calls)
        return created

    runtime.session_factory = session
    result = cli("preflight")
    assert result.code == 0, result.out + result.err
    assert seen[0] == "GetCallerIdentity" and not barrier.broken
    assert sorted(seen[1:9]) == sorted(
        ["GetRegionOptStatus"] * 3 + ["ListClusters"] * 2 + ["GetAccountSettings"] * 2 + ["SimulatePrincipalPolicy"]
    )


def test_no_credentials_is_one_line_and_exit_2(cli, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = cli("preflight")
    assert result.code == 2 and result.out == ""
    assert len(result.err.strip().splitlines()) == 1 and "no AWS credentials found" in result.err


def test_the_stacks_own_cluster_does_not_count_against_the_quota_even_when_get_cluster_omits_tags(
    aws, runtime, cli, clock, tmp_path
):
    """GetCluster may answer without `tags` (row D23): the check asks ListTagsForResource."""
    stack = load_settings({}, {}, tmp_path).stack
    east = boto3.client("dsql", region_name="us-east-1")
    tags = {**stack.tags(), "taskmgmt:key": blueprint.cluster_key(stack, "us-east-1")}
    ours = east.create_cluster(
        deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"}, tags=tags
    )
    east.create_cluster(deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"})
    clock.advance(aws.settings.dsql_listing)
    assert "tags" not in east.get_cluster(identifier=ours["identifier"])
    line = next(line for line in cli("preflight").out.splitlines() if "DSQL quota us-east-1:" in line)
    assert "1 of 2 multi-Region clusters used" in line and "needs 0 more" in line, line
