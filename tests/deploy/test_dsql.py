"""The DSQL pair as the deploy creates and destroy deletes it, under the emulator's section D.

Which DSQL calls a run made is read from the emulator's request log: (operation, region,
what an update asked for). us-east-1 holds the primary cluster, us-west-2 the secondary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from taskmgmt_deploy.usecases import factory
from tests.deploy.faults import backend_fault
from tests.deploy.inventory import empty, inventory

STACK = "task-mgmt-dev"
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
OFF = "deletionProtectionEnabled=False"


def unprotect(region: str) -> tuple[str, str, str]:
    return ("UpdateCluster", region, OFF)


def delete(region: str) -> tuple[str, str, str]:
    return ("DeleteCluster", region, "")


def dsql_calls(aws: Any) -> list[tuple[str, str, str]]:
    """The emulator's log so far, refused calls included (as a 4th element naming the error)."""
    return [
        (r.operation, r.region, r.change) if r.error is None else (r.operation, r.region, r.change, r.error)
        for r in aws.dsql.requests
    ]


def cluster(region: str) -> dict[str, Any]:
    dsql = boto3.client("dsql", region_name=region)
    return dsql.get_cluster(identifier=dsql.list_clusters()["clusters"][0]["identifier"])


def by_hand(region: str, **update: Any) -> None:
    dsql = boto3.client("dsql", region_name=region)
    identifier = cluster(region)["identifier"]
    if update:
        dsql.update_cluster(identifier=identifier, **update)
    else:
        dsql.delete_cluster(identifier=identifier)


def forget(tmp_path: Any, env: str, kind: str) -> None:
    """Lose the manifest records of one kind, as a crash or a hand edit might."""
    path = tmp_path / ".taskmgmt" / f"{env}.json"
    data = json.loads(path.read_text())
    data["resources"] = [r for r in data["resources"] if r["kind"] != kind]
    path.write_text(json.dumps(data))


@pytest.fixture
def dsql_answers(runtime: factory.Runtime, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every DSQL answer the tool received: (operation, parsed response)."""
    answers: list[tuple[str, dict[str, Any]]] = []
    original = runtime.session_factory

    def session(settings: Any) -> Any:
        made = original(settings)
        made.events.register("after-call.dsql", lambda parsed, model, **kw: answers.append((model.name, dict(parsed))))
        return made

    monkeypatch.setattr(runtime, "session_factory", session)
    return answers


# -- create: the endpoint never blocks peering ---------------------------------------------


def test_deploy_derives_the_endpoint_of_a_cluster_that_does_not_report_one(aws, runtime, cli, calls, dsql_answers):
    deployed = cli("deploy", "--yes")
    assert deployed.code == 0, deployed.err
    # The emulator's choice this relies on (D3): no endpoint until ACTIVE.
    created = [answer for operation, answer in dsql_answers if operation == "CreateCluster"]
    assert len(created) == 2 and not any("endpoint" in answer for answer in created)
    # Create A -> create B -> update A, as AWS's examples do: nothing polled in between
    # but the peering's one look at A's peers.
    sequence = [op for service, op in calls.calls if service == "dsql"]
    first, update = sequence.index("CreateCluster"), sequence.index("UpdateCluster")
    assert sequence[first:update] == ["CreateCluster", "CreateCluster", "GetCluster"]
    assert [c[:2] for c in dsql_calls(aws)] == [
        ("CreateCluster", PRIMARY),
        ("CreateCluster", SECONDARY),
        ("UpdateCluster", PRIMARY),
    ]
    # What was derived is what AWS reports once ACTIVE: the function, the manifest's
    # outputs and status all agree, and a second deploy changes nothing.
    outputs = json.loads(cli("outputs", "--json").out)["regions"]
    for region in (PRIMARY, SECONDARY):
        reported = cluster(region)["endpoint"]
        env = boto3.client("lambda", region_name=region).get_function_configuration(
            FunctionName=f"{STACK}-task-processor"
        )["Environment"]["Variables"]
        assert env["DSQL_ENDPOINT"] == outputs[region]["cluster_endpoint"] == reported
    assert cli("status").code == 0
    calls.clear()
    assert cli("deploy", "--yes").code == 0
    assert calls.mutating() == []


def test_an_endpoint_reported_later_replaces_the_derived_one_in_one_deploy(aws, runtime, cli, calls):
    # docs/pessimistic-emulation.md row D4
    assert cli("deploy", "--yes").code == 0
    primary = cluster(PRIMARY)
    moved = f"{primary['identifier']}.dsql-x1y2.{PRIMARY}.on.aws"  # a form the connector also accepts
    aws.dsql.states[primary["arn"]].endpoint = moved
    drifted = json.loads(cli("status", "--json").out)
    bad = {r["key"]: r["problems"] for r in drifted["resources"] if r["health"] != "ok"}
    assert list(bad) == ["lambda_function:task-processor@us-east-1"]
    assert "environment" in bad["lambda_function:task-processor@us-east-1"][0]
    assert cli("deploy", "--yes").code == 0
    env = boto3.client("lambda", region_name=PRIMARY).get_function_configuration(
        FunctionName=f"{STACK}-task-processor"
    )["Environment"]["Variables"]
    assert env["DSQL_ENDPOINT"] == moved
    assert json.loads(cli("outputs", "--json").out)["regions"][PRIMARY]["cluster_endpoint"] == moved
    assert cli("status").code == 0
    calls.clear()
    assert cli("deploy", "--yes").code == 0
    assert calls.mutating() == []


# -- destroy: the documented multi-Region delete, from any state ----------------------------


def destroy(cli: Callable[..., Any], aws: Any, *args: str) -> list[tuple[str, str, str]]:
    """Run destroy; return the DSQL calls it made."""
    aws.dsql.requests.clear()
    result = cli("destroy", "--yes", *args)
    assert result.code == 0, result.err
    assert inventory() == empty()
    return dsql_calls(aws)


def test_destroy_turns_protection_off_on_both_before_deleting_either(aws, runtime, cli):
    # docs/pessimistic-emulation.md row D12
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    made = destroy(cli, aws, "--force", "--env", "prod")
    assert made == [unprotect(PRIMARY), unprotect(SECONDARY), delete(PRIMARY), delete(SECONDARY)]


@pytest.mark.parametrize("lost", [("dsql_peering",), ("dsql_peering", "dsql_cluster")])
def test_destroy_with_lost_records_finds_the_pair_by_tag_and_deletes_it_the_same_way(aws, runtime, cli, tmp_path, lost):
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    for kind in lost:
        forget(tmp_path, "prod", kind)
    made = destroy(cli, aws, "--force", "--env", "prod")
    assert made == [unprotect(PRIMARY), unprotect(SECONDARY), delete(PRIMARY), delete(SECONDARY)]


def cluster_step() -> Any:
    from taskmgmt_deploy.aws.clients import AwsClients
    from taskmgmt_deploy.steps.dsql import DsqlClusterStep

    return DsqlClusterStep(AwsClients(boto3.Session()))


def found(region: str) -> Any:
    """The record destroy's sweep makes for a cluster it finds by tag."""
    from taskmgmt_deploy.aws.finder import record_for_arn

    return record_for_arn(cluster(region)["arn"])


def test_a_cluster_found_by_tag_is_deleted_with_its_peer(aws, runtime, cli):
    from taskmgmt_deploy.core.context import StepContext
    from taskmgmt_deploy.errors import ProtectedError

    assert cli("deploy", "--yes", "--env", "prod").code == 0
    record, step = found(SECONDARY), cluster_step()
    aws.dsql.requests.clear()
    with pytest.raises(ProtectedError):
        step.delete(record, StepContext(clock=runtime.clock))
    assert dsql_calls(aws) == []
    step.delete(record, StepContext(clock=runtime.clock, force=True))
    assert dsql_calls(aws) == [unprotect(SECONDARY), unprotect(PRIMARY), delete(SECONDARY), delete(PRIMARY)]
    assert inventory()["clusters"] == []


def test_both_clusters_of_a_pair_deleted_at_once_are_deleted_once(aws, runtime, cli):
    """The sweep deletes what it finds in parallel: two deletes of one pair race."""
    from concurrent.futures import ThreadPoolExecutor

    from taskmgmt_deploy.core.context import StepContext

    assert cli("deploy", "--yes", "--env", "prod").code == 0
    records, step = [found(PRIMARY), found(SECONDARY)], cluster_step()
    aws.dsql.requests.clear()
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(step.delete, r, StepContext(clock=runtime.clock, force=True)) for r in records]:
            done.result()
    assert inventory()["clusters"] == []
    made = dsql_calls(aws)
    assert sorted(call for call in made if call[0] == "DeleteCluster" and len(call) == 3) == [
        delete(PRIMARY),
        delete(SECONDARY),
    ]
    assert {call[:3] for call in made if call[0] == "UpdateCluster"} == {unprotect(PRIMARY), unprotect(SECONDARY)}
    # The loser of a race is refused (retried) or finds the cluster already gone (done); nothing else fails.
    assert {call[3] for call in made if len(call) == 4} <= {"ConflictException", "ResourceNotFoundException"}


def test_a_cluster_deleted_between_the_read_and_the_unprotect_is_done(runtime):
    """The race above made deterministic: the parallel delete of the pair wins between our read and our update."""
    from botocore.exceptions import ClientError

    from taskmgmt_deploy.core.context import StepContext
    from taskmgmt_deploy.steps.dsql import delete_clusters

    class VanishingCluster:
        def __init__(self) -> None:
            self.gone = False

        def get_cluster(self, identifier: str) -> dict[str, Any]:
            if self.gone:
                raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetCluster")
            return {"identifier": identifier, "status": "ACTIVE", "deletionProtectionEnabled": True}

        def update_cluster(self, **_: Any) -> None:
            self.gone = True
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "UpdateCluster")

        def delete_cluster(self, **_: Any) -> None:
            raise AssertionError("a cluster already gone is not deleted again")

    delete_clusters([(VanishingCluster(), "abc")], StepContext(clock=runtime.clock, force=True))


def test_destroy_turns_protection_off_only_where_it_is_on(aws, runtime, cli, clock):
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    by_hand(SECONDARY, deletionProtectionEnabled=False)
    clock.advance(aws.settings.dsql_update)
    made = destroy(cli, aws, "--force", "--env", "prod")
    assert made == [unprotect(PRIMARY), delete(PRIMARY), delete(SECONDARY)]


@pytest.mark.parametrize("records", ["kept", "lost"])
def test_a_cluster_already_pending_delete_gets_no_second_call(aws, runtime, cli, tmp_path, records):
    assert cli("deploy", "--yes").code == 0
    by_hand(PRIMARY)
    assert cluster(PRIMARY)["status"] == "PENDING_DELETE"
    if records == "lost":
        forget(tmp_path, "dev", "dsql_peering")
    assert destroy(cli, aws) == [delete(SECONDARY)]


def test_a_pair_already_deleting_gets_no_call_at_all(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    by_hand(PRIMARY)
    by_hand(SECONDARY)
    assert destroy(cli, aws) == []


def test_an_unpeered_pair_with_one_cluster_gone_is_deleted(aws, runtime, cli, clock):
    """A deploy that stopped before peering leaves two PENDING_SETUP clusters; one is then deleted by hand."""
    from moto.dsql.exceptions import ValidationException
    from moto.dsql.models import AuroraDSQLBackend

    def refuse_peering(backend: Any, identifier: str, **kwargs: Any) -> Exception | None:
        return ValidationException("injected") if kwargs.get("multi_region_properties") else None

    with backend_fault(AuroraDSQLBackend, "update_cluster", refuse_peering):
        assert cli("deploy", "--yes").code == 1
    assert cluster(PRIMARY)["status"] == cluster(SECONDARY)["status"] == "PENDING_SETUP"
    by_hand(PRIMARY)
    clock.advance(aws.settings.dsql_deletion)
    assert destroy(cli, aws) == [delete(SECONDARY)]


def test_a_protected_cluster_whose_peer_is_already_pending_delete_is_explained(aws, runtime, cli, clock):
    """Unreachable through taskmgmt (it turns protection off on both first), but not by hand."""
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    by_hand(PRIMARY, deletionProtectionEnabled=False)
    clock.advance(aws.settings.dsql_update)
    by_hand(PRIMARY)
    aws.dsql.requests.clear()
    result = cli("destroy", "--yes", "--force", "--env", "prod")
    assert result.code == 1
    assert "deletion protection on and its peer" in result.err and "PENDING_DELETE" in result.err
    assert dsql_calls(aws) == []  # nothing AWS would refuse was even tried
