"""Destroy leaves nothing of the environment: what the manifest lost, and what it never knew.

STRAYS says, for every kind, what a resource of the environment that the manifest does not
know looks like (made by hand, tagged as the environment's where the kind takes tags), and
that destroy removes it; or why there is no such thing. A kind with no row fails
test_every_kind_has_a_stray_row.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from tests.deploy.inventory import empty, inventory
from tests.deploy.kinds import ACCOUNT, Hand, kinds

STACK = "task-mgmt-dev"
ROLE = "iam_role:task-processor@global"
RULE = "event_rule:task-processing@us-east-1"
FUNCTION = "lambda_function:task-processor@us-east-1"
STRAY = f"{STACK}-stray"
PATTERN = json.dumps({"source": ["someone.else"]})

Exists = Callable[[], bool]


@dataclass(frozen=True)
class Stray:
    """How to make a resource of the environment that the manifest does not know."""

    make: Callable[[Hand], Exists]  # makes it; returns whether it still exists
    why: str  # how destroy finds it


@dataclass(frozen=True)
class NoStray:
    why: str


def gone(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError:
        return True
    return False


def tag_list(hand: Hand) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in hand.tags.items()]


def stray_role(hand: Hand) -> Exists:
    iam = hand.client("iam")
    trust = json.dumps(hand.res(ROLE).spec["trust_policy"])
    iam.create_role(RoleName=f"{STRAY}-role", AssumeRolePolicyDocument=trust, Tags=tag_list(hand))
    return lambda: not gone(lambda: iam.get_role(RoleName=f"{STRAY}-role"))


def inline_policy(hand: Hand) -> Exists:
    iam, role = hand.client("iam"), hand.name(ROLE)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    iam.put_role_policy(RoleName=role, PolicyName="added-by-hand", PolicyDocument=json.dumps(document))
    return lambda: not gone(lambda: iam.get_role_policy(RoleName=role, PolicyName="added-by-hand"))


def stray_cluster(protected: bool = False) -> Callable[[Hand], Exists]:
    def make(hand: Hand) -> Exists:
        dsql = hand.client("dsql", region="us-east-1")
        tags = {**hand.tags, "taskmgmt:key": "dsql_cluster:stray@us-east-1"}
        identifier = dsql.create_cluster(deletionProtectionEnabled=protected, tags=tags)["identifier"]
        hand.clock.advance(hand.aws.settings.dsql_activation)
        return lambda: not gone(lambda: dsql.get_cluster(identifier=identifier))

    return make


def stray_queue(hand: Hand) -> Exists:
    sqs = hand.client("sqs", region="us-west-2")
    sqs.create_queue(QueueName=STRAY, tags=hand.tags)
    return lambda: not gone(lambda: sqs.get_queue_url(QueueName=STRAY))


def stray_bus(hand: Hand) -> Exists:
    events = hand.client("events", region="us-west-2")
    events.create_event_bus(Name=STRAY, Tags=tag_list(hand))
    return lambda: not gone(lambda: events.describe_event_bus(Name=STRAY))


def stray_rule(bus: str) -> Callable[[Hand], Exists]:
    def make(hand: Hand) -> Exists:
        events = hand.client("events", region="us-east-1")
        events.put_rule(Name=STRAY, EventBusName=bus, EventPattern=PATTERN, Tags=tag_list(hand))
        return lambda: not gone(lambda: events.describe_rule(Name=STRAY, EventBusName=bus))

    return make


def extra_target(hand: Hand) -> Exists:
    events, spec = hand.client("events", RULE), hand.res(RULE).spec
    target = {"Id": "added-by-hand", "Arn": hand.queue_arn("sqs_queue:failed-invocations@us-east-1")}
    events.put_targets(Rule=hand.name(RULE), EventBusName=spec["bus_name"], Targets=[target])

    def exists() -> bool:
        listed = events.list_targets_by_rule(Rule=hand.name(RULE), EventBusName=spec["bus_name"])
        return any(t["Id"] == "added-by-hand" for t in listed["Targets"])

    return lambda: not gone(exists) and exists()


def stray_log_group(hand: Hand) -> Exists:
    logs = hand.client("logs", region="us-east-1")
    logs.create_log_group(logGroupName=f"/aws/lambda/{STRAY}", tags=hand.tags)
    return lambda: bool(logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{STRAY}")["logGroups"])


def stray_function(hand: Hand) -> Exists:
    lam = hand.client("lambda", region="us-west-2")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    lam.create_function(
        FunctionName=STRAY,
        Runtime="python3.13",
        Role=hand.function(FUNCTION)["Role"],
        Handler="handler.handler",
        Code={"ZipFile": buffer.getvalue()},
        Tags=hand.tags,
    )
    return lambda: not gone(lambda: lam.get_function(FunctionName=STRAY))


def extra_permission(hand: Hand) -> Exists:
    lam, function = hand.client("lambda", FUNCTION), hand.name(FUNCTION)
    lam.add_permission(
        FunctionName=function, StatementId="added-by-hand", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com"
    )
    return lambda: not gone(lambda: lam.get_policy(FunctionName=function))


def stray_alarm(hand: Hand) -> Exists:
    cloudwatch = hand.client("cloudwatch", region="us-west-2")
    cloudwatch.put_metric_alarm(
        AlarmName=STRAY,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        Tags=tag_list(hand),
    )
    return lambda: bool(cloudwatch.describe_alarms(AlarmNames=[STRAY])["MetricAlarms"])


def stray_topic(hand: Hand) -> Exists:
    sns = hand.client("sns", region="us-west-2")
    arn = sns.create_topic(Name=STRAY, Tags=tag_list(hand))["TopicArn"]
    return lambda: not gone(lambda: sns.get_topic_attributes(TopicArn=arn))


def extra_subscription(hand: Hand) -> Exists:
    sns = hand.client("sns", region="us-east-1")
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:{hand.name('sns_topic:alarms@us-east-1')}"
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="someone@example.com")
    return lambda: any(s["Endpoint"] == "someone@example.com" for s in sns.list_subscriptions()["Subscriptions"])


def stray_api(hand: Hand) -> Exists:
    gateway = hand.client("apigatewayv2", region="us-west-2")
    api_id = gateway.create_api(Name=STRAY, ProtocolType="HTTP", Tags=hand.tags)["ApiId"]
    return lambda: not gone(lambda: gateway.get_api(ApiId=api_id))


TAGS = "tagged as the environment's: destroy's sweep finds it"
BY_PREFIX = "the tagging API may miss it: the sweep lists the kind by the stack's name prefix and checks its tags"

STRAYS: dict[str, dict[str, Stray] | NoStray] = {
    "iam_role": {"tagged": Stray(stray_role, BY_PREFIX)},
    "iam_role_policy": {"on our role": Stray(inline_policy, "untaggable: deleted with the role, as it must be first")},
    "dsql_cluster": {"tagged": Stray(stray_cluster(), "its own tags: the sweep reads every cluster's")},
    "dsql_peering": NoStray("a link between the two clusters, not a resource: it goes with them"),
    "sqs_queue": {"tagged": Stray(stray_queue, TAGS)},
    "sqs_queue_policy": NoStray("an attribute of its queue: it goes with the queue"),
    "event_bus": {"tagged": Stray(stray_bus, TAGS)},
    "event_rule": {
        "tagged, on the default bus": Stray(stray_rule("default"), BY_PREFIX),
        "on our bus": Stray(stray_rule(f"{STACK}-task-events"), "deleted with the bus, as it must be first (E5)"),
    },
    "event_target": {"on our rule": Stray(extra_target, "untaggable: removed with the rule, as it must be first")},
    "log_group": {"tagged": Stray(stray_log_group, TAGS)},
    "lambda_function": {"tagged": Stray(stray_function, TAGS)},
    "lambda_invoke_config": NoStray("one per function, part of it: it goes with the function"),
    "lambda_permission": {"on our function": Stray(extra_permission, "untaggable: part of the function's policy")},
    "metric_alarm": {"tagged": Stray(stray_alarm, TAGS)},
    "dashboard": NoStray(
        "untaggable, and a name prefix alone could be another environment's (task-mgmt-dev-2-... starts with "
        "task-mgmt-dev-): only the blueprint's own name is destroy's, found even when the manifest lost it"
    ),
    "db_schema": NoStray("lives in the clusters' database: it goes with them"),
    "sns_topic": {"tagged": Stray(stray_topic, TAGS)},
    "sns_subscription": {"on our topic": Stray(extra_subscription, "untaggable: it goes with its topic")},
    "kms_key": NoStray("the user's, never created or deleted by taskmgmt: destroy leaves every key"),
    "lambda_concurrency": NoStray("a setting of its function, one per function: it goes with the function"),
    "dsql_cluster_policy": NoStray("one per cluster, part of it: it goes with the cluster"),
    "http_api": {"tagged": Stray(stray_api, "not in the tagging API: " + BY_PREFIX)},
    "websocket_api": NoStray(
        "found by the sweep the http_api row proves: GetApis lists both protocols, and the protocol picks the kind"
    ),
}

CASES = [(kind, name) for kind, rows in STRAYS.items() if isinstance(rows, dict) for name in rows]


def test_every_kind_has_a_stray_row():
    assert set(STRAYS) == kinds()
    assert all(rows for rows in STRAYS.values()), "a kind's row is NoStray (say why) or at least one Stray"


def test_a_stray_of_every_kind_is_removed_by_one_destroy(aws, runtime, cli, clock):
    """Every row of STRAYS made at once after one deploy (they are of distinct kinds, or on
    distinct buses), then one destroy: none is left, and nothing else."""
    # docs/pessimistic-emulation.md row E5 (the rule on our bus)
    assert cli("deploy", "--yes").code == 0
    hand = Hand(aws, clock)
    hand.settle()
    made: dict[tuple[str, str], Exists] = {}
    for kind, name in CASES:
        made[kind, name] = STRAYS[kind][name].make(hand)  # type: ignore[index]
        assert made[kind, name](), (kind, name)
    destroyed = cli("destroy", "--yes")
    assert destroyed.code == 0, destroyed.err
    left = [f"{kind} ({name}): {STRAYS[kind][name].why}" for (kind, name), exists in made.items() if exists()]  # type: ignore[index]
    assert left == []
    assert inventory() == empty()


def test_destroy_removes_everything_the_manifest_lost(aws, runtime, cli, tmp_path):
    """Every record gone: each resource is found by the blueprint's name, or by tag."""
    assert cli("deploy", "--yes").code == 0
    path = tmp_path / ".taskmgmt" / "dev.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "resources": []}))
    destroyed = cli("destroy", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert inventory() == empty()


def test_a_stray_destroy_cannot_remove_is_reported_and_the_exit_code_says_so(aws, runtime, cli, clock, tmp_path):
    """A protected cluster of the environment that the manifest does not know: left, named, exit 1."""
    assert cli("deploy", "--yes").code == 0
    exists = stray_cluster(protected=True)(Hand(aws, clock))
    left = cli("destroy", "--yes")
    assert left.code == 1
    (line,) = [line for line in left.err.splitlines() if "left behind" in line]
    assert "dsql_cluster arn:aws:dsql:us-east-1:" in line and "deletion protection on" in line
    assert "but 1 resources remain; the manifest was kept" in left.err
    assert exists() and (tmp_path / ".taskmgmt" / "dev.json").exists()
    forced = cli("destroy", "--yes", "--force")
    assert forced.code == 0, forced.err
    assert not exists()
    assert inventory() == empty()
