"""How deploy, status and destroy cope with AWS as it behaves and with what users do."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import boto3
import pytest

from tests.deploy.inventory import empty, inventory
from tests.deploy.kinds import default_stack_size

STACK = "task-mgmt-dev"
FUNCTION = f"{STACK}-task-processor"


def manifest_text(tmp_path) -> str:
    return (tmp_path / ".taskmgmt" / "dev.json").read_text()


def test_deploy_absorbs_iam_propagation_with_a_dense_retry(aws, runtime, cli, calls, clock):
    """Row I1 of docs/pessimistic-emulation.md."""
    result = cli("deploy", "--yes")
    assert result.code == 0, result.err
    # Both functions were refused while the new role propagated, then created.
    assert calls.count("CreateFunction") > 2
    assert "waiting for IAM to make the new role visible (usually seconds, at most 5 min)" in result.err
    assert clock.slept >= aws.settings.iam_propagation


def test_deploy_waits_for_lambda_to_leave_pending_before_configuring_it(aws, runtime, cli, calls):
    assert cli("deploy", "--yes").code == 0
    assert calls.count("GetFunctionConfiguration") >= 2  # polled until Active
    lam = boto3.client("lambda", region_name="us-east-1")
    assert lam.get_function_event_invoke_config(FunctionName=FUNCTION)["DestinationConfig"]["OnFailure"][
        "Destination"
    ].endswith(f"{STACK}-task-processor-failures")


def test_status_reports_out_of_band_drift_and_deploy_repairs_it(aws, runtime, cli, clock):
    assert cli("deploy", "--yes").code == 0
    clock.advance(60)
    boto3.client("lambda", region_name="us-east-1").update_function_configuration(
        FunctionName=FUNCTION, MemorySize=1024
    )
    boto3.client("events", region_name="us-west-2").disable_rule(
        Name=f"{STACK}-task-processing", EventBusName=f"{STACK}-task-events"
    )
    boto3.client("logs", region_name="us-east-1").put_retention_policy(
        logGroupName=f"/aws/lambda/{FUNCTION}", retentionInDays=30
    )
    boto3.client("cloudwatch", region_name="us-west-2").delete_alarms(AlarmNames=[f"{FUNCTION}-throttles"])
    clock.advance(60)

    status = cli("status", "--json")
    assert status.code == 1
    bad = {(r["key"], r["health"]): r["problems"] for r in json.loads(status.out)["resources"] if r["health"] != "ok"}
    assert bad == {
        ("lambda_function:task-processor@us-east-1", "drifted"): ["memory: 1024 -> 512"],
        ("event_rule:task-processing@us-west-2", "drifted"): ["state: DISABLED -> ENABLED"],
        ("log_group:task-processor@us-east-1", "drifted"): ["retention_days: 30 -> 7"],
        ("metric_alarm:function-throttles@us-west-2", "missing"): ["missing: deleted outside taskmgmt?"],
    }
    assert cli("deploy", "--yes").code == 0
    assert cli("status").code == 0


def test_function_tags_are_read_with_list_tags_and_repaired(aws, runtime, cli, clock):
    """L7: GetFunction returns tags only to callers explicitly allowed lambda:ListTags; the emulator never does."""
    assert cli("deploy", "--yes").code == 0
    lam = boto3.client("lambda", region_name="us-east-1")
    arn = lam.get_function_configuration(FunctionName=FUNCTION)["FunctionArn"]
    tags = lam.list_tags(Resource=arn)["Tags"]
    lam.untag_resource(Resource=arn, TagKeys=["managed-by"])
    status = cli("status", "--json")
    assert status.code == 1
    bad = {r["key"]: r["problems"] for r in json.loads(status.out)["resources"] if r["health"] != "ok"}
    assert list(bad) == ["lambda_function:task-processor@us-east-1"]
    assert bad["lambda_function:task-processor@us-east-1"][0].startswith("tags:")
    assert cli("deploy", "--yes").code == 0
    assert lam.list_tags(Resource=arn)["Tags"] == tags
    assert cli("status").code == 0


def test_status_table_marks_drift_and_exits_1(aws, runtime, cli, clock):
    assert cli("deploy", "--yes").code == 0
    boto3.client("cloudwatch", region_name="us-east-1").delete_alarms(AlarmNames=[f"{FUNCTION}-errors"])
    result = cli("status")
    assert result.code == 1
    assert "metric_alarm:function-errors" in result.out and "missing" in result.out
    assert "1 of 65 resources missing or drifted" in result.err


def test_a_permission_changed_by_hand_is_replaced_not_duplicated(aws, runtime, cli, clock):
    assert cli("deploy", "--yes").code == 0
    lam = boto3.client("lambda", region_name="us-east-1")
    sid = f"{STACK}-task-processing-invoke"
    lam.remove_permission(FunctionName=FUNCTION, StatementId=sid)
    lam.add_permission(
        FunctionName=FUNCTION,
        StatementId=sid,
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn="arn:aws:events:us-east-1:123456789012:rule/x",
    )
    assert cli("deploy", "--yes").code == 0
    statements = json.loads(lam.get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]
    statements = [s for s in statements if s["Sid"] == sid]  # the broadcast rule's and the APIs' are others
    assert len(statements) == 1
    assert statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(
        f"rule/{STACK}-task-events/{STACK}-task-processing"
    )


def test_destroy_detaches_policies_added_by_hand_before_deleting_the_role(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    iam = boto3.client("iam", region_name="us-east-1")
    arn = iam.create_policy(
        PolicyName="extra",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=f"{STACK}-task-processor-role", PolicyArn=arn)
    iam.put_role_policy(
        RoleName=f"{STACK}-task-processor-role",
        PolicyName="inline-extra",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}],
            }
        ),
    )
    result = cli("destroy", "--yes")
    assert result.code == 0, result.err
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    iam.delete_policy(PolicyArn=arn)  # detached, so deletable


def test_destroy_of_a_protected_environment_changes_nothing_without_force(aws, runtime, cli, calls, tmp_path):
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    before = (tmp_path / ".taskmgmt" / "prod.json").read_text()
    calls.clear()
    refused = cli("destroy", "--yes", "--env", "prod")
    assert refused.code == 2
    assert "deletion protection on" in refused.err and "destroy --force" in refused.err
    assert calls.mutating() == []
    assert (tmp_path / ".taskmgmt" / "prod.json").read_text() == before

    forced = cli("destroy", "--yes", "--force", "--env", "prod")
    assert forced.code == 0, forced.err
    assert inventory("task-mgmt-prod") == empty()
    assert not (tmp_path / ".taskmgmt" / "prod.json").exists()


def test_a_damaged_manifest_is_never_overwritten_and_can_be_rebuilt(aws, runtime, cli, calls, tmp_path):
    assert cli("deploy", "--yes").code == 0
    path = tmp_path / ".taskmgmt" / "dev.json"
    damaged = path.read_text()[:500]
    path.write_text(damaged)
    calls.clear()
    for args in (("deploy", "--yes"), ("status",), ("destroy", "--yes"), ("outputs",)):
        result = cli(*args)
        assert result.code == 2, args
        assert "is damaged" in result.err and "status --rebuild" in result.err
        assert path.read_text() == damaged
    assert calls.mutating() == []

    rebuilt = cli("status", "--rebuild")
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert "rebuilt the manifest from 65 live resources" in rebuilt.err
    assert next(iter((tmp_path / ".taskmgmt").glob("dev.json.replaced-*"))).read_text() == damaged
    calls.clear()
    assert cli("deploy", "--yes").code == 0
    assert calls.mutating() == []


def test_rebuild_finds_the_clusters_by_tag(aws, runtime, cli, tmp_path):
    assert cli("deploy", "--yes").code == 0
    original = json.loads(manifest_text(tmp_path))
    (tmp_path / ".taskmgmt" / "dev.json").unlink()
    assert cli("status", "--rebuild").code == 0
    rebuilt = json.loads(manifest_text(tmp_path))
    ids = {r["key"]: r["id"] for r in original["resources"]}
    assert {r["key"]: r["id"] for r in rebuilt["resources"]} == ids


def test_a_second_run_is_refused_while_the_lock_is_held(aws, runtime, cli, calls, tmp_path):
    from taskmgmt_deploy.core.lock import EnvLock

    holder = EnvLock(tmp_path / ".taskmgmt" / "dev.lock", "dev")
    holder.acquire("deploy")  # another open file description: flock refuses it like another process
    info = holder.read()
    try:
        for args in (("deploy", "--yes"), ("destroy", "--yes")):
            result = cli(*args)
            assert result.code == 2
            assert f"locked by pid {os.getpid()} on {socket.gethostname()} (deploy, started {info.started_at})" in (
                result.err
            )
        assert calls.calls == []
        refused = cli("unlock", "--yes")
        assert refused.code == 2 and "still running" in refused.err
        assert holder.path.exists()
    finally:
        holder.release()
    assert not holder.path.exists()


def test_a_run_that_records_nothing_leaves_no_state_directory(tmp_path):
    from taskmgmt_deploy.core.lock import EnvLock

    state = tmp_path / ".taskmgmt"
    first, other = EnvLock(state / "dev.lock", "dev"), EnvLock(state / "prod.lock", "prod")
    first.acquire("status --rebuild")
    other.acquire("deploy")
    first.release()
    assert [p.name for p in state.iterdir()] == ["prod.lock"]  # another run's lock is in it
    other.release()
    shutil.rmtree(state)
    first.acquire("status --rebuild")
    first.release()
    assert not state.exists()  # this lock made it, and nothing was recorded
    state.mkdir()
    (state / "dev.json").write_text("{}")
    kept = EnvLock(state / "dev.lock", "dev")
    kept.acquire("deploy")
    kept.release()
    assert [p.name for p in state.iterdir()] == ["dev.json"]  # not made by this lock: kept, as is the manifest


def _lock_file(tmp_path, host: str) -> Path:
    lock = tmp_path / ".taskmgmt" / "dev.lock"
    lock.parent.mkdir()
    dead_pid = 2**22 + 7  # above pid_max on Linux: no such process
    lock.write_text(
        json.dumps(
            {"pid": dead_pid, "host": host, "user": "me", "started_at": "2026-11-25T10:00:00Z", "command": "deploy"}
        )
    )
    return lock


def test_a_lock_left_by_a_dead_run_on_this_machine_is_taken_over(aws, runtime, cli, tmp_path):
    lock = _lock_file(tmp_path, socket.gethostname())
    result = cli("deploy", "--yes")
    assert result.code == 0, result.err
    resumed = [line for line in result.err.splitlines() if "interrupted run" in line]
    assert resumed == [
        f"- resuming after an interrupted run: pid {2**22 + 7} on {socket.gethostname()} "
        "(deploy, started 2026-11-25T10:00:00Z) did not finish"
    ]
    assert not lock.exists()  # released at the end of the run
    assert "interrupted" not in cli("deploy", "--yes").err


def test_a_lock_from_another_host_is_refused_until_unlock_clears_it(aws, runtime, cli, tmp_path):
    lock = _lock_file(tmp_path, "build-box-7")
    result = cli("deploy", "--yes")
    assert result.code == 2
    assert "locked by pid 4194311 on build-box-7" in result.err and "cannot be checked" in result.err
    assert "taskmgmt unlock --env dev" in result.err
    assert json.loads(lock.read_text())["host"] == "build-box-7"  # the refused run left it as it was
    assert cli("unlock").code == 2  # asks for confirmation, and there is no terminal here
    cleared = cli("unlock", "--yes")
    assert cleared.code == 0 and not lock.exists()
    assert cli("deploy", "--yes").code == 0
    assert not lock.exists()


def test_credentials_of_another_account_are_refused(aws, runtime, cli, calls, tmp_path):
    assert cli("deploy", "--yes").code == 0
    path = tmp_path / ".taskmgmt" / "dev.json"
    data = json.loads(path.read_text())
    data["account_id"] = "999999999999"
    path.write_text(json.dumps(data))
    calls.clear()
    result = cli("deploy", "--yes")
    assert result.code == 2
    assert "account 123456789012" in result.err and "999999999999" in result.err
    assert calls.mutating() == []


def test_missing_credentials_are_a_user_error(aws, runtime, cli, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = cli("deploy", "--plan")
    assert result.code == 2
    assert "no AWS credentials found" in result.err


def test_changing_regions_under_a_deployed_environment_is_refused(aws, runtime, cli, calls):
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    result = cli("deploy", "--yes", "--secondary-region", "us-east-2", "--witness-region", "us-west-2")
    assert result.code == 2
    assert "was deployed with SECONDARY_REGION='us-west-2'" in result.err
    assert calls.calls == []


def test_destroy_without_yes_and_no_terminal_asks_nothing_and_changes_nothing(aws, runtime, cli, calls):
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    result = cli("destroy")
    assert result.code == 2 and "pass --yes" in result.err
    assert calls.calls == []


def test_deploy_without_yes_and_no_terminal_shows_the_plan_and_changes_nothing(aws, runtime, cli, calls, tmp_path):
    result = cli("deploy")
    assert result.code == 2
    assert "pass --yes" in result.err
    assert "+ iam_role:task-processor@global  (does not exist)" in result.err  # the plan it would have asked about
    assert calls.mutating() == []
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()


DAMAGED = {
    "truncated": lambda text: text[: len(text) // 3],
    "not json": lambda text: "{{{ this is not json",
    "empty file": lambda text: "",
    "a list": lambda text: "[]",
    "unknown schema": lambda text: text.replace('"schema_version": 1', '"schema_version": 99'),
    "no resources": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "resources"}),
    "bad record": lambda text: text.replace('"kind": "iam_role"', '"kinda": "iam_role"'),
    "binary": lambda text: "\x00\xff\xfe garbage",
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_no_command_overwrites_a_damaged_manifest(aws, runtime, cli, calls, tmp_path, damage):
    assert cli("deploy", "--yes").code == 0
    path = tmp_path / ".taskmgmt" / "dev.json"
    damaged = DAMAGED[damage](path.read_text())
    path.write_text(damaged)
    calls.clear()
    for args in (("deploy", "--yes"), ("deploy", "--plan"), ("status",), ("destroy", "--yes"), ("outputs",)):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert "is damaged" in result.err and "status --rebuild" in result.err
        assert len(result.err.strip().splitlines()) == 1
    assert path.read_text() == damaged
    assert calls.mutating() == []


def test_destroy_completes_after_resources_were_deleted_by_hand(aws, runtime, cli, clock):
    assert cli("deploy", "--yes").code == 0
    clock.advance(60)
    boto3.client("lambda", region_name="us-east-1").delete_function(FunctionName=FUNCTION)
    sqs = boto3.client("sqs", region_name="us-west-2")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=f"{STACK}-task-events-dlq")["QueueUrl"])
    boto3.client("cloudwatch", region_name="us-east-1").delete_alarms(AlarmNames=[f"{FUNCTION}-errors"])
    events, bus, rule = (
        boto3.client("events", region_name="us-east-1"),
        f"{STACK}-task-events",
        f"{STACK}-task-processing",
    )
    for name in (rule, f"{STACK}-broadcast"):
        events.remove_targets(Rule=name, EventBusName=bus, Ids=["task-processor"])
        events.delete_rule(Name=name, EventBusName=bus)
    events.delete_event_bus(Name=bus)  # its rules first, as AWS wants (row E5)
    status = cli("status")
    assert status.code == 1
    result = cli("destroy", "--yes")
    assert result.code == 0, result.err
    assert inventory() == empty()


@pytest.mark.parametrize("args", [("status",), ("outputs",), ("smoke",), ("invoke", "--payload", "{}"), ("serve",)])
def test_an_unknown_environment_is_a_user_error(aws, runtime, cli, calls, args):
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    result = cli(*args, "--env", "nosuchenv")
    assert result.code == 2, result.err
    assert "no deployment of environment 'nosuchenv'" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert calls.mutating() == []


def test_destroy_of_an_environment_that_is_gone_exits_0_and_changes_nothing(aws, runtime, cli, calls, tmp_path):
    assert cli("deploy", "--yes").code == 0
    assert cli("destroy", "--yes").code == 0
    calls.clear()
    for args in (("--env", "dev"), ("--env", "nosuchenv")):
        again = cli("destroy", "--yes", *args)
        assert again.code == 0, again.err
        assert "nothing to destroy" in again.err
    assert calls.mutating() == []
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()


def test_destroy_without_a_manifest_finds_the_environment_by_name_and_tags(aws, runtime, cli, tmp_path):
    from tests.deploy.inventory import empty, inventory

    assert cli("deploy", "--yes", "--env", "lost").code == 0
    (tmp_path / ".taskmgmt" / "lost.json").unlink()  # a lost manifest must not leave billable clusters
    result = cli("destroy", "--yes", "--env", "lost")
    assert result.code == 0, result.err
    # all but the package (local) and the schema (it goes with the clusters)
    assert f"destroyed task-mgmt-lost: deleted {default_stack_size() - 2} in " in result.err
    assert inventory() == empty()
