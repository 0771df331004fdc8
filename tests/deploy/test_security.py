"""Least privilege, audited on what a deploy really creates; and no secret is ever written down."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

STACK = "task-mgmt-dev"
SECRET_KEY = "TopSecretKey+ShouldNeverBeWrittenDown/0123456789"

# Actions that have no resource-level permissions, with the reason each is allowed on "*".
# The stack needs none of them today; an entry here must say why.
STAR_RESOURCE_ALLOWED: dict[str, str] = {}


def statements(document: Any) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture
def deployed(aws, runtime, cli, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    result = cli("deploy", "--yes")
    assert result.code == 0, result.err
    return result


def task_rule_arn(region: str) -> str:
    events = boto3.client("events", region_name=region)
    return events.describe_rule(Name=f"{STACK}-task-processing", EventBusName=f"{STACK}-task-events")["Arn"]


def broadcast_rule_arn(region: str) -> str:
    events = boto3.client("events", region_name=region)
    return events.describe_rule(Name=f"{STACK}-broadcast", EventBusName=f"{STACK}-task-events")["Arn"]


def api_id(region: str, suffix: str) -> str:
    apis = boto3.client("apigatewayv2", region_name=region).get_apis()["Items"]
    return next(api["ApiId"] for api in apis if api["Name"] == f"{STACK}-{suffix}")


def our_arns() -> set[str]:
    """Every ARN this environment owns, read back from AWS."""
    arns = set()
    for region in ("us-east-1", "us-west-2"):
        dsql = boto3.client("dsql", region_name=region)
        arns |= {c["arn"] for c in dsql.list_clusters()["clusters"]}
        arns |= {b["Arn"] for b in boto3.client("events", region_name=region).list_event_buses()["EventBuses"]}
        for group in boto3.client("logs", region_name=region).describe_log_groups()["logGroups"]:
            arns.add(group["arn"])
        sqs = boto3.client("sqs", region_name=region)
        for url in sqs.list_queues().get("QueueUrls", []):
            arns.add(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    return arns


def test_the_function_role_is_least_privilege(deployed):
    iam = boto3.client("iam", region_name="us-east-1")
    role = f"{STACK}-task-processor-role"
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert [s["Principal"] for s in statements(trust)] == [{"Service": "lambda.amazonaws.com"}]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []  # no AWSLambdaBasicExecutionRole
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert sorted(names) == [f"{STACK}-manage-connections", f"{STACK}-task-processor-policy"]
    connections = iam.get_role_policy(RoleName=role, PolicyName=f"{STACK}-manage-connections")["PolicyDocument"]
    (statement,) = statements(connections)  # posting to sockets, of this stack's WebSocket APIs only
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:ManageConnections"
    assert sorted(as_list(statement["Resource"])) == sorted(
        f"arn:aws:execute-api:{region}:123456789012:{api_id(region, 'live')}/live/POST/@connections/*"
        for region in ("us-east-1", "us-west-2")
    )
    document = iam.get_role_policy(RoleName=role, PolicyName=f"{STACK}-task-processor-policy")["PolicyDocument"]
    owned = our_arns()
    granted: dict[str, set[str]] = {}
    for statement in statements(document):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
            assert action not in ("dsql:DbConnectAdmin", "logs:CreateLogGroup"), action
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert action in STAR_RESOURCE_ALLOWED, f"{action} on *"
                    continue
                assert resource in owned, f"{action} on {resource}, which is not this environment's"
                granted.setdefault(action, set()).add(resource)
    assert set(granted) == {
        "dsql:DbConnect",
        "events:PutEvents",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
    }
    assert all(":dsql:" in r for r in granted["dsql:DbConnect"]) and len(granted["dsql:DbConnect"]) == 2
    assert all(r.endswith("-task-processor-failures") for r in granted["sqs:SendMessage"])
    assert all(f"log-group:/aws/lambda/{STACK}-task-processor" in r for r in granted["logs:PutLogEvents"])


def test_queue_policies_allow_only_their_rule(deployed):
    for region in ("us-east-1", "us-west-2"):
        sqs = boto3.client("sqs", region_name=region)
        rule_arn = task_rule_arn(region)
        for url in sqs.list_queues()["QueueUrls"]:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])["Attributes"]
            dead_letters = {"-task-events-dlq": rule_arn, "-broadcast-dlq": broadcast_rule_arn(region)}
            if url.endswith(tuple(dead_letters)):
                policy = json.loads(attributes["Policy"])
                (statement,) = statements(policy)
                assert statement["Principal"] == {"Service": "events.amazonaws.com"}
                assert statement["Action"] == "sqs:SendMessage"
                assert statement["Resource"] == attributes["QueueArn"]
                owner = next(arn for suffix, arn in dead_letters.items() if url.endswith(suffix))
                assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": owner}}
            else:
                assert "Policy" not in attributes  # the function's role sends here; nobody else may


def test_the_rule_targets_the_function_with_its_dead_letter_queue_and_bounded_retries(deployed):
    """Read from EventBridge, not through the tool's own read: a target put without its
    dead-letter queue must fail here even if the drift check forgot the field too."""
    from taskmgmt_deploy.stack.blueprint import RULE_RETRY

    for region in ("us-east-1", "us-west-2"):
        events = boto3.client("events", region_name=region)
        sqs = boto3.client("sqs", region_name=region)
        dlq = sqs.get_queue_url(QueueName=f"{STACK}-task-events-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        function_arn = boto3.client("lambda", region_name=region).get_function_configuration(
            FunctionName=f"{STACK}-task-processor"
        )["FunctionArn"]
        (target,) = events.list_targets_by_rule(Rule=f"{STACK}-task-processing", EventBusName=f"{STACK}-task-events")[
            "Targets"
        ]
        assert target["Arn"] == function_arn
        assert target["DeadLetterConfig"] == {"Arn": dlq_arn}
        assert target["RetryPolicy"] == RULE_RETRY


def test_an_event_the_function_may_not_take_reaches_the_deployed_dead_letter_queue(deployed, aws, clock):
    """E4: the emulator delivers to a dead-letter queue only what the queue's policy lets the rule send."""
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.remove_permission(FunctionName=f"{STACK}-task-processor", StatementId=f"{STACK}-task-processing-invoke")
    clock.advance(aws.settings.event_rule_propagation)
    boto3.client("events", region_name="us-east-1").put_events(
        Entries=[
            {
                "Source": "task.management",
                "DetailType": "Task Created",
                "Detail": json.dumps({"eventType": "task.created", "taskData": {"title": "t", "created_by": "a"}}),
                "EventBusName": f"{STACK}-task-events",
            }
        ]
    )
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=f"{STACK}-task-events-dlq")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"]).get("Messages", [])
    assert [m["MessageAttributes"]["ERROR_CODE"]["StringValue"] for m in messages] == ["NO_PERMISSIONS"]


def test_the_function_accepts_invocations_only_from_its_rules_and_its_apis(deployed):
    """Its two rules, and API Gateway for this region's two APIs only (SourceArn scoped to each API)."""
    for region in ("us-east-1", "us-west-2"):
        lam = boto3.client("lambda", region_name=region)
        found = statements(json.loads(lam.get_policy(FunctionName=f"{STACK}-task-processor")["Policy"]))
        assert all(s["Action"] == "lambda:InvokeFunction" and s["Effect"] == "Allow" for s in found)
        sources = {(s["Principal"]["Service"], next(iter(s["Condition"]["ArnLike"].values()))) for s in found}
        account = "123456789012"
        assert sources == {
            ("events.amazonaws.com", task_rule_arn(region)),
            ("events.amazonaws.com", broadcast_rule_arn(region)),
            ("apigateway.amazonaws.com", f"arn:aws:execute-api:{region}:{account}:{api_id(region, 'tasks')}/*"),
            ("apigateway.amazonaws.com", f"arn:aws:execute-api:{region}:{account}:{api_id(region, 'live')}/*"),
        }


def test_no_secret_or_token_is_written_to_the_manifest_or_the_output(deployed, cli, tmp_path):
    outputs = [deployed.out + deployed.err]
    for args in (("status", "--json"), ("outputs", "--json"), ("deploy", "--plan")):
        result = cli(*args)
        outputs.append(result.out + result.err)
    written = [(tmp_path / ".taskmgmt" / "dev.json").read_text(), *outputs]
    for text in written:
        for secret in (SECRET_KEY, "X-Amz-Signature", "X-Amz-Credential", "Action=DbConnect", "password"):
            assert secret not in text


def test_the_function_never_logs_or_returns_its_token(monkeypatch, capsys):
    """A DSQL connection that fails must not leak the IAM token it carried."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda"))
    from task_processor import api, observability
    from task_processor.app import TaskApp
    from task_processor.db import Database, dsql_connect
    from task_processor.notify import Notifier

    class Tokens:
        def generate_db_connect_auth_token(self, **kwargs):
            return "cluster.example/?Action=DbConnect&X-Amz-Signature=SECRET-TOKEN-0123"

    connect = dsql_connect("127.0.0.1", "us-east-1")
    monkeypatch.setattr("boto3.client", lambda *a, **k: Tokens())
    app = TaskApp(Database(lambda: connect_with_short_timeout(connect)), Notifier(None, "us-east-1", client=object()))
    with observability.invocation("req-1"):
        response = api.handle({"httpMethod": "GET", "path": "/tasks"}, app, "req-1")
    printed = capsys.readouterr()
    assert response["statusCode"] == 503
    for text in (response["body"], printed.out, printed.err):
        assert "SECRET-TOKEN" not in text and "X-Amz-Signature" not in text


def connect_with_short_timeout(connect):
    import psycopg

    original = psycopg.connect

    def quick(*args, **kwargs):
        return original(*args, **{**kwargs, "port": 9, "connect_timeout": 1})

    psycopg.connect = quick
    try:
        return connect()
    finally:
        psycopg.connect = original


@pytest.fixture
def hardened(aws, runtime, cli):
    """Deployed with every option: the alarm email, the customer key, the cluster policies."""
    from tests.deploy.test_guard_rails import customer_key

    keys = {region: customer_key(region) for region in ("us-east-1", "us-west-2")}
    options = ("--alarm-email", "ops@example.com", "--kms-key", "alias/taskmgmt", "--cluster-policy")
    result = cli("deploy", "--yes", *options)
    assert result.code == 0, result.err
    return keys


def publishes(policy: Any, topic: str, principal: Any, source: str, account: str = "123456789012") -> bool:
    from taskmgmt_deploy.emulator.policy import Request, allowed

    context = {"aws:SourceArn": source, "aws:SourceAccount": account}
    return allowed([policy], Request("sns:Publish", topic, principal, context))


def connects(policy: Any, cluster: str, action: str, arn: str) -> str:
    from taskmgmt_deploy.emulator.policy import Principal, Request, decide

    account = arn.split(":")[4]
    context = {"aws:PrincipalArn": arn, "aws:PrincipalAccount": account}
    return decide([policy], Request(action, cluster, Principal(arn=arn, account=account), context))


def test_alarm_topics_take_only_this_accounts_alarms_of_their_region(hardened):
    from taskmgmt_deploy.emulator.policy import Principal

    cloudwatch = Principal(service="cloudwatch.amazonaws.com")
    for region in ("us-east-1", "us-west-2"):
        arn = f"arn:aws:sns:{region}:123456789012:{STACK}-alarms"
        policy = json.loads(
            boto3.client("sns", region_name=region).get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"]
        )
        (statement,) = statements(policy)
        assert statement["Effect"] == "Allow" and statement["Action"] == "sns:Publish" and statement["Resource"] == arn

        ours = f"arn:aws:cloudwatch:{region}:123456789012:alarm:{STACK}-task-processor-errors"
        assert publishes(policy, arn, cloudwatch, ours)
        assert not publishes(policy, arn, cloudwatch, ours.replace("123456789012", "210987654321"), "210987654321")
        assert not publishes(policy, arn, cloudwatch, ours.replace(region, "eu-west-1"))
        assert not publishes(policy, arn, Principal(service="events.amazonaws.com"), ours)
        someone = Principal(arn="arn:aws:iam::123456789012:user/someone", account="123456789012")
        assert not publishes(policy, arn, someone, ours)
        subscription = boto3.client("sns", region_name=region).list_subscriptions_by_topic(TopicArn=arn)
        assert [(s["Protocol"], s["Endpoint"]) for s in subscription["Subscriptions"]] == [("email", "ops@example.com")]


def test_cluster_policies_let_only_the_function_role_connect_and_this_account_administer(hardened):
    role = f"arn:aws:iam::123456789012:role/{STACK}-task-processor-role"
    for region in ("us-east-1", "us-west-2"):
        dsql = boto3.client("dsql", region_name=region)
        (cluster,) = dsql.list_clusters()["clusters"]
        policy = json.loads(dsql.get_cluster_policy(identifier=cluster["identifier"])["policy"])

        assert connects(policy, cluster["arn"], "dsql:DbConnect", role) == "allowed"
        assert (
            connects(policy, cluster["arn"], "dsql:DbConnect", "arn:aws:iam::123456789012:role/other") == "explicitDeny"
        )
        assert connects(policy, cluster["arn"], "dsql:DbConnect", "arn:aws:iam::210987654321:role/x") == "explicitDeny"
        # Admin: never from another account; within this one, as its IAM policies allow.
        assert (
            connects(policy, cluster["arn"], "dsql:DbConnectAdmin", "arn:aws:iam::210987654321:role/x")
            == "explicitDeny"
        )
        assert (
            connects(policy, cluster["arn"], "dsql:DbConnectAdmin", "arn:aws:iam::123456789012:role/ci")
            == "implicitDeny"
        )
        assert len(json.dumps(policy)) <= 20480


def test_the_customer_key_is_used_only_through_dsql_and_never_by_the_function(hardened, aws, cli):
    """The key grants: DSQL uses the key with the deployer's credentials (kms:ViaService), the
    topics and log groups with the key policy's grants to CloudWatch and Logs; the function's
    role needs no KMS permission."""
    iam = boto3.client("iam", region_name="us-east-1")
    role = f"{STACK}-task-processor-role"
    document = iam.get_role_policy(RoleName=role, PolicyName=f"{STACK}-task-processor-policy")["PolicyDocument"]
    assert not any(a.startswith("kms:") for s in statements(document) for a in as_list(s["Action"]))
    used = {(a.resource, a.via) for a in aws.authorizations}
    assert used == {(hardened[r], f"dsql.{r}.amazonaws.com") for r in ("us-east-1", "us-west-2")}
    policy = json.loads(cli("policy", "--json", "--kms-key", "alias/taskmgmt").out)
    for statement in policy["Statement"]:
        if any(a in ("kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey") for a in statement["Action"]):
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert via == ["dsql.us-east-1.amazonaws.com", "dsql.us-west-2.amazonaws.com"]
