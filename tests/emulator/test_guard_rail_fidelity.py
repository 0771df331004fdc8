"""The emulator's SNS, KMS, CloudWatch alarm actions, DSQL keys, policies and quota, Lambda
concurrency, IAM simulation, Logs keys and account answers behave as AWS documents them.

Each test names the row of docs/pessimistic-emulation.md it proves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
CLOUDWATCH = "cloudwatch.amazonaws.com"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def key_policy(*services: str) -> str:
    statements = [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*"}
    ]
    statements += [
        {"Effect": "Allow", "Principal": {"Service": s}, "Action": ["kms:*"], "Resource": "*"} for s in services
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Resource": "*", **s} for s in statements]})


def customer_key(region: str = "us-east-1", *services: str) -> str:
    return boto3.client("kms", region_name=region).create_key(Policy=key_policy(*services))["KeyMetadata"]["Arn"]


def topic_for_alarms(region: str = "us-east-1", policy: dict | None = None, **attributes: str) -> str:
    sns = boto3.client("sns", region_name=region)
    arn = sns.create_topic(Name="alarms", Attributes=attributes)["TopicArn"]
    if policy is None:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": CLOUDWATCH},
                    "Action": "sns:Publish",
                    "Resource": arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:*"}},
                }
            ],
        }
    sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    return arn


def alarm_on(topic: str, name: str = "errors", region: str = "us-east-1", **metric) -> None:
    fields = metric or {
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": "fn"}],
        "Statistic": "Sum",
        "Period": 300,
    }
    boto3.client("cloudwatch", region_name=region).put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[topic],
        OKActions=[topic],
        **fields,
    )


def fire(name: str = "errors", state: str = "ALARM") -> None:
    boto3.client("cloudwatch", region_name="us-east-1").set_alarm_state(
        AlarmName=name, StateValue=state, StateReason="test"
    )


# -- SNS and alarm notifications (rows N...) ---------------------------------------------


def test_an_email_subscription_is_pending_until_confirmed_and_gets_nothing_meanwhile(aws):
    """Row N1."""
    topic = topic_for_alarms()
    sns = boto3.client("sns", region_name="us-east-1")
    arn = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com", ReturnSubscriptionArn=True)[
        "SubscriptionArn"
    ]
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]
    assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"] == "true"
    alarm_on(topic)
    fire()
    assert [(n.delivered_to, n.dropped) for n in aws.notifications] == [((), None)]
    assert aws.sns.confirm("ops@example.com") == 1
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"][0]["SubscriptionArn"] == arn
    fire(state="OK")
    assert aws.notifications[-1].delivered_to == ("ops@example.com",)
    assert aws.notifications[-1].state == "OK"
    sns.unsubscribe(SubscriptionArn=arn)  # a pending or confirmed subscription is removed by its ARN
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_alarms_cannot_publish_to_a_topic_encrypted_with_the_aws_managed_key(aws):
    """Row N2."""
    topic = topic_for_alarms(KmsMasterKeyId="alias/aws/sns")
    alarm_on(topic)
    fire()
    (notification,) = aws.notifications
    assert notification.delivered_to == () and "AWS managed key" in str(notification.dropped)


@pytest.mark.parametrize("trouble", ["policy", "disabled"])
def test_alarms_reach_an_encrypted_topic_only_if_cloudwatch_may_use_its_key(aws, trouble):
    """Row N3."""
    kms = boto3.client("kms", region_name="us-east-1")
    usable = customer_key("us-east-1", CLOUDWATCH)
    unusable = customer_key("us-east-1") if trouble == "policy" else customer_key("us-east-1", CLOUDWATCH)
    if trouble == "disabled":
        kms.disable_key(KeyId=unusable.rsplit("/", 1)[-1])  # moto takes only the id here
    topic = topic_for_alarms(KmsMasterKeyId=usable)
    alarm_on(topic)
    fire()
    boto3.client("sns", region_name="us-east-1").set_topic_attributes(
        TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue=unusable
    )
    fire(state="OK")
    delivered, dropped = aws.notifications
    assert delivered.dropped is None
    assert ("policy" in str(dropped.dropped)) if trouble == "policy" else ("Disabled" in str(dropped.dropped))


@pytest.mark.parametrize(
    "statement",
    [
        {"Principal": {"AWS": "*"}, "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}},
        {
            "Principal": {"Service": CLOUDWATCH},
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:*:alarm:other-*"}},
        },
    ],
    ids=["any-aws-principal", "another-alarm"],
)
def test_alarms_reach_a_topic_only_if_its_policy_lets_cloudwatch_publish_for_them(aws, statement):
    """Row N4: an AWS principal "*" is not read as the CloudWatch service."""
    sns = boto3.client("sns", region_name="us-east-1")
    arn = sns.create_topic(Name="alarms")["TopicArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": arn, **statement}],
    }
    topic_for_alarms(policy=policy)
    alarm_on(arn)
    fire()
    assert "policy" in str(aws.notifications[0].dropped)


# -- CloudWatch alarms (rows C...) ---------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    ["arn:aws:sns:us-west-2:123456789012:alarms", "arn:aws:sns:us-east-1:999999999999:alarms", "not-an-arn"],
    ids=["other-region", "other-account", "not-an-arn"],
)
def test_alarm_actions_are_topics_of_the_alarms_own_account_and_region(aws, action):
    """Row C10."""
    with pytest.raises(ClientError) as exc:
        alarm_on(action)
    assert code(exc) == "ValidationError"


def dsql_reads(*names: str, expression: str = "MAX([a, b])", **extra) -> list[dict]:
    reads = [
        {
            "Id": id_,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/AuroraDSQL",
                    "MetricName": "OccConflicts",
                    "Dimensions": [{"Name": n, "Value": "c1"}],
                },
                "Period": 300,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }
        for id_, n in zip("ab", names, strict=True)
    ]
    return [*reads, {"Id": "value", "Expression": expression, "ReturnData": True, **extra}]


@pytest.mark.parametrize(
    "wrong",
    [
        {"Metrics": dsql_reads("ResourceId", "ClusterId", expression="SEARCH('OccConflicts', 'Sum', 300)")},
        {"Metrics": dsql_reads("ResourceId", "ClusterId", expression="MAX([a, c])")},
        {"Metrics": [{**q, "ReturnData": True} for q in dsql_reads("ResourceId", "ClusterId")]},
        {"Metrics": dsql_reads("ResourceId", "ClusterId"), "Namespace": "AWS/AuroraDSQL"},
        {
            "Namespace": "AWS/Lambda",
            "MetricName": "Duration",
            "Period": 300,
            "Statistic": "Sum",
            "ExtendedStatistic": "p99",
        },
        {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Period": 300, "ExtendedStatistic": "p100.5"},
        {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Period": 45, "Statistic": "Sum"},
    ],
    ids=[
        "search",
        "unknown-id",
        "two-returned",
        "metric-beside-metrics",
        "both-statistics",
        "bad-percentile",
        "period",
    ],
)
def test_metric_math_and_percentile_alarms_are_validated(aws, wrong):
    """Row C11."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    good = {"AlarmName": "ok", "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold"}
    cloudwatch.put_metric_alarm(**good, Metrics=dsql_reads("ResourceId", "ClusterId"))
    cloudwatch.put_metric_alarm(
        **good, Namespace="AWS/Lambda", MetricName="Duration", Period=300, ExtendedStatistic="p99"
    )
    with pytest.raises(ClientError) as exc:
        cloudwatch.put_metric_alarm(**{**good, "AlarmName": "bad"}, **wrong)
    assert code(exc) == "ValidationError"


def test_a_new_alarm_has_insufficient_data_and_an_updated_one_keeps_its_state(aws):
    """Row C12."""
    topic = topic_for_alarms()
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    alarm_on(topic)
    assert cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"
    fire()
    alarm_on(topic)  # the same alarm, put again
    assert cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["StateValue"] == "ALARM"


def test_evaluating_metric_data_changes_states_and_runs_the_actions(aws):
    """Row C13: M of N periods, TreatMissingData, a percentile, and MAX([...]) over two reads;
    the DSQL metric found under either dimension name (M1) and Lambda's p99 Duration (M2)."""
    topic = topic_for_alarms()
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    now = datetime.now(UTC).replace(microsecond=0)
    alarm_on(
        topic,
        "slow",
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=[{"Name": "FunctionName", "Value": "fn"}],
        ExtendedStatistic="p99",
        Period=60,
    )
    cloudwatch.put_metric_alarm(
        AlarmName="occ",
        Metrics=[
            {**q, "MetricStat": {**q["MetricStat"], "Period": 60}} if "MetricStat" in q else q
            for q in dsql_reads("ResourceId", "ClusterId")
        ],
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
    )
    durations = [
        {
            "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": "fn"}],
            "Value": v,
            "Timestamp": now - timedelta(seconds=10),
        }
        for v in [10] * 98 + [900, 900]
    ]
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=durations)
    conflicts = [
        {
            "MetricName": "OccConflicts",
            "Dimensions": [{"Name": "ClusterId", "Value": "c1"}],
            "Value": 20,
            "Timestamp": now - timedelta(seconds=s),
        }
        for s in (10, 70)
    ]
    cloudwatch.put_metric_data(Namespace="AWS/AuroraDSQL", MetricData=conflicts[:1])
    assert sorted(aws.cloudwatch.evaluate(now)) == [("occ", "OK"), ("slow", "ALARM")]  # one breaching period of two
    cloudwatch.put_metric_data(Namespace="AWS/AuroraDSQL", MetricData=conflicts[1:])
    assert aws.cloudwatch.evaluate(now) == [("occ", "ALARM")]
    assert [(n.alarm_name, n.state) for n in aws.notifications] == [("slow", "ALARM"), ("occ", "ALARM")]


def test_an_alarm_reads_its_metric_under_its_own_dimension_and_a_percentile_is_not_the_maximum(aws):
    """Rows M1 and M2: data put under the other dimension name is not the alarm's (an alarm on the
    wrong name stays silent), and p99 over 100 durations is not moved by one slow invocation."""
    topic = topic_for_alarms()
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    now = datetime.now(UTC).replace(microsecond=0)
    common = {"Period": 60, "TreatMissingData": "notBreaching"}
    alarm_on(
        topic,
        "occ-by-resource-id",
        Namespace="AWS/AuroraDSQL",
        MetricName="OccConflicts",
        Dimensions=[{"Name": "ResourceId", "Value": "c1"}],
        Statistic="Sum",
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName="slow",
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=[{"Name": "FunctionName", "Value": "fn"}],
        ExtendedStatistic="p99",
        EvaluationPeriods=1,
        Threshold=500,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[topic],
        **common,
    )
    when = now - timedelta(seconds=10)
    cloudwatch.put_metric_data(
        Namespace="AWS/AuroraDSQL",
        MetricData=[
            {
                "MetricName": "OccConflicts",
                "Dimensions": [{"Name": "ClusterId", "Value": "c1"}],
                "Value": 20,
                "Timestamp": when,
            }
        ],
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Duration",
                "Dimensions": [{"Name": "FunctionName", "Value": "fn"}],
                "Value": v,
                "Timestamp": when,
            }
            for v in [10] * 99 + [900]
        ],
    )
    assert sorted(aws.cloudwatch.evaluate(now)) == [("occ-by-resource-id", "OK"), ("slow", "OK")]


# -- KMS and keys given to other services (rows K..., G2) -----------------------------------


def test_a_predefined_alias_names_an_aws_managed_key(aws):
    """Row K1."""
    kms = boto3.client("kms", region_name="us-west-2")
    for alias in ("alias/aws/sns", "alias/aws/lambda"):
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
        assert meta["KeyManager"] == "AWS" and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.describe_key(KeyId=customer_key("us-west-2"))["KeyMetadata"]["KeyManager"] == "CUSTOMER"


def test_dsql_takes_only_a_usable_customer_key_of_its_region_and_reports_its_arn(aws):
    """Row K2."""
    dsql = boto3.client("dsql", region_name="us-east-1")
    kms = boto3.client("kms", region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/db", TargetKeyId=key["KeyId"])
    for wrong in ("alias/aws/sns", customer_key("us-west-2"), "alias/missing"):
        with pytest.raises(ClientError) as exc:
            dsql.create_cluster(kmsEncryptionKey=wrong, deletionProtectionEnabled=False)
        assert code(exc) == "ValidationException", wrong
    cluster = dsql.create_cluster(kmsEncryptionKey="alias/db", deletionProtectionEnabled=False)
    details = dsql.get_cluster(identifier=cluster["identifier"])["encryptionDetails"]
    assert details["kmsKeyArn"] == key["Arn"] and details["encryptionType"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert {(a.action, a.via) for a in aws.authorizations} == {
        (action, "dsql.us-east-1.amazonaws.com")
        for action in ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")
    }


def test_a_log_group_takes_a_key_by_arn_whose_policy_lets_logs_use_it(aws):
    """Row G10."""
    logs = boto3.client("logs", region_name="us-east-1")
    usable = customer_key("us-east-1", "logs.us-east-1.amazonaws.com")
    for wrong in (
        "alias/aws/logs",
        customer_key("us-east-1"),
        customer_key("us-east-1", "logs.us-west-2.amazonaws.com"),
    ):
        with pytest.raises(ClientError) as exc:
            logs.create_log_group(logGroupName="g", kmsKeyId=wrong)
        assert code(exc) == "InvalidParameterException"
    logs.create_log_group(logGroupName="g")
    with pytest.raises(ClientError):
        logs.associate_kms_key(logGroupName="g", kmsKeyId=customer_key("us-east-1"))
    logs.associate_kms_key(logGroupName="g", kmsKeyId=usable)
    assert logs.describe_log_groups()["logGroups"][0]["kmsKeyId"] == usable


# -- DSQL cluster policies and quota (rows D...) ------------------------------------------


def peered_pair(aws, clock) -> tuple[dict, dict]:
    east, west = boto3.client("dsql", region_name="us-east-1"), boto3.client("dsql", region_name="us-west-2")
    first = east.create_cluster(deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"})
    second = west.create_cluster(
        deletionProtectionEnabled=False,
        multiRegionProperties={"witnessRegion": "us-east-2", "clusters": [first["arn"]]},
    )
    return first, second


def connect_policy(arn: str, **extra) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"},
                    "Action": "dsql:DbConnect",
                    "Resource": arn,
                    **extra,
                }
            ],
        }
    )


def test_a_cluster_policy_is_refused_until_the_cluster_is_active(aws, clock):
    """Row D20."""
    first, second = peered_pair(aws, clock)
    east = boto3.client("dsql", region_name="us-east-1")
    with pytest.raises(ClientError) as exc:  # PENDING_SETUP until peered
        east.put_cluster_policy(identifier=first["identifier"], policy=connect_policy(first["arn"]))
    assert code(exc) == "ConflictException"
    east.update_cluster(
        identifier=first["identifier"],
        multiRegionProperties={"witnessRegion": "us-east-2", "clusters": [second["arn"]]},
    )
    with pytest.raises(ClientError) as exc:  # CREATING
        east.put_cluster_policy(identifier=first["identifier"], policy=connect_policy(first["arn"]))
    assert code(exc) == "ConflictException"
    clock.advance(aws.settings.dsql_activation)
    version = east.put_cluster_policy(identifier=first["identifier"], policy=connect_policy(first["arn"]))[
        "policyVersion"
    ]
    with pytest.raises(ClientError) as exc:  # moto: a stale expected version is a conflict
        east.put_cluster_policy(
            identifier=first["identifier"], policy=connect_policy(first["arn"]), expectedPolicyVersion="stale"
        )
    assert code(exc) == "ConflictException"
    east.put_cluster_policy(
        identifier=first["identifier"], policy=connect_policy(first["arn"]), expectedPolicyVersion=version
    )
    assert [r.change for r in aws.dsql.requests if r.operation == "PutClusterPolicy" and r.error is None] == [
        "",
        "expectedPolicyVersion",
    ]


@pytest.mark.parametrize(
    "policy",
    [
        "not json",
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "dsql:DbConnect"}]}),
        "{ARN_ACTION}",
        "{ARN_RESOURCE}",
        "{LOCKOUT}",
        "{LONG}",
    ],
    ids=["not-json", "no-version", "other-service", "other-resource", "lockout", "too-long"],
)
def test_a_cluster_policy_is_validated(aws, clock, policy):
    """Row D21."""
    dsql = boto3.client("dsql", region_name="us-east-1")
    cluster = dsql.create_cluster(deletionProtectionEnabled=False)
    clock.advance(aws.settings.dsql_activation)
    arn = cluster["arn"]
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"},
        "Action": "dsql:DbConnect",
        "Resource": arn,
    }
    variants = {
        "{ARN_ACTION}": {**statement, "Action": "s3:GetObject"},
        "{ARN_RESOURCE}": {**statement, "Resource": "arn:aws:dsql:us-east-1:123456789012:cluster/other"},
        "{LOCKOUT}": {"Effect": "Deny", "Principal": "*", "Action": "dsql:*", "Resource": arn},
        "{LONG}": {**statement, "Sid": "x" * 21000},
    }
    if policy in variants:
        policy = json.dumps({"Version": "2012-10-17", "Statement": [variants[policy]]})
    dsql.put_cluster_policy(identifier=cluster["identifier"], policy=connect_policy(arn))
    with pytest.raises(ClientError) as exc:
        dsql.put_cluster_policy(identifier=cluster["identifier"], policy=policy)
    assert code(exc) == "ValidationException"


def test_the_multi_region_cluster_quota_is_enforced_per_region(aws, clock):
    """Row D22, and A2: Service Quotas reports the quota DSQL enforces."""
    east = boto3.client("dsql", region_name="us-east-1")
    for _ in range(aws.settings.dsql_multi_region_clusters):
        east.create_cluster(deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"})
    east.create_cluster(deletionProtectionEnabled=False)  # a single-Region cluster counts against another quota
    with pytest.raises(ClientError) as exc:
        east.create_cluster(deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-east-2"})
    assert code(exc) == "ServiceQuotaExceededException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    quotas = boto3.client("service-quotas", region_name="us-east-1").list_service_quotas(ServiceCode="dsql")["Quotas"]
    assert [(q["QuotaName"], q["Value"]) for q in quotas] == [("Maximum number of multi-Region clusters", 5.0)]


# -- Lambda concurrency, IAM simulation, regions (rows L..., I4, A1) -------------------------


def test_lambda_keeps_100_of_the_account_concurrency_unreserved(aws, clock):
    """Rows L20 and L21."""
    from tests.emulator.test_fidelity import make_function

    make_function(clock, "one")
    make_function(clock, "two")
    clock.advance(60)
    lam = boto3.client("lambda", region_name="us-east-1")
    limit = aws.settings.lambda_concurrency
    lam.put_function_concurrency(FunctionName="one", ReservedConcurrentExecutions=limit - 150)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 150
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName="two", ReservedConcurrentExecutions=51)
    assert code(exc) == "InvalidParameterValueException" and "[100]" in exc.value.response["Error"]["Message"]
    lam.put_function_concurrency(FunctionName="two", ReservedConcurrentExecutions=50)
    lam.put_function_concurrency(
        FunctionName="one", ReservedConcurrentExecutions=limit - 150
    )  # its own does not count twice


def test_simulate_principal_policy_evaluates_the_principals_own_policies(aws):
    """Row I10."""
    iam = boto3.client("iam", region_name="us-east-1")
    user = iam.create_user(UserName="deployer")["User"]["Arn"]
    group = iam.create_group(GroupName="ops")["Group"]["GroupName"]
    iam.add_user_to_group(GroupName=group, UserName="deployer")
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*"}]}
    iam.put_user_policy(UserName="deployer", PolicyName="allow", PolicyDocument=json.dumps(allow))
    iam.put_group_policy(GroupName=group, PolicyName="deny", PolicyDocument=json.dumps(deny))
    results = iam.simulate_principal_policy(
        PolicySourceArn=user, ActionNames=["sqs:CreateQueue", "sqs:DeleteQueue", "sns:Publish"]
    )["EvaluationResults"]
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {
        "sqs:CreateQueue": "allowed",
        "sqs:DeleteQueue": "explicitDeny",
        "sns:Publish": "implicitDeny",
    }
    with pytest.raises(ClientError) as exc:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/nobody", ActionNames=["sqs:*"])
    assert code(exc) == "NoSuchEntity"


def test_a_user_simulates_only_with_its_own_permission_to(aws):
    """Row I11."""
    iam = boto3.client("iam", region_name="us-east-1")
    user = iam.create_user(UserName="ci")["User"]["Arn"]
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    as_ci = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    with pytest.raises(ClientError) as exc:
        as_ci.simulate_principal_policy(PolicySourceArn=user, ActionNames=["sqs:CreateQueue"])
    assert code(exc) == "AccessDenied"
    may = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy", "Resource": user}],
    }
    iam.put_user_policy(UserName="ci", PolicyName="simulate", PolicyDocument=json.dumps(may))
    (result,) = as_ci.simulate_principal_policy(PolicySourceArn=user, ActionNames=["sqs:CreateQueue"])[
        "EvaluationResults"
    ]
    assert result["EvalDecision"] == "implicitDeny"


def test_regions_that_need_opting_in_are_disabled(aws):
    """Row A1."""
    account = boto3.client("account", region_name="us-east-1")
    assert account.get_region_opt_status(RegionName="us-west-2")["RegionOptStatus"] == "ENABLED_BY_DEFAULT"
    assert account.get_region_opt_status(RegionName="eu-south-2")["RegionOptStatus"] == "DISABLED"
    aws.account.region_status["us-west-2"] = "DISABLED"
    assert account.get_region_opt_status(RegionName="us-west-2")["RegionOptStatus"] == "DISABLED"
