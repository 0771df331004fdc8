"""The fidelity layer makes moto behave like AWS where the stack depends on it.

Each test states one AWS behaviour and checks it through boto3, as the tool sees it.
"""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def make_role(name: str = "fn-role") -> str:
    return boto3.client("iam", region_name="us-east-1").create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)[
        "Role"
    ]["Arn"]


def make_function(clock, name: str = "fn", **extra) -> dict:
    role = make_role(f"{name}-role")
    clock.advance(60)
    lam = boto3.client("lambda", region_name="us-east-1")
    spec = {"Runtime": "python3.13", "Handler": "handler.handler", **extra}
    return lam.create_function(FunctionName=name, Role=role, Code={"ZipFile": zip_bytes()}, **spec)


# -- DSQL ---------------------------------------------------------------------------------
# Each test names the row of docs/pessimistic-emulation.md (section D) it proves.

WITNESS = "us-east-2"


def dsql_clients():
    return boto3.client("dsql", region_name="us-east-1"), boto3.client("dsql", region_name="us-west-2")


def first_cluster(east, protected: bool = False) -> dict:
    return east.create_cluster(deletionProtectionEnabled=protected, multiRegionProperties={"witnessRegion": WITNESS})


def second_cluster(west, a: dict, protected: bool = False) -> dict:
    return west.create_cluster(
        deletionProtectionEnabled=protected, multiRegionProperties={"witnessRegion": WITNESS, "clusters": [a["arn"]]}
    )


def peer(east, a: dict, b: dict) -> None:
    east.update_cluster(
        identifier=a["identifier"], multiRegionProperties={"witnessRegion": WITNESS, "clusters": [b["arn"]]}
    )


def peered_pair(aws, clock, protected: bool = False):
    east, west = dsql_clients()
    a = first_cluster(east, protected)
    b = second_cluster(west, a, protected)
    peer(east, a, b)
    clock.advance(aws.settings.dsql_activation)
    return east, west, a["identifier"], b["identifier"]


def status(client, identifier: str) -> str:
    return client.get_cluster(identifier=identifier)["status"]


def test_dsql_first_cluster_waits_in_pending_setup_until_peered(aws, clock):
    """D1"""
    east, west = dsql_clients()
    a = first_cluster(east)
    clock.advance(3600)
    assert status(east, a["identifier"]) == "PENDING_SETUP"  # stable, no timeout
    b = second_cluster(west, a)
    assert status(west, b["identifier"]) == "PENDING_SETUP"
    peer(east, a, b)
    assert status(east, a["identifier"]) == status(west, b["identifier"]) == "CREATING"
    clock.advance(aws.settings.dsql_activation)
    assert status(east, a["identifier"]) == status(west, b["identifier"]) == "ACTIVE"


def test_dsql_create_answers_updating_while_the_cluster_is_pending_setup(aws):
    """D2"""
    east, _ = dsql_clients()
    a = first_cluster(east)
    assert a["status"] == "UPDATING"
    assert status(east, a["identifier"]) == "PENDING_SETUP"


def test_dsql_reports_no_endpoint_until_the_cluster_is_active(aws, clock):
    """D3: the deploy must derive the endpoint of a cluster it has just created."""
    east, west = dsql_clients()
    a = first_cluster(east)
    b = second_cluster(west, a)
    assert "endpoint" not in a and "endpoint" not in b
    assert "endpoint" not in east.get_cluster(identifier=a["identifier"])  # PENDING_SETUP
    peer(east, a, b)
    assert "endpoint" not in east.get_cluster(identifier=a["identifier"])  # CREATING
    clock.advance(aws.settings.dsql_activation)
    assert "endpoint" in east.get_cluster(identifier=a["identifier"])
    east.update_cluster(identifier=a["identifier"], deletionProtectionEnabled=True)
    assert "endpoint" in east.get_cluster(identifier=a["identifier"])  # UPDATING: still serving
    clock.advance(aws.settings.dsql_update)
    east.update_cluster(identifier=a["identifier"], deletionProtectionEnabled=False)
    clock.advance(aws.settings.dsql_update)
    east.delete_cluster(identifier=a["identifier"])
    assert "endpoint" not in east.get_cluster(identifier=a["identifier"])  # PENDING_DELETE


def test_dsql_endpoint_has_the_documented_form(aws, clock):
    """D4"""
    east, west, a, b = peered_pair(aws, clock)
    assert east.get_cluster(identifier=a)["endpoint"] == f"{a}.dsql.us-east-1.on.aws"
    assert west.get_cluster(identifier=b)["endpoint"] == f"{b}.dsql.us-west-2.on.aws"


def test_dsql_lists_the_cluster_itself_among_its_clusters(aws, clock):
    """D5: a peer comparison must leave the cluster's own ARN out."""
    east, west = dsql_clients()
    a = first_cluster(east)
    assert east.get_cluster(identifier=a["identifier"])["multiRegionProperties"]["clusters"] == [a["arn"]]
    b = second_cluster(west, a)
    peer(east, a, b)
    for client, cluster in ((east, a), (west, b)):
        properties = client.get_cluster(identifier=cluster["identifier"])["multiRegionProperties"]
        assert properties == {"witnessRegion": WITNESS, "clusters": sorted([a["arn"], b["arn"]])}


def test_dsql_update_answers_without_deletion_protection_or_endpoint(aws, clock):
    """D6"""
    east, _, a, _ = peered_pair(aws, clock)
    answer = east.update_cluster(identifier=a, deletionProtectionEnabled=True)
    assert set(answer) - {"ResponseMetadata"} == {"identifier", "arn", "status", "creationTime"}
    assert answer["status"] == "UPDATING"


def test_dsql_update_leaves_the_cluster_updating_for_a_while(aws, clock):
    """D7"""
    east, _, a, _ = peered_pair(aws, clock)
    east.update_cluster(identifier=a, deletionProtectionEnabled=True)
    assert status(east, a) == "UPDATING"
    clock.advance(aws.settings.dsql_update)
    assert status(east, a) == "ACTIVE"


def test_dsql_refuses_any_change_while_one_is_in_progress(aws, clock):
    """D8"""
    east, west = dsql_clients()
    a = first_cluster(east)
    b = second_cluster(west, a)
    peer(east, a, b)  # both CREATING now
    for call in (
        lambda: east.update_cluster(identifier=a["identifier"], deletionProtectionEnabled=True),
        lambda: west.delete_cluster(identifier=b["identifier"]),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "ConflictException"
    clock.advance(aws.settings.dsql_activation)
    east.update_cluster(identifier=a["identifier"], deletionProtectionEnabled=True)  # UPDATING now
    with pytest.raises(ClientError) as exc:
        east.update_cluster(identifier=a["identifier"], deletionProtectionEnabled=False)
    assert code(exc) == "ConflictException"


def test_dsql_refuses_to_delete_a_protected_cluster_like_aws(aws, clock):
    """D9"""
    east, _, a, _ = peered_pair(aws, clock, protected=True)
    with pytest.raises(ClientError) as exc:
        east.delete_cluster(identifier=a)
    assert code(exc) == "ValidationException"
    assert exc.value.response["reason"] == "deletionProtectionEnabled"
    assert status(east, a) == "ACTIVE"


def test_dsql_delete_of_one_peer_waits_in_pending_delete_for_the_other(aws, clock):
    """D10"""
    east, west, a, b = peered_pair(aws, clock)
    assert east.delete_cluster(identifier=a)["identifier"] == a
    clock.advance(3600)
    assert status(east, a) == "PENDING_DELETE"
    west.delete_cluster(identifier=b)
    assert status(east, a) == status(west, b) == "DELETING"
    clock.advance(aws.settings.dsql_deletion)
    for client, ident in ((east, a), (west, b)):
        with pytest.raises(ClientError) as exc:
            client.get_cluster(identifier=ident)
        assert code(exc) == "ResourceNotFoundException"


def test_dsql_refuses_to_change_a_cluster_whose_delete_was_requested(aws, clock):
    """D11: a second DeleteCluster, or an UpdateCluster, on a cluster PENDING_DELETE or DELETING."""
    east, west, a, b = peered_pair(aws, clock)
    east.delete_cluster(identifier=a)  # PENDING_DELETE
    with pytest.raises(ClientError) as exc:
        east.delete_cluster(identifier=a)
    assert code(exc) == "ConflictException"
    with pytest.raises(ClientError) as exc:
        east.update_cluster(identifier=a, deletionProtectionEnabled=False)
    assert code(exc) == "ConflictException"
    west.delete_cluster(identifier=b)  # both DELETING
    for call in (
        lambda: west.delete_cluster(identifier=b),
        lambda: west.update_cluster(identifier=b, deletionProtectionEnabled=False),
        lambda: east.delete_cluster(identifier=a),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "ConflictException"


def test_dsql_refuses_to_change_a_cluster_whose_peer_is_pending_delete(aws, clock):
    """D12: so protection must be off on both clusters before either is deleted."""
    east, west, a, b = peered_pair(aws, clock)
    east.delete_cluster(identifier=a)
    with pytest.raises(ClientError) as exc:
        west.update_cluster(identifier=b, deletionProtectionEnabled=True)
    assert code(exc) == "ConflictException"
    assert "PENDING_DELETE" in str(exc.value)


@pytest.mark.parametrize("region,witness", [("us-east-1", "us-east-1"), ("us-east-1", "eu-west-1")])
def test_dsql_rejects_a_witness_outside_the_region_set(aws, region, witness):
    """D13"""
    with pytest.raises(ClientError) as exc:
        boto3.client("dsql", region_name=region).create_cluster(
            deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": witness}
        )
    assert code(exc) == "ValidationException"


def test_dsql_rejects_a_peer_outside_the_region_set(aws):
    """D13"""
    a = boto3.client("dsql", region_name="eu-west-1").create_cluster(
        deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "eu-west-2"}
    )
    with pytest.raises(ClientError) as exc:
        boto3.client("dsql", region_name="us-west-2").create_cluster(
            deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": WITNESS, "clusters": [a["arn"]]}
        )
    assert code(exc) == "ValidationException"


def test_dsql_rejects_a_peer_that_does_not_exist(aws):
    """D14"""
    with pytest.raises(ClientError) as exc:
        boto3.client("dsql", region_name="us-west-2").create_cluster(
            deletionProtectionEnabled=False,
            multiRegionProperties={
                "witnessRegion": WITNESS,
                "clusters": ["arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrstuvwxyz"],
            },
        )
    assert code(exc) == "ValidationException"


def test_dsql_lists_a_new_cluster_only_after_a_while_and_its_token_returns_it(aws, clock):
    """D15: found by identifier at once, by ListClusters later; the same client token, the same cluster."""
    east, _ = dsql_clients()
    created = east.create_cluster(deletionProtectionEnabled=False, clientToken="token-1", tags={"k": "v"})
    assert east.get_cluster(identifier=created["identifier"])["identifier"] == created["identifier"]
    assert east.list_clusters()["clusters"] == []
    again = east.create_cluster(deletionProtectionEnabled=False, clientToken="token-1", tags={"k": "v"})
    assert again["identifier"] == created["identifier"]
    clock.advance(aws.settings.dsql_listing)
    assert [c["identifier"] for c in east.list_clusters()["clusters"]] == [created["identifier"]]
    assert [(r.operation, r.token) for r in aws.dsql.requests] == [("CreateCluster", "token-1")] * 2


def test_dsql_logs_every_mutating_call_with_its_answer(aws, clock):
    """The request log the destroy tests read."""
    east, _, a, _ = peered_pair(aws, clock, protected=True)
    with pytest.raises(ClientError):
        east.delete_cluster(identifier=a)
    log = [(r.operation, r.region, r.change, r.error) for r in aws.dsql.requests]
    assert log == [
        ("CreateCluster", "us-east-1", "", None),
        ("CreateCluster", "us-west-2", "", None),
        ("UpdateCluster", "us-east-1", "multiRegionProperties", None),
        ("DeleteCluster", "us-east-1", "", "ValidationException"),
    ]
    assert aws.dsql.requests[-1].identifier == a


# -- IAM and Lambda -----------------------------------------------------------------------


def test_a_new_role_cannot_be_assumed_until_it_propagates(aws, clock):
    """Row I1 of docs/pessimistic-emulation.md."""
    role = make_role()
    lam = boto3.client("lambda", region_name="us-east-1")
    kwargs = {
        "FunctionName": "fn",
        "Runtime": "python3.13",
        "Role": role,
        "Handler": "h.h",
        "Code": {"ZipFile": zip_bytes()},
    }
    with pytest.raises(ClientError) as exc:
        lam.create_function(**kwargs)
    assert code(exc) == "InvalidParameterValueException"
    assert "cannot be assumed" in str(exc.value)
    clock.advance(aws.settings.iam_propagation)
    assert lam.create_function(**kwargs)["FunctionName"] == "fn"


def test_a_new_function_is_pending_and_refuses_updates_until_active(aws, clock):
    """Row L1, L2 of docs/pessimistic-emulation.md."""
    make_function(clock)
    lam = boto3.client("lambda", region_name="us-east-1")
    assert lam.get_function(FunctionName="fn")["Configuration"]["State"] == "Pending"
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName="fn", MemorySize=256)
    assert code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="fn", Payload=b"{}")
    assert code(exc) == "ResourceConflictException" and "Pending" in str(exc.value)
    clock.advance(aws.settings.lambda_settle)
    config = lam.get_function(FunctionName="fn")["Configuration"]
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")
    lam.update_function_configuration(FunctionName="fn", MemorySize=256)
    assert lam.get_function_configuration(FunctionName="fn")["LastUpdateStatus"] == "InProgress"
    with pytest.raises(ClientError) as exc:
        lam.update_function_code(FunctionName="fn", ZipFile=zip_bytes())
    assert "update is in progress" in str(exc.value)


def test_lambda_keeps_the_logging_config(aws, clock):
    """Row L8 of docs/pessimistic-emulation.md."""
    make_function(clock, LoggingConfig={"LogFormat": "JSON", "LogGroup": "/custom/fn"})
    config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(FunctionName="fn")
    assert config["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": "/custom/fn",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "INFO",
    }


def test_get_function_returns_no_tags_but_list_tags_does(aws, clock):
    """Row L7 of docs/pessimistic-emulation.md."""
    arn = make_function(clock, Tags={"app": "taskmgmt"})["FunctionArn"]
    lam = boto3.client("lambda", region_name="us-east-1")
    assert "Tags" not in lam.get_function(FunctionName="fn")
    assert lam.list_tags(Resource=arn)["Tags"] == {"app": "taskmgmt"}


def test_lambda_rejects_a_runtime_it_does_not_offer(aws, clock):
    """Row L4 of docs/pessimistic-emulation.md."""
    with pytest.raises(ClientError) as exc:
        make_function(clock, Runtime="python2.7")
    assert code(exc) == "InvalidParameterValueException"


def test_lambda_rejects_reserved_environment_keys(aws, clock):
    """Row L3 of docs/pessimistic-emulation.md."""
    with pytest.raises(ClientError) as exc:
        make_function(clock, Environment={"Variables": {"AWS_REGION": "us-east-1"}})
    assert code(exc) == "InvalidParameterValueException"
    assert "AWS_REGION" in str(exc.value)


def test_lambda_refuses_a_duplicate_permission_statement_id(aws, clock):
    """Row L5 of docs/pessimistic-emulation.md."""
    make_function(clock)
    lam = boto3.client("lambda", region_name="us-east-1")
    kwargs = {
        "FunctionName": "fn",
        "StatementId": "sid",
        "Action": "lambda:InvokeFunction",
        "Principal": "events.amazonaws.com",
        "SourceArn": "arn:aws:events:us-east-1:123456789012:rule/b/r",
    }
    lam.add_permission(**kwargs)
    with pytest.raises(ClientError) as exc:
        lam.add_permission(**kwargs)
    assert code(exc) == "ResourceConflictException"


def test_on_failure_destination_needs_the_role_to_allow_sending(aws, clock):
    """Row L6, I2 of docs/pessimistic-emulation.md."""
    make_function(clock)
    clock.advance(aws.settings.lambda_settle)
    queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="failures")
    arn = "arn:aws:sqs:us-east-1:123456789012:failures"
    lam = boto3.client("lambda", region_name="us-east-1")
    config = {"FunctionName": "fn", "DestinationConfig": {"OnFailure": {"Destination": arn}}}
    with pytest.raises(ClientError) as exc:
        lam.put_function_event_invoke_config(**config)
    assert "does not have permissions to call SendMessage" in str(exc.value)
    boto3.client("iam", region_name="us-east-1").put_role_policy(
        RoleName="fn-role",
        PolicyName="send",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}]}
        ),
    )
    with pytest.raises(ClientError):  # the new policy has not propagated yet
        lam.put_function_event_invoke_config(**config)
    clock.advance(aws.settings.iam_propagation)
    lam.put_function_event_invoke_config(**config)
    lam.put_function_event_invoke_config(**config)  # a put replaces
    assert (
        lam.list_function_event_invoke_configs(FunctionName="fn")["FunctionEventInvokeConfigs"][0]["DestinationConfig"][
            "OnFailure"
        ]["Destination"]
        == arn
    )
    assert queue["QueueUrl"]


def test_iam_refuses_to_delete_an_attached_policy(aws):
    """Row I3 of docs/pessimistic-emulation.md."""
    iam = boto3.client("iam", region_name="us-east-1")
    make_role()
    arn = iam.create_policy(
        PolicyName="p",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="fn-role", PolicyArn=arn)
    with pytest.raises(ClientError) as exc:
        iam.delete_policy(PolicyArn=arn)
    assert code(exc) == "DeleteConflict"
    with pytest.raises(ClientError) as exc:
        iam.delete_role(RoleName="fn-role")
    assert code(exc) == "DeleteConflict"


# -- EventBridge, CloudWatch, Logs, SQS ----------------------------------------------------

DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:dlq"
THIS_RULE = "this rule"
ANOTHER_RULE = "arn:aws:events:us-east-1:123456789012:rule/bus/another"


def queue_policy(queue_arn: str, source_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
            }
        ],
    }


def rule_to_function(
    aws, clock, permit_for: str | None, state: str = "ENABLED", dlq_policy_for: str | None = THIS_RULE
) -> tuple[str, str]:
    """A bus, a rule with the function as target and a dead-letter queue; then one matching event.
    permit_for and dlq_policy_for: the rule the function's and the queue's policies name."""
    make_function(clock)
    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="bus")
    rule = events.put_rule(
        Name="r", EventBusName="bus", State=state, EventPattern=json.dumps({"source": ["task.management"]})
    )["RuleArn"]
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    if dlq_policy_for:
        source = rule if dlq_policy_for == THIS_RULE else dlq_policy_for
        sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"Policy": json.dumps(queue_policy(DLQ_ARN, source))})
    fn = boto3.client("lambda", region_name="us-east-1").get_function(FunctionName="fn")["Configuration"]
    events.put_targets(
        Rule="r",
        EventBusName="bus",
        Targets=[{"Id": "t", "Arn": fn["FunctionArn"], "DeadLetterConfig": {"Arn": DLQ_ARN}}],
    )
    if permit_for:
        boto3.client("lambda", region_name="us-east-1").add_permission(
            FunctionName="fn",
            StatementId="events",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule if permit_for == THIS_RULE else permit_for,
        )
    clock.advance(aws.settings.event_rule_propagation)
    put_event()
    return rule, dlq_url


def put_event() -> None:
    boto3.client("events", region_name="us-east-1").put_events(
        Entries=[{"Source": "task.management", "DetailType": "Task Created", "Detail": "{}", "EventBusName": "bus"}]
    )


def test_events_reach_a_lambda_target_only_with_permission_for_that_rule(aws, clock):
    """Row E3 of docs/pessimistic-emulation.md."""
    rule, _dlq = rule_to_function(aws, clock, permit_for=THIS_RULE)
    assert [d.outcome for d in aws.deliveries] == ["invoked"]
    assert aws.deliveries[0].rule_arn == rule


@pytest.mark.parametrize("permit_for", [None, ANOTHER_RULE])
def test_events_without_permission_for_their_rule_end_in_the_target_dlq(aws, clock, permit_for):
    """Row E3 of docs/pessimistic-emulation.md."""
    _, dlq = rule_to_function(aws, clock, permit_for=permit_for)
    assert [d.outcome for d in aws.deliveries] == ["no-permission"]
    messages = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=dlq, MessageAttributeNames=["All"]
    )["Messages"]
    assert messages[0]["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"


@pytest.mark.parametrize("policy_for", [None, ANOTHER_RULE])
def test_a_dead_letter_queue_receives_nothing_unless_its_policy_lets_the_rule_send(aws, clock, policy_for):
    """Row E4 of docs/pessimistic-emulation.md."""
    _, dlq = rule_to_function(aws, clock, permit_for=None, dlq_policy_for=policy_for)
    assert [d.outcome for d in aws.deliveries] == ["no-permission"]
    assert "Messages" not in boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=dlq)


def test_a_rule_just_put_or_enabled_matches_no_event_yet(aws, clock):
    """Row E2 of docs/pessimistic-emulation.md."""
    rule_to_function(aws, clock, permit_for=THIS_RULE)
    events = boto3.client("events", region_name="us-east-1")
    pattern = json.dumps({"source": ["task.management"]})
    for change in (
        lambda: events.put_rule(Name="r", EventBusName="bus", EventPattern=pattern),
        lambda: (events.disable_rule(Name="r", EventBusName="bus"), events.enable_rule(Name="r", EventBusName="bus")),
    ):
        aws.deliveries.clear()
        change()
        put_event()
        assert aws.deliveries == []  # lost: EventBridge does not hold events for a rule to come
        clock.advance(aws.settings.event_rule_propagation)
        put_event()
        assert [d.outcome for d in aws.deliveries] == ["invoked"]


@pytest.fixture
def failing_function(clock):
    """The emulator with a function whose every invocation raises; yields (fidelity, invocations)."""
    from moto import mock_aws

    from taskmgmt_deploy.emulator.fidelity import Fidelity, FidelitySettings

    invocations = []

    def fail(invocation):
        invocations.append(invocation)
        return b'{"errorMessage": "boom"}', "Unhandled"

    with mock_aws(config={"lambda": {"use_docker": False}}), Fidelity(clock, FidelitySettings(), fail) as fidelity:
        yield fidelity, invocations


def test_a_function_that_raises_is_retried_then_its_event_goes_to_the_on_failure_queue(failing_function, clock):
    """Row L9 of docs/pessimistic-emulation.md."""
    aws, invocations = failing_function
    rule_to_function(aws, clock, permit_for=THIS_RULE)
    assert len(invocations) == 3 and aws.deliveries[-1].outcome == "function-error"  # two retries by default
    sqs = boto3.client("sqs", region_name="us-east-1")
    failures = sqs.create_queue(QueueName="failures")["QueueUrl"]
    arn = "arn:aws:sqs:us-east-1:123456789012:failures"
    boto3.client("iam", region_name="us-east-1").put_role_policy(
        RoleName="fn-role",
        PolicyName="send",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}]}
        ),
    )
    clock.advance(aws.settings.iam_propagation)
    boto3.client("lambda", region_name="us-east-1").put_function_event_invoke_config(
        FunctionName="fn", MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": arn}}
    )
    invocations.clear()
    put_event()
    assert len(invocations) == 2
    (message,) = sqs.receive_message(QueueUrl=failures)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["detail-type"] == "Task Created"


def test_a_disabled_rule_delivers_nothing(aws, clock):
    """Row E1 of docs/pessimistic-emulation.md."""
    rule_to_function(aws, clock, permit_for=THIS_RULE, state="DISABLED")
    assert aws.deliveries == []


def test_a_bus_with_rules_cannot_be_deleted(aws):
    """Row E5 of docs/pessimistic-emulation.md."""
    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="bus")
    events.put_rule(Name="r", EventBusName="bus", EventPattern=json.dumps({"source": ["task.management"]}))
    with pytest.raises(ClientError) as exc:
        events.delete_event_bus(Name="bus")
    assert code(exc) == "ValidationException"
    assert [rule["Name"] for rule in events.list_rules(EventBusName="bus")["Rules"]] == ["r"]
    events.delete_rule(Name="r", EventBusName="bus")
    events.delete_event_bus(Name="bus")
    assert [bus["Name"] for bus in events.list_event_buses()["EventBuses"]] == ["default"]


def test_dashboards_are_global(aws):
    """Row C1 of docs/pessimistic-emulation.md."""
    body = json.dumps({"widgets": []})
    boto3.client("cloudwatch", region_name="us-west-2").put_dashboard(DashboardName="d", DashboardBody=body)
    names = boto3.client("cloudwatch", region_name="us-east-1").list_dashboards()["DashboardEntries"]
    assert [d["DashboardName"] for d in names] == ["d"]


@pytest.mark.parametrize(
    "wrong",
    [
        {"ComparisonOperator": "Bogus"},
        {"Statistic": "Median"},
        {"MetricName": None},
        {"EvaluationPeriods": 1, "DatapointsToAlarm": 2},
    ],
    ids=["comparison", "statistic", "no-metric", "datapoints-over-periods"],
)
def test_alarm_parameters_are_validated(aws, wrong):
    """Row C2 of docs/pessimistic-emulation.md."""
    alarm = {
        "AlarmName": "a",
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 1,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.put_metric_alarm(**alarm)  # the valid alarm is accepted
    alarm = {key: value for key, value in {**alarm, **wrong}.items() if value is not None}
    with pytest.raises(ClientError) as exc:
        cloudwatch.put_metric_alarm(**alarm)
    assert code(exc) == "ValidationError"


def test_log_retention_must_be_an_allowed_value(aws):
    """Row G1 of docs/pessimistic-emulation.md."""
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="g")
    with pytest.raises(ClientError) as exc:
        logs.put_retention_policy(logGroupName="g", retentionInDays=13)
    assert code(exc) == "InvalidParameterException"


def test_a_deleted_queue_name_cannot_be_reused_for_60_seconds(aws, clock):
    """Row S1 of docs/pessimistic-emulation.md."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName="q")
    assert "QueueDeletedRecently" in code(exc)
    clock.advance(61)
    assert sqs.create_queue(QueueName="q")["QueueUrl"] == url


def test_a_queue_url_names_its_region_whatever_endpoint_was_called():
    """Row S2 of docs/pessimistic-emulation.md: moto's server answers with its own host, the
    same for every Region; AWS's URL names the Region, so two Regions' queues never share one."""
    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.server import start_server

    emulator = start_server(FidelitySettings())
    try:
        urls = {}
        for region in ("us-east-1", "us-west-2"):
            sqs = boto3.client(
                "sqs",
                region_name=region,
                endpoint_url=emulator.url,
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            urls[region] = sqs.create_queue(QueueName="q")["QueueUrl"]
            sqs.send_message(QueueUrl=urls[region], MessageBody=region)  # the URL works through the endpoint
            received = sqs.receive_message(QueueUrl=urls[region])["Messages"]
            assert [m["Body"] for m in received] == [region]
    finally:
        emulator.stop()
    assert urls == {region: f"https://sqs.{region}.amazonaws.com/123456789012/q" for region in urls}


class RecordingStorage:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def created(self, endpoint: str, peers: list[str]) -> None:
        self.calls.append(("created", endpoint, peers))

    def deleted(self, endpoint: str) -> None:
        self.calls.append(("deleted", endpoint, []))


def test_dsql_a_pair_shares_storage_made_with_it_and_released_with_its_last_cluster(aws, clock):
    """Row Q12 of docs/pessimistic-emulation.md: the second cluster is created with the first and
    shares its data; the data goes once the last cluster of the pair is being deleted."""
    storage = RecordingStorage()
    aws.dsql.storage = storage
    east, west, a, b = peered_pair(aws, clock)
    ea, eb = f"{a}.dsql.us-east-1.on.aws", f"{b}.dsql.us-west-2.on.aws"
    assert storage.calls == [("created", ea, []), ("created", eb, [ea])]
    east.delete_cluster(identifier=a)
    assert status(east, a) == "PENDING_DELETE" and len(storage.calls) == 2  # the pair still serves through b
    west.delete_cluster(identifier=b)
    assert sorted(storage.calls[2:]) == sorted([("deleted", ea, []), ("deleted", eb, [])])  # in either order


def test_dsql_get_cluster_answers_without_tags_which_list_tags_for_resource_gives(aws):
    """D23"""
    east, _ = dsql_clients()
    created = east.create_cluster(deletionProtectionEnabled=False, tags={"team": "a"})
    assert "tags" not in east.get_cluster(identifier=created["identifier"])
    assert east.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"team": "a"}
