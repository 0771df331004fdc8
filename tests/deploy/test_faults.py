"""Faults AWS produces on bad days, injected in the emulator; the tool must absorb them."""

from __future__ import annotations

import itertools
import json

import boto3
import pytest
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend

from taskmgmt_deploy.emulator.fidelity import FidelitySettings
from taskmgmt_deploy.emulator.patching import Patches
from tests.deploy.faults import ThrottleInjector, backend_fault, botocore_sleeps_on
from tests.deploy.inventory import empty, expected, inventory

STACK = "task-mgmt-dev"
FUNCTION = f"{STACK}-task-processor"


@pytest.mark.filterwarnings("ignore:Exception\\(Throttled\\):UserWarning")  # codes IAM's model lacks
def test_deploy_and_destroy_complete_under_a_throttling_storm(aws, runtime, cli, clock, monkeypatch):
    botocore_sleeps_on(clock, monkeypatch)
    with ThrottleInjector(rate=0.3).installed() as storm:
        deployed = cli("deploy", "--yes")
        assert deployed.code == 0, deployed.err
        storm.enabled = False
        assert inventory() == expected()
        storm.enabled = True
        destroyed = cli("destroy", "--yes")
        assert destroyed.code == 0, destroyed.err
        storm.enabled = False
        assert inventory() == empty()
    injected, total = sum(storm.injected.values()), sum(storm.injected.values()) + sum(storm.passed.values())
    assert 0.2 < injected / total < 0.4, (injected, total)
    # every service with more than a handful of calls was throttled (STS, with two calls, may not be)
    assert {"dsql", "awslambda", "iam", "events", "sqs", "logs", "cloudwatch"} <= set(storm.injected)


class AttemptLog:
    """When each call was attempted, per region."""

    def __init__(self, clock):
        self.clock, self.times = clock, {}

    def record(self, request_signer, **kwargs):
        self.times.setdefault(request_signer.region_name, []).append(self.clock.now())


@pytest.fixture
def fidelity_settings():
    return FidelitySettings(iam_propagation=45.0)


def test_a_role_that_takes_45_seconds_to_propagate(aws, runtime, cli, clock, calls):
    attempts = AttemptLog(clock)
    original = runtime.session_factory

    def session(settings):
        made = original(settings)
        made.events.register("before-call.lambda.CreateFunction", attempts.record)
        return made

    runtime.session_factory = session
    result = cli("deploy", "--yes", "--max-workers", "1")
    assert result.code == 0, result.err
    first_function = attempts.times["us-east-1"]
    gaps = [b - a for a, b in itertools.pairwise(first_function)]
    assert first_function[-1] - first_function[0] >= 45.0 - 1  # worked once the role was assumable
    assert gaps[0] <= 0.6  # dense at first
    assert max(gaps) <= 2.5  # never sleeps long: a propagated role is noticed within seconds
    assert len(first_function) < 60  # and bounded
    assert len(attempts.times["us-west-2"]) < len(first_function)  # by then the role had propagated


def test_update_function_configuration_after_the_role_was_recreated(aws, runtime, cli, clock, calls):
    assert cli("deploy", "--yes").code == 0
    iam = boto3.client("iam", region_name="us-east-1")
    role = f"{STACK}-task-processor-role"
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=policy)
    iam.delete_role(RoleName=role)
    clock.advance(120)
    calls.clear()
    result = cli("deploy", "--yes", "--lambda-memory", "1024")
    assert result.code == 0, result.err
    assert calls.count("UpdateFunctionConfiguration") > 2  # refused while the new role propagated
    config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(FunctionName=FUNCTION)
    assert config["MemorySize"] == 1024


def test_a_propagation_that_never_ends_fails_in_bounded_time(aws, runtime, cli, clock, fidelity_settings):
    aws.iam.propagation = 10 * 3600.0
    start = clock.now()
    result = cli("deploy", "--yes")
    assert result.code == 1
    assert "cannot be assumed" in result.err
    assert clock.now() - start < 15 * 60  # gave up after its deadline, did not wait for hours


def test_deploy_waits_while_another_update_is_in_progress(aws, runtime, cli, clock, calls):
    assert cli("deploy", "--yes").code == 0
    clock.advance(60)
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.update_function_configuration(FunctionName=FUNCTION, Timeout=30)  # someone else, just now
    assert lam.get_function_configuration(FunctionName=FUNCTION)["LastUpdateStatus"] == "InProgress"
    calls.clear()
    result = cli("deploy", "--yes")
    assert result.code == 0, result.err
    assert lam.get_function_configuration(FunctionName=FUNCTION)["Timeout"] == 60
    # It waited for the other update to finish: its one update was accepted at once (the
    # emulator refuses an update while another is in progress, row L2).
    assert calls.count("UpdateFunctionConfiguration") == 1
    lambda_calls = [op for service, op in calls.calls if service == "lambda"]
    update = lambda_calls.index("UpdateFunctionConfiguration")
    assert lambda_calls[:update].count("GetFunctionConfiguration") >= 2  # polled until not InProgress


def test_resource_conflicts_on_updates_are_retried(aws, runtime, cli, clock, calls):
    assert cli("deploy", "--yes").code == 0
    clock.advance(60)
    refusals = {"left": 3}

    def busy(backend, function_name, *args, **kwargs):
        if refusals["left"]:
            refusals["left"] -= 1
            return LambdaClientError(
                "ResourceConflictException",
                "The operation cannot be performed at this time. An update is in progress "
                f"for resource: {function_name}",
            )
        return None

    calls.clear()
    with backend_fault(LambdaBackend, "update_function_configuration", busy):
        result = cli("deploy", "--yes", "--lambda-memory", "768")
    assert result.code == 0, result.err
    assert refusals["left"] == 0
    assert calls.count("UpdateFunctionConfiguration") == 2 + 3


def test_put_targets_that_answers_200_but_refuses_its_entry_fails_the_deploy(aws, runtime, cli, tmp_path):
    """EventBridge answers PutTargets with 200 and FailedEntryCount; a refused target is not a target."""
    from moto.events.responses import EventsHandler

    def refuse(original, handler):
        (target,) = handler._get_param("Targets")
        failed = {"TargetId": target["Id"], "ErrorCode": "ConcurrentModificationException", "ErrorMessage": "busy"}
        return json.dumps({"FailedEntryCount": 1, "FailedEntries": [failed]}), handler.response_headers

    with Patches() as patches:
        patches.around(EventsHandler, "put_targets", refuse)
        refused = cli("deploy", "--yes")
    assert refused.code == 1
    assert "PutTargets refused 1 entries (ConcurrentModificationException: busy)" in refused.err
    records = json.loads((tmp_path / ".taskmgmt" / "dev.json").read_text())["resources"]
    assert {r["state"] for r in records if r["kind"] == "event_target"} <= {"creating"}  # never recorded as made
    assert cli("deploy", "--yes").code == 0
    assert inventory() == expected()
