"""A deploy or destroy that dies inside a step: after an AWS call returned, before its result
was recorded. Then one interrupted with Ctrl-C, and two runs at once.

Most kills are in-process: the tap on the tool's AWS clients (tests/deploy/killing.py) raises
a SystemExit on the named call's answer, in the thread that made it, so nothing after it runs
and nothing more is recorded; the rerun is a fresh run on the manifest on disk and the same
emulator. A few kill a forked process with SIGKILL at such a point, to show that a real kill
leaves the same state. One run has one worker, so the kill lands inside exactly one step.

The tables have a row per call of every kind's step; test_every_kind_has_kill_points fails
for a kind without rows (or a reason it has none).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskmgmt_deploy.database.migrate import Migrator
from taskmgmt_deploy.usecases import factory
from tests.conftest import READ_PREFIXES
from tests.deploy.inventory import empty, expected, inventory
from tests.deploy.killing import KILLED, Call, CallTap, Killed, run_cli_and_exit
from tests.deploy.kinds import OPTIONS, Hand, default_stack_size, kinds, with_options
from tests.deploy.test_drift import DRIFT, RIDES_WITH, by_kind

STEPS = default_stack_size()  # every resource of a default dev stack (no options)
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
MIGRATIONS = "Migrator.apply"  # the schema step's one "call": the migrations, on the database


@dataclass(frozen=True)
class KillPoint:
    """The run dies right after the `nth` successful `operation` call that `when` accepts."""

    kind: str  # the step that makes the call
    operation: str
    nth: int = 1
    when: Callable[[Call], bool] = lambda call: True
    env: str = "dev"
    options: bool = False  # the run deploys with every option on (tests/deploy/kinds.py OPTIONS)

    def matches(self, call: Call) -> bool:
        return self.operation in (call.operation, "any") and self.when(call)

    def predicate(self) -> Callable[[Call], bool]:
        seen = {"matches": 0}

        def fire(call: Call) -> bool:
            if self.matches(call):
                seen["matches"] += 1
                return seen["matches"] == self.nth
            return False

        return fire


def region(name: str) -> Callable[[Call], bool]:
    return lambda call: call.region == name


def attribute(name: str, present: bool = True) -> Callable[[Call], bool]:
    return lambda call: (name in call.params.get("Attributes", {})) is present


def parameter(name: str) -> Callable[[Call], bool]:
    return lambda call: name in call.params


def topic_attribute(name: str) -> Callable[[Call], bool]:
    return lambda call: call.params.get("AttributeName") == name


def service(name: str) -> Callable[[Call], bool]:
    return lambda call: call.service == name


def protocol(name: str) -> Callable[[Call], bool]:
    return lambda call: call.params.get("ProtocolType") == name


def http_route(call: Call) -> bool:
    return " " in call.params.get("RouteKey", "")  # "GET /tasks"; a WebSocket route key is one word


def statement(suffix: str) -> Callable[[Call], bool]:
    return lambda call: str(call.params.get("StatementId", "")).endswith(suffix)


def rule_permission(call: Call) -> bool:
    """A statement of a lambda_permission (a rule's); the APIs' steps own theirs."""
    return statement("-task-processing-invoke")(call) or statement("-broadcast-invoke")(call)


# A kill after each call a first deploy makes, per kind (the first of several alike).
DEPLOY_KILLS: dict[str, KillPoint] = {
    "CreateRole": KillPoint("iam_role", "CreateRole"),
    "PutRolePolicy": KillPoint("iam_role_policy", "PutRolePolicy"),
    "CreateCluster primary": KillPoint("dsql_cluster", "CreateCluster", when=region(PRIMARY)),
    "CreateCluster secondary": KillPoint("dsql_cluster", "CreateCluster", when=region(SECONDARY)),
    "UpdateCluster peering": KillPoint("dsql_peering", "UpdateCluster", when=parameter("multiRegionProperties")),
    "CreateQueue": KillPoint("sqs_queue", "CreateQueue"),
    "SetQueueAttributes policy": KillPoint("sqs_queue_policy", "SetQueueAttributes", when=attribute("Policy")),
    "CreateEventBus": KillPoint("event_bus", "CreateEventBus"),
    "PutRule": KillPoint("event_rule", "PutRule"),
    "PutTargets": KillPoint("event_target", "PutTargets"),
    "CreateLogGroup": KillPoint("log_group", "CreateLogGroup"),
    "PutRetentionPolicy": KillPoint("log_group", "PutRetentionPolicy"),
    "CreateFunction": KillPoint("lambda_function", "CreateFunction"),
    "PutFunctionEventInvokeConfig": KillPoint("lambda_invoke_config", "PutFunctionEventInvokeConfig"),
    "AddPermission": KillPoint("lambda_permission", "AddPermission", when=rule_permission),
    "PutMetricAlarm": KillPoint("metric_alarm", "PutMetricAlarm"),
    "PutDashboard": KillPoint("dashboard", "PutDashboard"),
    "migrations": KillPoint("db_schema", MIGRATIONS),
    "CreateTopic": KillPoint("sns_topic", "CreateTopic"),
    "SetTopicAttributes key": KillPoint(
        "sns_topic", "SetTopicAttributes", when=topic_attribute("KmsMasterKeyId"), options=True
    ),
    "Subscribe": KillPoint("sns_subscription", "Subscribe", options=True),
    "PutFunctionConcurrency": KillPoint("lambda_concurrency", "PutFunctionConcurrency", options=True),
    "PutClusterPolicy": KillPoint("dsql_cluster_policy", "PutClusterPolicy", options=True),
    # An API has no idempotency token: the rerun finds it by name and tag. The two kinds share
    # that code; the WebSocket API's point is a part made after its create instead.
    "CreateApi http": KillPoint("http_api", "CreateApi", when=protocol("HTTP")),
    "CreateStage websocket": KillPoint(
        "websocket_api", "CreateStage", when=lambda call: call.params["StageName"] == "live"
    ),
    "CreateRoute http": KillPoint("http_api", "CreateRoute", when=http_route, options=True),  # in a chain with room
}
NO_DEPLOY_CALL = {
    "kms_key": "the key is the user's: the step only reads it (DescribeKey), never creates or changes it",
}

# A kill after each call that only an update makes: the drift row (kind, field) of
# tests/deploy/test_drift.py makes the change the deploy repairs.
UPDATE_KILLS: dict[str, tuple[KillPoint, tuple[str, str]]] = {
    "UpdateAssumeRolePolicy": (KillPoint("iam_role", "UpdateAssumeRolePolicy"), ("iam_role", "trust_policy")),
    "TagRole": (KillPoint("iam_role", "TagRole"), ("iam_role", "tags")),
    "UpdateCluster protection": (
        KillPoint("dsql_cluster", "UpdateCluster", when=parameter("deletionProtectionEnabled")),
        ("dsql_cluster", "deletion_protection"),
    ),
    "SetQueueAttributes": (
        KillPoint("sqs_queue", "SetQueueAttributes", when=attribute("Policy", present=False)),
        ("sqs_queue", "attributes"),
    ),
    "UpdateFunctionCode": (KillPoint("lambda_function", "UpdateFunctionCode"), ("lambda_function", "code_sha256")),
    "UpdateFunctionConfiguration": (
        KillPoint("lambda_function", "UpdateFunctionConfiguration"),
        ("lambda_function", "memory"),
    ),
    "TagResource": (KillPoint("lambda_function", "TagResource"), ("lambda_function", "tags")),
    "RemovePermission": (
        KillPoint("lambda_permission", "RemovePermission", when=rule_permission),
        ("lambda_permission", "principal"),
    ),
    "AddPermission again": (
        KillPoint("lambda_permission", "AddPermission", when=rule_permission),
        ("lambda_permission", "principal"),
    ),
    "SetTopicAttributes policy": (
        KillPoint("sns_topic", "SetTopicAttributes", when=topic_attribute("Policy")),
        ("sns_topic", "policy"),
    ),
    "TagResource topic": (KillPoint("sns_topic", "TagResource", when=service("sns")), ("sns_topic", "tags")),
    "SetTopicAttributes key": (
        KillPoint("sns_topic", "SetTopicAttributes", when=topic_attribute("KmsMasterKeyId"), options=True),
        ("sns_topic", "kms_key_arn"),
    ),
    "AssociateKmsKey": (KillPoint("log_group", "AssociateKmsKey", options=True), ("log_group", "kms_key_arn")),
    "UpdateCluster key": (
        KillPoint("dsql_cluster", "UpdateCluster", when=parameter("kmsEncryptionKey"), options=True),
        ("dsql_cluster", "kms_key_arn"),
    ),
    "PutFunctionConcurrency": (
        KillPoint("lambda_concurrency", "PutFunctionConcurrency", options=True),
        ("lambda_concurrency", "reserved"),
    ),
    "PutClusterPolicy": (
        KillPoint("dsql_cluster_policy", "PutClusterPolicy", options=True),
        ("dsql_cluster_policy", "policy"),
    ),
    "UpdateRoute": (KillPoint("http_api", "UpdateRoute"), ("http_api", "routes")),
    "UpdateStage": (KillPoint("http_api", "UpdateStage"), ("http_api", "stage")),
}

# A kill after each call a change of ALARM_EMAIL makes: the new address is subscribed before
# the old one is removed (a subscription's address cannot change by hand: no drift row).
EMAIL_CHANGE_KILLS: dict[str, KillPoint] = {
    "Subscribe the new address": KillPoint("sns_subscription", "Subscribe", options=True),
    "Unsubscribe the old address": KillPoint("sns_subscription", "Unsubscribe", options=True),
}

# A kill after each call a destroy makes, per kind. The DSQL pair is deleted by the peering's
# step (it runs first, and each DSQL step deletes the whole pair): protection off on both
# (prod), then DeleteCluster on each.
DESTROY_KILLS: dict[str, KillPoint] = {
    "DeleteAlarms": KillPoint("metric_alarm", "DeleteAlarms"),
    "DeleteDashboards": KillPoint("dashboard", "DeleteDashboards"),
    "RemoveTargets": KillPoint("event_target", "RemoveTargets"),
    "RemovePermission": KillPoint("lambda_permission", "RemovePermission", when=rule_permission),
    "DeleteFunctionEventInvokeConfig": KillPoint("lambda_invoke_config", "DeleteFunctionEventInvokeConfig"),
    "SetQueueAttributes policy": KillPoint("sqs_queue_policy", "SetQueueAttributes", when=attribute("Policy")),
    "DeleteRule": KillPoint("event_rule", "DeleteRule"),
    "DeleteFunction": KillPoint("lambda_function", "DeleteFunction"),
    "DeleteLogGroup": KillPoint("log_group", "DeleteLogGroup"),
    "DeleteQueue": KillPoint("sqs_queue", "DeleteQueue"),
    "DeleteEventBus": KillPoint("event_bus", "DeleteEventBus"),
    "DeleteRolePolicy": KillPoint("iam_role_policy", "DeleteRolePolicy"),
    "DeleteRole": KillPoint("iam_role", "DeleteRole"),
    "first UpdateCluster": KillPoint("dsql_peering", "UpdateCluster", nth=1, env="prod"),
    "second UpdateCluster": KillPoint("dsql_peering", "UpdateCluster", nth=2, env="prod"),
    "first DeleteCluster": KillPoint("dsql_peering", "DeleteCluster", nth=1, env="prod"),
    "second DeleteCluster": KillPoint("dsql_peering", "DeleteCluster", nth=2, env="prod"),
    "Unsubscribe": KillPoint("sns_subscription", "Unsubscribe", options=True),
    "DeleteTopic": KillPoint("sns_topic", "DeleteTopic"),
    "DeleteFunctionConcurrency": KillPoint("lambda_concurrency", "DeleteFunctionConcurrency", options=True),
    "DeleteClusterPolicy": KillPoint("dsql_cluster_policy", "DeleteClusterPolicy", options=True),
    "RemovePermission http": KillPoint("http_api", "RemovePermission", when=statement("-tasks-invoke")),
    "RemovePermission websocket": KillPoint(
        "websocket_api", "RemovePermission", when=statement("-live-invoke"), options=True
    ),
}
NO_DESTROY_CALL = {
    "kms_key": "the key is the user's: destroy leaves it (its delete makes no call)",
    "dsql_cluster": "the peering's step deletes the pair before the clusters' steps run (see the DSQL rows)",
    "db_schema": "the schema goes with the clusters: its delete makes no call",
}

# The documented multi-Region delete of a protected pair, as the emulator logs it.
PAIR_DELETE = [
    ("UpdateCluster", PRIMARY, "deletionProtectionEnabled=False"),
    ("UpdateCluster", SECONDARY, "deletionProtectionEnabled=False"),
    ("DeleteCluster", PRIMARY, ""),
    ("DeleteCluster", SECONDARY, ""),
]


def test_every_kind_has_kill_points():
    assert {p.kind for p in DEPLOY_KILLS.values()} | set(NO_DEPLOY_CALL) == kinds()
    assert {p.kind for p in DESTROY_KILLS.values()} | set(NO_DESTROY_CALL) == kinds()
    for point, (kind, field) in UPDATE_KILLS.values():
        assert point.kind == kind and field in DRIFT[kind]
        assert point.options or not DRIFT[kind][field].options, "the field exists only with the options on"


# -- in-process kills -----------------------------------------------------------------------


def manifest(env: str = "dev") -> dict[str, Any] | None:
    try:
        return json.loads((Path(".taskmgmt") / f"{env}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def in_flight(env: str = "dev") -> list[tuple[str, str]]:
    """(kind, state) of the records not done: where the run was when it died."""
    return [(r["kind"], r["state"]) for r in (manifest(env) or {"resources": []})["resources"] if r["state"] != "ready"]


def dsql_calls(aws: Any) -> list[tuple[str, str, str]]:
    calls = [(r.operation, r.region, r.change) for r in aws.dsql.requests if r.error is None]
    assert len(calls) == len(aws.dsql.requests), "no DSQL call AWS would refuse"
    return calls


def deployed_with(point: KillPoint, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The inventory a deploy for `point` makes: with every option on where its kind needs one."""
    if not point.options:
        return expected(f"task-mgmt-{point.env}")
    with_options(monkeypatch)
    return expected(f"task-mgmt-{point.env}", email=OPTIONS["ALARM_EMAIL"], cluster_policy=True, reserved=5)


@pytest.fixture
def tap(runtime: factory.Runtime, monkeypatch: pytest.MonkeyPatch) -> CallTap:
    return CallTap().install(runtime, monkeypatch)


def killed(cli: Callable[..., Any], tap: CallTap, point: KillPoint, *args: str) -> Call:
    """Run `taskmgmt ARGS` with one worker until it dies at `point`; the call it died after."""
    with pytest.MonkeyPatch.context() as patch:
        if point.operation == MIGRATIONS:
            original = Migrator.apply

            def apply_then_die(migrator: Migrator) -> list[str]:
                original(migrator)
                raise Killed

            patch.setattr(Migrator, "apply", apply_then_die)
        else:
            tap.kill_after(point.predicate())
        result = cli(*args, "--env", point.env, "--max-workers", "1")
    assert result.code == KILLED, result.err  # it really died, and there
    return tap.fired or Call("postgresql", MIGRATIONS, None, {})


def first_of(points: list[KillPoint]) -> KillPoint:
    """A point that fires at the first call any of `points` (each killing after its first match) accepts."""
    if len(points) == 1:
        return points[0]
    assert all(p.nth == 1 for p in points)
    return KillPoint(points[0].kind, "any", when=lambda call: any(p.matches(call) for p in points), env=points[0].env)


def chains(kills: dict[str, KillPoint], alone: Callable[[KillPoint], bool], size: int = 5) -> dict[str, list[str]]:
    """Kill points in chains that one deploy serves: each run is killed at the first point of its
    chain it reaches, and the run after the last one finishes. A chain holds one point per kind
    (a second call of a kind killed after the first would be made by a rerun, on another path);
    a point `alone` accepts is a chain of its own."""
    solo = [name for name, point in kills.items() if alone(point)]
    grouped: list[list[str]] = []
    for options in (False, True):
        open_chains: list[list[str]] = []
        for name, point in kills.items():
            if name in solo or point.options != options:
                continue
            chain = next((c for c in open_chains if point.kind not in {kills[n].kind for n in c}), None)
            if chain is None:
                chain = []
                open_chains.append(chain)
                grouped.append(chain)
            chain.append(name)
            if len(chain) == size:
                open_chains.remove(chain)
    return {**{" > ".join(chain): chain for chain in grouped}, **{name: [name] for name in solo}}


def run_chain(
    cli: Callable[..., Any], tap: CallTap, points: list[KillPoint], state: str, *args: str
) -> Iterator[tuple[Call, int]]:
    """Run `taskmgmt ARGS` until each point killed one run: after each death, the call it died
    after and a mark of the calls made so far."""
    waiting, unfinished = list(points), set()
    while waiting:
        call = killed(cli, tap, first_of(waiting), *args)
        point = next(p for p in waiting if p.matches(call)) if len(waiting) > 1 else waiting[0]
        # this point's change, and the earlier runs' ones this run had not come back to yet
        now = set(in_flight(point.env))
        assert (point.kind, state) in now and now <= unfinished | {(point.kind, state)}, (point, now)
        unfinished = now
        waiting.remove(point)
        yield call, tap.mark()


# A DSQL create is rerun at once, before the cluster is listed (D15), and the migrations' kill is
# no AWS call: each is alone.
DEPLOY_CHAINS = chains(DEPLOY_KILLS, alone=lambda point: point.operation in ("CreateCluster", MIGRATIONS))


@pytest.mark.parametrize("chain", list(DEPLOY_CHAINS))
def test_deploy_killed_after_a_call_returned_converges_and_creates_nothing_twice(
    aws, runtime, cli, tap, monkeypatch, chain
):
    # docs/pessimistic-emulation.md row D15 (the cluster is found again by its token)
    points = [DEPLOY_KILLS[name] for name in DEPLOY_CHAINS[chain]]
    wanted = deployed_with(points[0], monkeypatch)
    died = []
    for call, mark in run_chain(cli, tap, points, "creating", "deploy", "--yes"):
        died.append((call, mark))
        tokens = [r["token"] for r in manifest()["resources"] if r["state"] == "creating"]
        assert tokens and all(tokens), "a create records its idempotency token before it starts"
    token = next(r["token"] for r in manifest()["resources"] if r["state"] == "creating")
    requests = len(aws.dsql.requests)
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    assert inventory() == wanted
    assert in_flight() == []
    if points[0].operation == "CreateCluster":
        # Not listed yet (D15), so not found by tag: created again with the recorded token,
        # which returns the same cluster.
        def creates(requests: list[Any]) -> list[Any]:
            return [r for r in requests if r.operation == "CreateCluster" and r.region == died[0][0].region]

        (first,), (again,) = creates(aws.dsql.requests[:requests]), creates(aws.dsql.requests[requests:])
        assert (again.token, again.identifier) == (first.token, first.identifier) == (token, first.identifier)
        return
    for call, mark in died:
        assert call.target not in {c.target for c in tap.since(mark)}, f"a later run repeated {call}"


UPDATE_GROUPS = by_kind(
    list(UPDATE_KILLS),
    lambda name: UPDATE_KILLS[name][0].options,
    kind=lambda name: RIDES_WITH.get(UPDATE_KILLS[name][0].kind, UPDATE_KILLS[name][0].kind),
)


@pytest.mark.parametrize("group", list(UPDATE_GROUPS))
def test_deploy_killed_after_an_update_returned_converges(aws, runtime, cli, clock, tap, monkeypatch, group):
    # One deploy serves the group: each point's change is repaired before the next is made.
    points = [UPDATE_KILLS[name] for name in UPDATE_GROUPS[group]]
    wanted = deployed_with(points[0][0], monkeypatch)
    assert cli("deploy", "--yes").code == 0
    hand = Hand(aws, clock)
    for point, (kind, field) in points:
        hand.settle()
        DRIFT[kind][field].change(hand)
        hand.settle()
        call = killed(cli, tap, point, "deploy", "--yes")
        assert in_flight() == [(point.kind, "updating")], point
        mark = tap.mark()
        again = cli("deploy", "--yes")
        assert again.code == 0, again.err
        assert call.target not in {c.target for c in tap.since(mark)}, point
        status = cli("status", "--json")
        assert status.code == 0, [r for r in json.loads(status.out)["resources"] if r["health"] != "ok"]
        assert inventory() == wanted, point


@pytest.mark.parametrize("name", list(EMAIL_CHANGE_KILLS))
def test_deploy_killed_while_the_alarm_email_changes_converges_to_the_new_address_alone(
    aws, runtime, cli, tap, monkeypatch, name
):
    point = EMAIL_CHANGE_KILLS[name]
    deployed_with(point, monkeypatch)
    assert cli("deploy", "--yes").code == 0
    monkeypatch.setenv("ALARM_EMAIL", "oncall@example.com")
    call = killed(cli, tap, point, "deploy", "--yes")
    assert in_flight() == [("sns_subscription", "updating")]
    mark = tap.mark()
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    # One subscription per region, to the new address: none lost, none doubled, the old one gone.
    assert inventory() == expected(email="oncall@example.com", cluster_policy=True, reserved=5)
    if point.operation == "Unsubscribe":
        assert call.target not in {c.target for c in tap.since(mark)}


# The pair's points count calls from the start of a run (nth): each is alone.
DESTROY_CHAINS = chains(DESTROY_KILLS, alone=lambda point: point.nth > 1 or point.env != "dev")


@pytest.mark.parametrize("chain", list(DESTROY_CHAINS))
def test_destroy_killed_after_a_call_returned_finishes_when_run_again(aws, runtime, cli, tap, monkeypatch, chain):
    # docs/pessimistic-emulation.md row D11
    points = [DESTROY_KILLS[name] for name in DESTROY_CHAINS[chain]]
    env = points[0].env
    deployed_with(points[0], monkeypatch)
    assert cli("deploy", "--yes", "--env", env).code == 0
    aws.dsql.requests.clear()
    for _ in run_chain(cli, tap, points, "deleting", "destroy", "--yes", "--force"):
        pass
    made = dsql_calls(aws)
    aws.dsql.requests.clear()
    again = cli("destroy", "--yes", "--force", "--env", env)
    assert again.code == 0, again.err
    assert inventory(f"task-mgmt-{env}") == empty()
    assert manifest(env) is None
    if points[-1].kind == "dsql_peering":  # the pair's delete goes on where it stopped
        k = len(made)
        assert made == PAIR_DELETE[:k] and dsql_calls(aws) == PAIR_DELETE[k:]


# A sample of the kill points with the state in S3 (TASKMGMT_STATE=s3://...): the rerun reads it there.
# The destroy point's twin runs inside tests/deploy/test_s3_state.py's lifecycle (one deploy fewer).
S3_STATE = "s3://crash-state/taskmgmt"


def s3_manifest(env: str = "dev") -> dict[str, Any] | None:
    import boto3

    s3 = boto3.client("s3", region_name=PRIMARY)
    try:
        return json.loads(s3.get_object(Bucket="crash-state", Key=f"taskmgmt/{env}.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def test_a_deploy_killed_with_the_state_in_s3_converges_when_run_again(aws, runtime, cli, tap, monkeypatch):
    assert cli("state", "init", S3_STATE).code == 0
    monkeypatch.setenv("TASKMGMT_STATE", S3_STATE)
    point = DEPLOY_KILLS["CreateCluster primary"]
    killed(cli, tap, point, "deploy", "--yes")
    assert manifest() is None  # nothing local
    stopped = [(r["kind"], r["state"]) for r in s3_manifest()["resources"] if r["state"] != "ready"]
    assert stopped == [(point.kind, "creating")]  # the intent was durable before the call
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    assert inventory() == expected()
    assert {r["state"] for r in s3_manifest()["resources"]} == {"ready"}


def test_kill_points_are_distinct_calls_of_a_real_run(aws, runtime, cli, tap, monkeypatch):
    """Each kill point names a call a deploy (or destroy) really makes, and no two the same call."""
    with_options(monkeypatch)
    assert cli("deploy", "--yes", "--env", "prod", "--max-workers", "1").code == 0
    deploy_calls = tap.since(0)
    mark = tap.mark()
    assert cli("destroy", "--yes", "--force", "--env", "prod", "--max-workers", "1").code == 0
    destroy_calls = tap.since(mark)
    for points, calls in ((DEPLOY_KILLS, deploy_calls), (DESTROY_KILLS, destroy_calls)):
        positions = {}
        for name, point in points.items():
            if point.operation == MIGRATIONS:
                continue
            fire = point.predicate()
            positions[name] = next((i for i, call in enumerate(calls) if fire(call)), None)
            assert positions[name] is not None, f"{name}: no such call in the run"
        assert len(set(positions.values())) == len(positions), positions


# -- real kills, Ctrl-C, and two runs at once --------------------------------------------------
# The state lives in a moto server (made AWS-like) in this test process; each deploy or destroy
# under test is a forked process talking to it over HTTP, so it can be killed for real.

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    """moto's server with the fidelity layer; its AWS-like delays are zero: time is not the subject here."""
    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.server import start_server

    settings = FidelitySettings(
        iam_propagation=0, lambda_settle=0, dsql_activation=0, dsql_deletion=0, dsql_update=0, dsql_listing=0
    )
    emulator = start_server(settings)
    yield emulator.url, emulator.fidelity
    emulator.stop()


@pytest.fixture
def endpoint(server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, runtime: factory.Runtime) -> Iterator[str]:
    import urllib.request

    url, _ = server
    # a fresh account: moto's reset resets the fidelity layer's state with moto's
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url


def live(endpoint: str, stack: str = "task-mgmt-dev") -> dict[str, list[Any]]:
    return inventory(stack, endpoint_url=endpoint, **CREDENTIALS)


def in_child(args: list[str], install: Callable[[], None]) -> int:
    """Fork; the child installs its hooks and runs `taskmgmt ARGS`, its output in child.log.
    Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest

        def prepare() -> None:
            log = os.open("child.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            install()

        run_cli_and_exit(args, prepare)
    _, status = os.waitpid(pid, 0)
    return status


def sigkill_after(point: KillPoint) -> Callable[[], None]:
    def install() -> None:
        tap = CallTap(kill=lambda: os.kill(os.getpid(), signal.SIGKILL)).install(factory.RUNTIME)
        tap.kill_after(point.predicate())

    return install


def before_each_mutation(hook: Callable[[], None]) -> Callable[[], None]:
    def install() -> None:
        original = factory.RUNTIME.session_factory

        def before_call(event_name: str, **_: Any) -> None:
            if not event_name.split(".")[2].startswith(READ_PREFIXES):
                hook()

        def session(settings: Any) -> Any:
            made = original(settings)
            made.events.register("before-call", before_call)
            return made

        factory.RUNTIME.session_factory = session

    return install


def test_a_deploy_sigkilled_after_create_cluster_is_resumed_without_unlock(endpoint, cli):
    status = in_child(["deploy", "--yes", "--max-workers", "1"], sigkill_after(DEPLOY_KILLS["CreateCluster primary"]))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert in_flight() == [("dsql_cluster", "creating")]
    again = cli("deploy", "--yes")  # the kernel released the dead run's lock: no unlock
    assert again.code == 0, again.err
    assert "resuming after an interrupted run" in again.err
    assert live(endpoint) == expected()
    assert in_flight() == []


def test_a_destroy_sigkilled_after_the_first_delete_cluster_finishes_when_run_again(server, endpoint, cli):
    # docs/pessimistic-emulation.md row D11
    fidelity = server[1]
    assert cli("deploy", "--yes", "--env", "prod").code == 0
    fidelity.dsql.requests.clear()
    status = in_child(
        ["destroy", "--yes", "--force", "--env", "prod", "--max-workers", "1"],
        sigkill_after(DESTROY_KILLS["first DeleteCluster"]),
    )
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert dsql_calls(fidelity) == PAIR_DELETE[:3]
    fidelity.dsql.requests.clear()
    again = cli("destroy", "--yes", "--force", "--env", "prod")  # no unlock
    assert again.code == 0, again.err
    assert "resuming after an interrupted run" in again.err
    assert dsql_calls(fidelity) == PAIR_DELETE[3:]
    assert live(endpoint, "task-mgmt-prod") == empty()


def test_ctrl_c_finishes_the_call_in_flight_saves_and_exits_130(endpoint, cli):
    mutations = {"seen": 0}

    def interrupt() -> None:
        mutations["seen"] += 1
        if mutations["seen"] == 6:
            os.kill(os.getpid(), signal.SIGINT)

    status = in_child(["deploy", "--yes"], before_each_mutation(interrupt))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130
    data = manifest()
    assert data is not None and data["resources"]  # flushed, and valid JSON
    assert in_flight() == []  # what was in flight finished and was recorded
    done = len(data["resources"])
    assert done < STEPS
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    assert f"deployed task-mgmt-dev: created {STEPS - done}, updated 0, unchanged {done} in " in again.err
    assert live(endpoint) == expected()


def test_a_second_deploy_or_destroy_is_refused_while_one_runs(endpoint, cli, tmp_path):
    read_end, write_end = os.pipe()

    def block() -> None:
        os.close(write_end)
        os.read(read_end, 1)  # hold the lock until the test lets go

    pid = os.fork()
    if pid == 0:
        status = in_child(["deploy", "--yes"], before_each_mutation(block))
        os._exit(0 if os.WIFSIGNALED(status) else 1)
    os.close(write_end)
    lock = tmp_path / ".taskmgmt" / "dev.lock"

    def holder_written() -> str:  # the holder creates the file, then writes who it is
        return lock.read_text() if lock.exists() else ""

    deadline = time.monotonic() + 60
    while not holder_written().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = json.loads(lock.read_text())
    for args in (("deploy", "--yes"), ("destroy", "--yes")):
        refused = cli(*args)
        assert refused.code == 2
        assert (
            f"locked by pid {holder['pid']} on {holder['host']} (deploy, started {holder['started_at']})" in refused.err
        )
    os.kill(holder["pid"], signal.SIGKILL)  # the deploy dies holding the lock
    os.waitpid(pid, 0)
    resumed = cli("deploy", "--yes")
    assert resumed.code == 0, resumed.err
    assert f"resuming after an interrupted run: pid {holder['pid']}" in resumed.err


def test_unlock_asks_for_confirmation(cli, tmp_path, monkeypatch):
    from taskmgmt_deploy.cli.common import console

    lock = tmp_path / ".taskmgmt" / "dev.lock"
    lock.parent.mkdir()
    lock.write_text(
        json.dumps(
            {
                "pid": 2**22 + 11,
                "host": socket.gethostname(),
                "user": "me",
                "started_at": "2026-11-25T10:00:00Z",
                "command": "deploy",
            }
        )
    )
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr(console.err, "input", lambda prompt: next(answers))
    declined = cli("unlock")
    assert declined.code == 2 and lock.exists()
    accepted = cli("unlock")
    assert accepted.code == 0 and not lock.exists()
