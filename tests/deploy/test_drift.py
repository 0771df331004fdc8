"""Drift on every field status compares: changed by hand, reported alone, repaired by deploy.

DRIFT has a row for every field a step's plan compares (the keys of its `desired`), per kind:
which resource to change, and how someone with the console would change that field alone.
test_every_compared_field_has_a_drift_row fails for a kind or a field without one.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from taskmgmt_deploy.database import migrate
from taskmgmt_deploy.steps.dsql_policy import cluster_policy
from tests.deploy.kinds import ACCOUNT, Hand, compared_fields, with_options
from tests.deploy.test_guard_rails import customer_key

ROLE = "iam_role:task-processor@global"
POLICY = "iam_role_policy:task-processor@global"
PRIMARY = "dsql_cluster:primary@us-east-1"
SECONDARY = "dsql_cluster:secondary@us-west-2"
PEERING = "dsql_peering:clusters@global"
DLQ = "sqs_queue:events-dlq@us-west-2"
FAILURES = "sqs_queue:failed-invocations@us-east-1"
DLQ_POLICY = "sqs_queue_policy:events-dlq@us-east-1"
RULE = "event_rule:task-processing@us-east-1"
TARGET = "event_target:task-processor@us-east-1"
LOGS = "log_group:task-processor@us-west-2"
FUNCTION = "lambda_function:task-processor@us-east-1"
INVOKE = "lambda_invoke_config:task-processor@us-west-2"
PERMISSION = "lambda_permission:task-processing@us-east-1"
ALARM = "metric_alarm:function-errors@us-west-2"
DASHBOARD = "dashboard:overview@us-east-1"
SCHEMA = "db_schema:tasks@global"
TOPIC = "sns_topic:alarms@us-west-2"
CONCURRENCY = "lambda_concurrency:task-processor@us-east-1"
CLUSTER_POLICY = "dsql_cluster_policy:secondary@us-west-2"
ANOTHER_RULE = "arn:aws:events:us-east-1:123456789012:rule/someone-else"
HTTP_API = "http_api:tasks@us-east-1"
WEBSOCKET_API = "websocket_api:live@us-west-2"


@dataclass(frozen=True)
class Drift:
    key: str  # the resource changed
    change: Callable[[Hand], Any]  # changes that one field, as a user could
    also: tuple[str, ...] = ()  # fields that cannot drift without this one (the row says why)
    settle: bool = True  # let the emulator's transitions finish before status looks
    restore: Callable[[Hand], Any] | None = None  # when deploy is not what repairs it (the row says why)
    elsewhere: str | None = None  # the test that proves it where this emulator cannot change it
    options: bool = False  # the field exists only with the options on (kinds.OPTIONS)


# -- the changes ----------------------------------------------------------------------------


def trust_another_service(hand: Hand) -> None:
    trust = hand.res(ROLE).spec["trust_policy"]
    trust = {**trust, "Statement": [{**trust["Statement"][0], "Principal": {"Service": "edgelambda.amazonaws.com"}}]}
    hand.client("iam").update_assume_role_policy(RoleName=hand.name(ROLE), PolicyDocument=json.dumps(trust))


def drop_a_policy_statement(hand: Hand) -> None:
    iam = hand.client("iam")
    role, name = hand.res(POLICY).spec["role_name"], hand.name(POLICY)
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    document["Statement"] = document["Statement"][1:]
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


def protect(hand: Hand) -> None:
    hand.client("dsql", PRIMARY).update_cluster(
        identifier=hand.cluster(PRIMARY)["identifier"], deletionProtectionEnabled=True
    )


def unpeer(hand: Hand) -> None:
    witness = hand.res(PEERING).spec["witness_region"]
    hand.client("dsql", PRIMARY).update_cluster(
        identifier=hand.cluster(PRIMARY)["identifier"], multiRegionProperties={"witnessRegion": witness, "clusters": []}
    )


def busy_secondary(hand: Hand) -> None:
    """A change in progress on one cluster of the pair (protection set to what it already is)."""
    hand.client("dsql", SECONDARY).update_cluster(
        identifier=hand.cluster(SECONDARY)["identifier"], deletionProtectionEnabled=False
    )


def dlq_policy_for_another_rule(hand: Hand) -> None:
    sqs = hand.client("sqs", DLQ_POLICY)
    url = sqs.get_queue_url(QueueName=hand.res(DLQ_POLICY).spec["queue_name"])["QueueUrl"]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    policy["Statement"][0]["Condition"] = {"ArnEquals": {"aws:SourceArn": ANOTHER_RULE}}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})


def lambda_update(**configuration: Any) -> Callable[[Hand], Any]:
    return lambda hand: hand.client("lambda", FUNCTION).update_function_configuration(
        FunctionName=hand.name(FUNCTION), **configuration
    )


def lambda_current(field: str, **changes: Any) -> Callable[[Hand], Any]:
    """Update one dict-valued setting, keeping the rest of it."""

    def change(hand: Hand) -> None:
        current = hand.function(FUNCTION)[field]
        if field == "Environment":
            current = {"Variables": {**current["Variables"], **changes}}
        else:
            current = {**current, **changes}
        lambda_update(**{field: current})(hand)

    return change


def another_role(hand: Hand) -> None:
    arn = hand.client("iam").create_role(
        RoleName="someone-elses-role", AssumeRolePolicyDocument=json.dumps(hand.res(ROLE).spec["trust_policy"])
    )["Role"]["Arn"]
    hand.clock.advance(hand.aws.settings.iam_propagation)
    lambda_update(Role=arn)(hand)


def package(hand: Hand) -> bytes:
    manifest = json.loads(Path(".taskmgmt/dev.json").read_text())
    (record,) = [r for r in manifest["resources"] if r["kind"] == "lambda_package"]
    return Path(record["outputs"]["path"]).read_bytes()


def other_code(hand: Hand) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("task_processor/handler.py", "def lambda_handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def lambda_code(zip_of: Callable[[Hand], bytes], architecture: str) -> Callable[[Hand], Any]:
    return lambda hand: hand.client("lambda", FUNCTION).update_function_code(
        FunctionName=hand.name(FUNCTION), ZipFile=zip_of(hand), Architectures=[architecture]
    )


def untag_function(hand: Hand) -> None:
    lam = hand.client("lambda", FUNCTION)
    lam.untag_resource(Resource=hand.function(FUNCTION)["FunctionArn"], TagKeys=["managed-by"])


def someone_elses_key(hand: Hand, key: str) -> str:
    """Another customer key of the resource's region, as a user with the console could make."""
    return customer_key(str(hand.res(key).region), "alias/someone-elses")


def recluster_key(hand: Hand) -> None:
    identifier = hand.cluster(PRIMARY)["identifier"]
    hand.client("dsql", PRIMARY).update_cluster(
        identifier=identifier, kmsEncryptionKey=someone_elses_key(hand, PRIMARY)
    )


def relog_key(hand: Hand) -> None:
    hand.client("logs", LOGS).associate_kms_key(logGroupName=hand.name(LOGS), kmsKeyId=someone_elses_key(hand, LOGS))


def topic_arn(hand: Hand) -> str:
    return f"arn:aws:sns:{hand.res(TOPIC).region}:{ACCOUNT}:{hand.name(TOPIC)}"


def retopic_key(hand: Hand) -> None:
    hand.client("sns", TOPIC).set_topic_attributes(
        TopicArn=topic_arn(hand), AttributeName="KmsMasterKeyId", AttributeValue=someone_elses_key(hand, TOPIC)
    )


def topic_open_to_everyone(hand: Hand) -> None:
    sns = hand.client("sns", TOPIC)
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic_arn(hand))["Attributes"]["Policy"])
    del policy["Statement"][0]["Condition"]
    sns.set_topic_attributes(TopicArn=topic_arn(hand), AttributeName="Policy", AttributeValue=json.dumps(policy))


def widen_cluster_policy(hand: Hand) -> None:
    dsql = hand.client("dsql", CLUSTER_POLICY)
    cluster = hand.cluster(SECONDARY)
    widened = cluster_policy(cluster["arn"], f"arn:aws:iam::{ACCOUNT}:role/someone-else")
    dsql.put_cluster_policy(identifier=cluster["identifier"], policy=json.dumps(widened))


def gateway(key: str, operation: str, **arguments: Any) -> Callable[[Hand], Any]:
    """One API Gateway call on the API `key` stands for (ApiId filled in)."""
    return lambda hand: getattr(hand.client("apigatewayv2", key), operation)(ApiId=hand.api(key)["ApiId"], **arguments)


def reroute(key: str, route_key: str, **changes: Any) -> Callable[[Hand], Any]:
    return lambda hand: hand.client("apigatewayv2", key).update_route(
        ApiId=hand.api(key)["ApiId"], RouteId=hand.route(key, route_key)["RouteId"], **changes
    )


def payload_1_0(hand: Hand) -> None:
    gw, api_id = hand.client("apigatewayv2", HTTP_API), hand.api(HTTP_API)["ApiId"]
    (integration,) = gw.get_integrations(ApiId=api_id)["Items"]
    gw.update_integration(ApiId=api_id, IntegrationId=integration["IntegrationId"], PayloadFormatVersion="1.0")


def someone_elses_authorizer(hand: Hand) -> None:
    gw, api_id = hand.client("apigatewayv2", HTTP_API), hand.api(HTTP_API)["ApiId"]
    made = gw.create_authorizer(
        ApiId=api_id,
        Name="jwt",
        AuthorizerType="JWT",
        IdentitySource=["$request.header.Authorization"],
        JwtConfiguration={"Issuer": "https://someone.example.com", "Audience": ["them"]},
    )
    route = hand.route(HTTP_API, "GET /health")["RouteId"]
    gw.update_route(ApiId=api_id, RouteId=route, AuthorizationType="JWT", AuthorizerId=made["AuthorizerId"])


def api_permission_from_anywhere(key: str) -> Callable[[Hand], Any]:
    """The API's invoke permission, replaced by one any API of the account may use."""

    def change(hand: Hand) -> None:
        lam, spec = hand.client("lambda", key), hand.res(key).spec
        lam.remove_permission(FunctionName=spec["function_name"], StatementId=spec["permission_id"])
        lam.add_permission(
            FunctionName=spec["function_name"],
            StatementId=spec["permission_id"],
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:aws:execute-api:{hand.res(key).region}:{ACCOUNT}:*",
        )

    return change


def untag_api(key: str) -> Callable[[Hand], Any]:
    return lambda hand: hand.client("apigatewayv2", key).untag_resource(
        ResourceArn=f"arn:aws:apigateway:{hand.res(key).region}::/apis/{hand.api(key)['ApiId']}",
        TagKeys=["managed-by"],
    )


def sql(statement: str, database: str | None = None) -> Callable[[Hand], Any]:
    """Run SQL on the stack's database (or, as its admin, on `database` of the same server)."""

    def change(hand: Hand) -> None:
        url = os.environ["TASKMGMT_DATABASE_URL"]
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(url, dbname=database or name, autocommit=True) as conn:
            conn.execute(statement.format(database=name, role=migrate.APP_ROLE))

    return change


DRIFT: dict[str, dict[str, Drift]] = {
    "iam_role": {
        "trust_policy": Drift(ROLE, trust_another_service),
        "tags": Drift(ROLE, lambda h: h.client("iam").untag_role(RoleName=h.name(ROLE), TagKeys=["managed-by"])),
    },
    "iam_role_policy": {"document": Drift(POLICY, drop_a_policy_statement)},
    "dsql_cluster": {
        "deletion_protection": Drift(PRIMARY, protect),
        "kms_key_arn": Drift(PRIMARY, recluster_key, options=True),
    },
    "dsql_peering": {
        "peers": Drift(PEERING, unpeer),
        "clusters_healthy": Drift(PEERING, busy_secondary, settle=False),
    },
    "sqs_queue": {
        "attributes": Drift(
            DLQ,
            lambda h: h.client("sqs", DLQ).set_queue_attributes(
                QueueUrl=h.queue_url(DLQ), Attributes={"MessageRetentionPeriod": "60"}
            ),
        )
    },
    "sqs_queue_policy": {"policy": Drift(DLQ_POLICY, dlq_policy_for_another_rule)},
    "event_bus": {},  # nothing to compare: a bus is its name
    "event_rule": {
        "pattern": Drift(RULE, lambda h: h.put_rule(RULE, EventPattern=json.dumps({"source": ["someone.else"]}))),
        "state": Drift(RULE, lambda h: h.put_rule(RULE, State="DISABLED")),
        "description": Drift(RULE, lambda h: h.put_rule(RULE, Description="changed by hand")),
    },
    "event_target": {
        "arn": Drift(TARGET, lambda h: h.put_target(TARGET, Arn=h.queue_arn(FAILURES))),
        "retry_policy": Drift(TARGET, lambda h: h.put_target(TARGET, RetryPolicy={"MaximumRetryAttempts": 0})),
        "dead_letter_arn": Drift(TARGET, lambda h: h.put_target(TARGET, DeadLetterConfig=None)),
    },
    "log_group": {
        "retention_days": Drift(
            LOGS, lambda h: h.client("logs", LOGS).put_retention_policy(logGroupName=h.name(LOGS), retentionInDays=30)
        ),
        "kms_key_arn": Drift(LOGS, relog_key, options=True),
    },
    "lambda_function": {
        "runtime": Drift(FUNCTION, lambda_update(Runtime="python3.12")),
        "handler": Drift(FUNCTION, lambda_update(Handler="task_processor.other.handler")),
        "memory": Drift(FUNCTION, lambda_update(MemorySize=1024)),
        "timeout": Drift(FUNCTION, lambda_update(Timeout=30)),
        "role": Drift(FUNCTION, another_role),
        "description": Drift(FUNCTION, lambda_update(Description="changed by hand")),
        "environment": Drift(FUNCTION, lambda_current("Environment", DSQL_ENDPOINT="elsewhere.dsql.us-east-1.on.aws")),
        "logging": Drift(FUNCTION, lambda_current("LoggingConfig", ApplicationLogLevel="DEBUG")),
        "architectures": Drift(FUNCTION, lambda_code(package, "x86_64")),
        "code_sha256": Drift(FUNCTION, lambda_code(other_code, "arm64")),
        "tags": Drift(FUNCTION, untag_function),
    },
    "lambda_invoke_config": {
        "max_retries": Drift(INVOKE, lambda h: h.put_invoke_config(INVOKE, MaximumRetryAttempts=0)),
        "max_age": Drift(INVOKE, lambda h: h.put_invoke_config(INVOKE, MaximumEventAgeInSeconds=60)),
        "on_failure": Drift(INVOKE, lambda h: h.put_invoke_config(INVOKE, DestinationConfig=None)),
    },
    "lambda_permission": {
        "principal": Drift(PERMISSION, lambda h: h.replace_permission(PERMISSION, Principal="sns.amazonaws.com")),
        "action": Drift(PERMISSION, lambda h: h.replace_permission(PERMISSION, Action="lambda:GetFunction")),
        "source_arn": Drift(PERMISSION, lambda h: h.replace_permission(PERMISSION, SourceArn=ANOTHER_RULE)),
    },
    "metric_alarm": {"alarm": Drift(ALARM, lambda h: h.put_alarm(ALARM, Threshold=99.0))},
    "dashboard": {
        "body": Drift(
            DASHBOARD,
            lambda h: h.client("cloudwatch", DASHBOARD).put_dashboard(
                DashboardName=h.name(DASHBOARD), DashboardBody=json.dumps({"widgets": []})
            ),
        )
    },
    "sns_topic": {
        "policy": Drift(TOPIC, topic_open_to_everyone),
        "tags": Drift(
            TOPIC, lambda h: h.client("sns", TOPIC).untag_resource(ResourceArn=topic_arn(h), TagKeys=["managed-by"])
        ),
        "kms_key_arn": Drift(TOPIC, retopic_key, options=True),
    },
    # SNS cannot change a subscription's address: it changes only when ALARM_EMAIL does.
    "sns_subscription": {
        "endpoint": Drift(
            "sns_subscription:alarm-email@us-east-1",
            lambda h: None,
            elsewhere="tests/deploy/test_guard_rails.py::"
            "test_the_alarm_email_is_pending_until_confirmed_and_a_new_one_replaces_it",
        )
    },
    "kms_key": {},  # nothing to compare: the key is the user's; status reports its state as its health
    "lambda_concurrency": {
        "reserved": Drift(
            CONCURRENCY,
            lambda h: h.client("lambda", CONCURRENCY).put_function_concurrency(
                FunctionName=h.res(CONCURRENCY).spec["function_name"], ReservedConcurrentExecutions=7
            ),
            options=True,
        )
    },
    "dsql_cluster_policy": {"policy": Drift(CLUSTER_POLICY, widen_cluster_policy, options=True)},
    "http_api": {
        "routes": Drift(HTTP_API, reroute(HTTP_API, "GET /tasks", AuthorizationType="NONE")),
        "payload_format": Drift(HTTP_API, payload_1_0),
        # an authorizer is seen through the routes that use it
        "authorizer": Drift(HTTP_API, someone_elses_authorizer, also=("routes",)),
        "cors": Drift(HTTP_API, gateway(HTTP_API, "update_api", CorsConfiguration={"AllowOrigins": ["*"]})),
        "stage": Drift(
            HTTP_API,
            gateway(HTTP_API, "update_stage", StageName="$default", StageVariables={"websocketUrl": "wss://elsewhere"}),
        ),
        "permission": Drift(HTTP_API, api_permission_from_anywhere(HTTP_API)),
        "tags": Drift(HTTP_API, untag_api(HTTP_API)),
    },
    "websocket_api": {
        "routes": Drift(WEBSOCKET_API, gateway(WEBSOCKET_API, "create_route", RouteKey="added-by-hand")),
        "stage": Drift(WEBSOCKET_API, gateway(WEBSOCKET_API, "delete_stage", StageName="live")),
        "permission": Drift(WEBSOCKET_API, api_permission_from_anywhere(WEBSOCKET_API)),
        "tags": Drift(WEBSOCKET_API, untag_api(WEBSOCKET_API)),
    },
    "db_schema": {
        "pending": Drift(
            SCHEMA, sql("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
        ),
        # A role that does not exist has no grants either.
        "app_role": Drift(SCHEMA, sql("DROP OWNED BY {role}; DROP ROLE {role}"), also=("missing_grants",)),
        "missing_grants": Drift(SCHEMA, sql("REVOKE DELETE ON task_updates FROM {role}")),
        # Deploy cannot make a database reachable: whoever closed it opens it again.
        "reachable": Drift(
            SCHEMA,
            sql("ALTER DATABASE {database} ALLOW_CONNECTIONS false", database="postgres"),
            restore=sql("ALTER DATABASE {database} ALLOW_CONNECTIONS true", database="postgres"),
        ),
        # Compared on DSQL only (PostgreSQL has no IAM mapping), where this emulator has no database.
        "role_mapped": Drift(
            SCHEMA,
            lambda h: None,
            elsewhere="tests/deploy/test_migrations.py::test_status_reports_a_lost_iam_mapping_and_deploy_restores_it",
        ),
        # Compared only where each cluster is its own database (DSQL, the sandbox); these tests
        # put the schema in one PostgreSQL database whatever the endpoint.
        "endpoint": Drift(
            SCHEMA,
            lambda h: None,
            elsewhere="tests/deploy/test_migrations.py::"
            "test_a_cluster_made_again_gets_the_schema_even_while_the_old_one_answers",
        ),
    },
}


ROWS = [(kind, field) for kind, fields in DRIFT.items() for field, drift in fields.items() if not drift.elsewhere]


def by_kind(
    rows: list[Any], options: Callable[[Any], bool], kind: Callable[[Any], str] = lambda row: row[0]
) -> dict[str, list[Any]]:
    """The rows grouped by kind, and apart where they need the options on: one deploy serves a
    group, each row repairing what it changed before the next one changes anything."""
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(kind(row) + ("+options" if options(row) else ""), []).append(row)
    return groups


# The APIs' rows ride with the permission's group: one deploy fewer each.
RIDES_WITH = {"http_api": "lambda_permission", "websocket_api": "lambda_permission"}
GROUPS = by_kind(ROWS, lambda row: DRIFT[row[0]][row[1]].options, kind=lambda row: RIDES_WITH.get(row[0], row[0]))


def test_every_compared_field_has_a_drift_row():
    assert {kind: set(fields) for kind, fields in DRIFT.items()} == compared_fields()
    for fields in DRIFT.values():
        for drift in fields.values():
            if drift.elsewhere:
                path, name = drift.elsewhere.split("::")
                assert f"def {name}(" in (Path(__file__).parents[2] / path).read_text(), drift.elsewhere


def unhealthy(cli: Callable[..., Any]) -> dict[str, list[str]]:
    status = cli("status", "--json")
    report = {r["key"]: r["problems"] for r in json.loads(status.out)["resources"] if r["health"] != "ok"}
    assert status.code == (1 if report else 0), status.err
    return report


@pytest.mark.parametrize("group", list(GROUPS))
def test_drift_of_one_field_is_reported_alone_and_deploy_repairs_it(aws, runtime, cli, clock, monkeypatch, group):
    # PostgreSQL roles belong to the server, which other tests share: this test's role is its own.
    monkeypatch.setattr(migrate, "APP_ROLE", f"taskmgmt_app_{uuid.uuid4().hex[:8]}")
    if group.endswith("+options"):
        with_options(monkeypatch)
    assert cli("deploy", "--yes").code == 0
    hand = Hand(aws, clock)
    for kind, field in GROUPS[group]:
        drift = DRIFT[kind][field]
        hand.settle()
        drift.change(hand)
        if drift.settle:
            hand.settle()
        report = unhealthy(cli)
        assert list(report) == [drift.key], (field, report)
        assert sorted(problem.split(":")[0] for problem in report[drift.key]) == sorted({field, *drift.also}), field
        if drift.restore:
            drift.restore(hand)
        else:
            repaired = cli("deploy", "--yes")
            assert repaired.code == 0, (field, repaired.err)
        assert unhealthy(cli) == {}, field
