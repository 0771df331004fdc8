"""The production guard rails on a deployed stack: alarms reach a person through each region's
topic, the database is watched, the hardening options are applied, drift-checked and removed,
and destroy leaves none of it behind."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from taskmgmt_deploy.stack.alarms import DSQL_DIMENSIONS, DSQL_NAMESPACE
from taskmgmt_deploy.steps.dsql_policy import cluster_policy
from taskmgmt_deploy.steps.sns import alarm_topic_policy
from tests.deploy.inventory import REGIONS, empty, expected, inventory

STACK = "task-mgmt-dev"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-task-processor-role"
HARDENING = ("--kms-key", "alias/taskmgmt", "--reserved-concurrency", "5", "--cluster-policy")


def topic(region: str) -> str:
    return f"arn:aws:sns:{region}:{ACCOUNT}:{STACK}-alarms"


def customer_key(region: str, alias: str = "alias/taskmgmt", **client: Any) -> str:
    """A customer managed key whose policy lets CloudWatch (alarms to an encrypted topic) and
    CloudWatch Logs (an encrypted log group) use it; `client` reaches an emulator server."""
    kms = boto3.client("kms", region_name=region, **client)
    services = ["cloudwatch.amazonaws.com", f"logs.{region}.amazonaws.com"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {"Effect": "Allow", "Principal": {"Service": services}, "Action": "kms:*", "Resource": "*"},
        ],
    }
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


@pytest.fixture
def keys(aws) -> dict[str, str]:
    return {region: customer_key(region) for region in REGIONS}


def statuses(cli: Any, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = cli("status", "--json", *args)
    report = json.loads(result.out)
    return result.code, {r["key"]: r for r in report["resources"]}


def fire(region: str, alarm: str) -> None:
    boto3.client("cloudwatch", region_name=region).set_alarm_state(
        AlarmName=alarm, StateValue="ALARM", StateReason="test"
    )


def test_every_alarm_notifies_its_regions_topic_and_status_says_who_hears_it(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    for region in REGIONS:
        sns = boto3.client("sns", region_name=region)
        attributes = sns.get_topic_attributes(TopicArn=topic(region))["Attributes"]
        assert json.loads(attributes["Policy"]) == alarm_topic_policy(topic(region))
        assert "KmsMasterKeyId" not in attributes  # never alias/aws/sns: it would silence every alarm
        alarms = boto3.client("cloudwatch", region_name=region).describe_alarms()["MetricAlarms"]
        assert len(alarms) == 10  # the function (3), the delivery path (3), the broadcast DLQ, the cluster (3)
        for alarm in alarms:
            assert alarm["AlarmActions"] == alarm["OKActions"] == [topic(region)], alarm["AlarmName"]
    code, found = statuses(cli)
    assert code == 0
    assert {found[f"sns_topic:alarms@{r}"]["state"] for r in REGIONS} == {"no subscribers: alarms notify nobody"}

    fire("us-west-2", f"{STACK}-task-processor-errors")
    (heard,) = aws.notifications
    assert heard.topic_arn == topic("us-west-2") and heard.delivered_to == () and heard.dropped is None


def test_the_alarm_email_is_pending_until_confirmed_and_a_new_one_replaces_it(aws, runtime, cli):
    assert cli("deploy", "--yes", "--alarm-email", "ops@example.com").code == 0
    assert inventory() == expected(email="ops@example.com")
    code, found = statuses(cli)
    assert code == 0
    assert {found[f"sns_subscription:alarm-email@{r}"]["state"] for r in REGIONS} == {"pending confirmation"}
    assert found["sns_topic:alarms@us-east-1"]["state"] == "0 confirmed, 1 pending confirmation"
    fire("us-east-1", f"{STACK}-primary-occ-conflicts")
    assert aws.notifications[-1].delivered_to == ()  # AWS sends nothing to an unconfirmed address

    assert aws.sns.confirm("ops@example.com") == 2
    _, found = statuses(cli)
    assert found["sns_subscription:alarm-email@us-east-1"]["state"] == "confirmed"
    fire("us-east-1", f"{STACK}-primary-commit-latency")
    assert aws.notifications[-1].delivered_to == ("ops@example.com",)

    changed = cli("deploy", "--yes", "--alarm-email", "oncall@example.com")
    assert changed.code == 0, changed.err
    assert inventory() == expected(email="oncall@example.com")
    assert cli("deploy", "--yes").code == 0  # unset: the subscriptions go, the topics stay
    assert inventory() == expected()


def test_each_cluster_and_the_function_are_watched_with_the_dashboards_thresholds(aws, runtime, cli):
    """Rows M1 and M2 of docs/pessimistic-emulation.md: the metric names and dimensions."""
    assert cli("deploy", "--yes", "--lambda-timeout", "30").code == 0
    widgets = json.loads(
        boto3.client("cloudwatch", region_name="us-east-1").get_dashboard(DashboardName=f"{STACK}-dashboard")[
            "DashboardBody"
        ]
    )["widgets"]
    drawn = json.dumps(widgets)
    for region, side in zip(REGIONS, ("primary", "secondary"), strict=True):
        cluster = next(c["identifier"] for c in boto3.client("dsql", region_name=region).list_clusters()["clusters"])
        cloudwatch = boto3.client("cloudwatch", region_name=region)
        for metric, threshold in (("OccConflicts", 30), ("CommitLatency", 250), ("QueryTimeouts", 0)):
            name = f"{STACK}-{side}-" + {"OccConflicts": "occ-conflicts", "CommitLatency": "commit-latency"}.get(
                metric, "query-timeouts"
            )
            (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
            assert alarm["Threshold"] == threshold
            reads = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
            assert {(r["Namespace"], r["MetricName"]) for r in reads} == {(DSQL_NAMESPACE, metric)}
            assert sorted(r["Dimensions"][0]["Name"] for r in reads) == sorted(DSQL_DIMENSIONS)
            assert {r["Dimensions"][0]["Value"] for r in reads} == {cluster}
            assert metric in drawn and cluster in drawn
        (duration,) = cloudwatch.describe_alarms(AlarmNames=[f"{STACK}-task-processor-duration"])["MetricAlarms"]
        assert duration["ExtendedStatistic"] == "p99" and duration["Threshold"] == 24000.0  # 80% of 30 s
        # each API is drawn by its ApiId, in its own region
        apis = {
            a["ProtocolType"]: a["ApiId"] for a in boto3.client("apigatewayv2", region_name=region).get_apis()["Items"]
        }
        metrics = [m[:4] for w in widgets if w["properties"]["region"] == region for m in w["properties"]["metrics"]]
        for protocol, names in (("HTTP", ("Count", "5xx", "Latency")), ("WEBSOCKET", ("ConnectCount", "MessageCount"))):
            for name in names:
                assert ["AWS/ApiGateway", name, "ApiId", apis[protocol]] in metrics, (protocol, name)
    assert "24000" in drawn


def test_hardening_options_are_applied_drift_checked_and_removed(aws, runtime, cli, clock, keys):
    deployed = cli("deploy", "--yes", *HARDENING)
    assert deployed.code == 0, deployed.err
    assert inventory() == expected(cluster_policy=True, reserved=5)
    for region in REGIONS:
        dsql = boto3.client("dsql", region_name=region)
        (summary,) = dsql.list_clusters()["clusters"]
        cluster = dsql.get_cluster(identifier=summary["identifier"])
        assert cluster["encryptionDetails"]["kmsKeyArn"] == keys[region]
        policy = json.loads(dsql.get_cluster_policy(identifier=summary["identifier"])["policy"])
        assert policy == cluster_policy(cluster["arn"], ROLE)
        attributes = boto3.client("sns", region_name=region).get_topic_attributes(TopicArn=topic(region))
        assert attributes["Attributes"]["KmsMasterKeyId"] == keys[region]
        (group,) = boto3.client("logs", region_name=region).describe_log_groups()["logGroups"]
        assert group["kmsKeyId"] == keys[region]
    assert statuses(cli)[0] == 0

    # Changed by hand: status names each, exit 1; a deploy puts them back.
    lam = boto3.client("lambda", region_name="us-west-2")
    lam.put_function_concurrency(FunctionName=f"{STACK}-task-processor", ReservedConcurrentExecutions=9)
    east = boto3.client("dsql", region_name="us-east-1")
    east.delete_cluster_policy(identifier=east.list_clusters()["clusters"][0]["identifier"])
    west = boto3.client("dsql", region_name="us-west-2")
    (cluster,) = west.list_clusters()["clusters"]
    widened = cluster_policy(cluster["arn"], f"arn:aws:iam::{ACCOUNT}:role/someone-else")
    west.put_cluster_policy(identifier=cluster["identifier"], policy=json.dumps(widened))
    code, found = statuses(cli)
    assert code == 1
    drifted = {k for k, r in found.items() if r["health"] != "ok"}
    assert drifted == {
        "lambda_concurrency:task-processor@us-west-2",
        "dsql_cluster_policy:primary@us-east-1",
        "dsql_cluster_policy:secondary@us-west-2",
    }
    aws.dsql.requests.clear()
    assert cli("deploy", "--yes", *HARDENING).code == 0
    assert inventory() == expected(cluster_policy=True, reserved=5)
    puts = [(r.region, r.change) for r in aws.dsql.requests if r.operation == "PutClusterPolicy" and r.error is None]
    # the changed policy is replaced naming the version read (expectedPolicyVersion); the deleted one is put anew
    assert sorted(puts) == [("us-east-1", ""), ("us-west-2", "expectedPolicyVersion")]
    assert json.loads(west.get_cluster_policy(identifier=cluster["identifier"])["policy"]) == cluster_policy(
        cluster["arn"], ROLE
    )

    # Turned off: what the options added goes; the clusters keep the key they were created with.
    assert cli("deploy", "--yes", "--kms-key", "alias/taskmgmt").code == 0
    assert inventory() == expected()
    assert cli("destroy", "--yes").code == 0
    assert inventory() == empty()


def test_destroy_removes_subscriptions_cluster_policies_and_reservations(aws, runtime, cli, keys):
    deployed = cli("deploy", "--yes", "--alarm-email", "ops@example.com", *HARDENING)
    # 73 resources (tests/deploy/test_crash.py kills a deploy after each); the keys are only read
    assert "reading 73 resources" in deployed.err and "created 71, updated 0, unchanged 2" in deployed.err
    aws.sns.confirm("ops@example.com")
    destroyed = cli("destroy", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert inventory() == empty()
    for region in REGIONS:  # the customer's keys are theirs: never scheduled for deletion
        meta = boto3.client("kms", region_name=region).describe_key(KeyId=keys[region])["KeyMetadata"]
        assert meta["KeyState"] == "Enabled"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--alarm-email", "not-an-address", "--alarm-email 'not-an-address' is invalid"),
        ("--kms-key", "alias/aws/sns", "AWS managed key"),
        ("--kms-key", "1234abcd-12ab-34cd-56ef-1234567890ab", "multi-Region key id"),
        ("--reserved-concurrency", "0", "--reserved-concurrency '0' is invalid"),
        ("--reserved-concurrency", "many", "--reserved-concurrency 'many' is invalid"),
    ],
)
@pytest.mark.parametrize("command", ["deploy", "preflight", "policy"])
def test_a_bad_option_value_is_one_line_and_exit_2(cli, command, flag, value, message):
    result = cli(command, flag, value)
    assert result.code == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err


def test_a_bad_cluster_policy_setting_is_one_line_and_exit_2(cli, monkeypatch):
    monkeypatch.setenv("DSQL_CLUSTER_POLICY", "maybe")
    result = cli("deploy", "--plan")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "DSQL_CLUSTER_POLICY='maybe' (from the environment)" in result.err
    assert "DSQL_CLUSTER_POLICY" in result.err and "true or false" in result.err
