"""`taskmgmt policy`: every AWS call of a whole lifecycle is allowed by the printed policy, no
statement is there for nothing, and parliament finds nothing of medium severity or worse."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskmgmt_deploy.emulator.policy import Principal, Request, allowed, decide
from tests.deploy.authorization import ACCOUNT, Call, arn, requests
from tests.deploy.test_guard_rails import customer_key

STACK = "task-mgmt-dev"
OPTIONS = (
    "--alarm-email",
    "ops@example.com",
    "--kms-key",
    "alias/taskmgmt",
    "--reserved-concurrency",
    "5",
    "--cluster-policy",
)


class Recorder:
    """Every AWS call made through the tool's sessions: operation, region, parameters, answer,
    and the tags the DSQL cluster it names had before the call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def install(self, session: Any) -> None:
        session.events.register("before-parameter-build", self._before)
        session.events.register("after-call", self._after)

    @staticmethod
    def _before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["recorded_params"] = copy.deepcopy(params)
        context["recorded_tags"] = _cluster_tags(context.get("client_region"), params.get("identifier")) or _api_tags(
            context.get("client_region"), params.get("ApiId")
        )

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls.append(
            Call(
                service=model.service_model.service_name,
                operation=model.name,
                region=context.get("client_region") or "us-east-1",
                params=context.get("recorded_params", {}),
                answer=parsed,
                tags=context.get("recorded_tags") or {},
            )
        )


def _cluster_tags(region: str | None, identifier: str | None) -> dict[str, str]:
    from moto.dsql.models import dsql_backends

    if not (region and identifier):
        return {}
    found = dsql_backends[ACCOUNT][region].clusters.get(identifier)
    return dict(found.tags or {}) if found else {}


def _api_tags(region: str | None, api_id: str | None) -> dict[str, str]:
    from moto.apigatewayv2.models import apigatewayv2_backends

    if not (region and api_id):
        return {}
    backend = apigatewayv2_backends[ACCOUNT][region]
    api = backend.apis.get(api_id)
    return dict(backend.get_tags(api.arn)) if api else {}


@pytest.fixture
def emulator(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """The emulator as a server whose functions run (the smoke test needs them), without AWS's delays."""
    from taskmgmt_deploy.core.clock import SystemClock
    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.server import start_server
    from taskmgmt_deploy.sandbox.runner import FunctionRunner

    runner = FunctionRunner(tmp_path / "functions", {})
    settings = FidelitySettings(
        iam_propagation=0, lambda_settle=0, dsql_activation=0, dsql_deletion=0, dsql_update=0, event_rule_propagation=0
    )
    server = start_server(settings, clock=SystemClock(), invoker=runner)
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    runner.sandbox_env.update(credentials, AWS_ENDPOINT_URL=server.url, TASKMGMT_DATABASE_URL=database_url)
    try:
        yield server
    finally:
        server.stop()
        runner.close()


@pytest.fixture
def recorded(emulator: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    recorder = Recorder()
    made = runtime.session_factory

    def session(settings: Any) -> Any:
        created = made(settings)
        recorder.install(created)
        return created

    runtime.session_factory = session
    return recorder


def customer_keys(endpoint: str) -> None:
    """alias/taskmgmt in both regions, usable by CloudWatch and CloudWatch Logs."""
    for region in ("us-east-1", "us-west-2"):
        customer_key(region, endpoint_url=endpoint)


def strays() -> None:
    """A role and a rule of the environment that no manifest names (a lost manifest, a run of an
    older version): destroy's sweep finds them by name and tags, and must be allowed to remove them."""
    tags = {"taskmgmt:env": "dev", "taskmgmt:prefix": "task-mgmt", "managed-by": "taskmgmt"}
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    boto3.client("iam").create_role(
        RoleName=f"{STACK}-stray", AssumeRolePolicyDocument=json.dumps(trust), Tags=tag_list
    )
    boto3.client("events", region_name="us-east-1").put_rule(
        Name=f"{STACK}-stray", EventBusName=f"{STACK}-task-events", EventPattern='{"source": ["x"]}', Tags=tag_list
    )


def lifecycle(cli: Any) -> dict[str, Any]:
    """preflight, deploy, a redeploy with changes, status, smoke, logs, destroy: what each must do."""
    for args in (
        ("preflight", *OPTIONS),
        ("deploy", "--yes", *OPTIONS),
        (
            "deploy",
            "--yes",
            *OPTIONS[:1],
            "other@example.com",
            *OPTIONS[2:4],
            "--reserved-concurrency",
            "6",
            "--lambda-memory",
            "1024",
            "--cluster-policy",
        ),
        ("status",),
        ("smoke",),
        ("logs", "--since", "1h"),
        ("destroy", "--yes"),
    ):
        if args[0] == "destroy":
            strays()
        result = cli(*args)
        assert result.code == 0, f"{args}: {result.out}{result.err}"
    roles = [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
    rules = boto3.client("events", region_name="us-east-1").list_rules(NamePrefix=STACK)["Rules"]
    assert (roles, rules) == ([], []), "destroy's sweep left the strays"
    printed = cli("policy", "--json", *OPTIONS)
    assert printed.code == 0, printed.err
    return json.loads(printed.out)


def test_every_call_of_a_lifecycle_is_allowed_and_every_statement_is_needed(emulator, recorded, cli):
    customer_keys(emulator.url)
    urllib.request.urlopen(urllib.request.Request(emulator.url + "/moto-api/", method="GET")).read()
    policy = lifecycle(cli)
    needed = [request for call in recorded.calls for request in requests(call)]
    # DSQL checks these with the caller's credentials inside CreateCluster and UpdateCluster (row K2).
    needed += [
        Request(a.action, a.resource, context={"kms:ViaService": a.via}) for a in emulator.fidelity.authorizations
    ]
    # Migrations connect to the primary cluster as admin with a token made locally; AWS checks it
    # at connect time, which the stand-in database does not do.
    primary = next(c for c in recorded.calls if c.operation == "CreateCluster" and c.region == "us-east-1")
    tags = primary.params["tags"]
    needed.append(
        Request(
            "dsql:DbConnectAdmin", primary.answer["arn"], context={f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        )
    )
    # The smoke test's calls over HTTP (signed, not through botocore: not recorded): a task read
    # through each region's HTTP API.
    needed += [
        Request("execute-api:Invoke", arn("execute-api", c.region, f"{c.answer['ApiId']}/$default/GET/tasks/x"))
        for c in recorded.calls
        if c.operation == "CreateApi" and c.params.get("ProtocolType") == "HTTP"
    ]
    assert len({(r.action, r.resource) for r in needed}) > 100

    refused = sorted({f"{r.action} on {r.resource}" for r in needed if not allowed([policy], r)})
    assert refused == []
    for index, statement in enumerate(policy["Statement"]):
        without = {**policy, "Statement": policy["Statement"][:index] + policy["Statement"][index + 1 :]}
        assert any(not allowed([without], r) for r in needed), f"no call needs statement {statement['Sid']}"


def test_with_the_state_in_s3_every_state_call_is_allowed_and_every_state_statement_is_needed(
    aws, runtime, cli, clock, tmp_path, monkeypatch
):
    """The S3 calls of the state alone (a lifecycle's AWS calls do not change with it): a first
    read, a push under the lock, a takeover of an expired lock and its renewal, pull and history."""
    from taskmgmt_deploy.aws.s3state import RENEW_EVERY, S3Lock
    from taskmgmt_deploy.stack.config import S3Url

    recorder = Recorder()
    made = runtime.session_factory
    monkeypatch.setattr(runtime, "session_factory", lambda settings: _recording(made(settings), recorder))
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="team-state")  # `state init`: an admin's
    monkeypatch.setenv("TASKMGMT_STATE", "s3://team-state/taskmgmt")
    assert cli("status").code == 2  # nothing deployed: a read that finds nothing
    (tmp_path / ".taskmgmt").mkdir()
    (tmp_path / ".taskmgmt" / "dev.json").write_text(
        json.dumps({"schema_version": 1, "env": "dev", "account_id": ACCOUNT, "config": {}, "resources": []})
    )
    for args in (("state", "push"), ("state", "pull"), ("state", "history")):
        assert cli(*args).code == 0, args
    session = _recording(boto3.Session(), recorder)
    ticks = iter([False, True])
    held = S3Lock(
        session.client("s3", region_name="us-east-1"),
        S3Url("team-state", "taskmgmt"),
        "taskmgmt/dev.lock",
        "dev",
        clock,
        lambda stop, seconds: next(ticks),
    )
    held.acquire("deploy")
    held._renewer.join()  # one renewal, then stopped
    clock.advance(RENEW_EVERY * 5)
    assert cli("unlock", "--yes").code == 0  # the lease has passed: no --force
    printed = cli("policy", "--json", "--account-id", ACCOUNT)
    policy = json.loads(printed.out)
    needed = [r for call in recorder.calls if call.service == "s3" for r in requests(call)]
    assert {r.action for r in needed} == {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucketVersions",
    }
    assert sorted({f"{r.action} on {r.resource}" for r in needed if not allowed([policy], r)}) == []
    for index, statement in enumerate(policy["Statement"]):
        if statement["Sid"] in (
            "SeeWhetherTheSharedStateExists",
            "ReadAndWriteTheSharedState",
            "ListTheSharedStatesVersions",
        ):
            without = {**policy, "Statement": policy["Statement"][:index] + policy["Statement"][index + 1 :]}
            assert any(not allowed([without], r) for r in needed), f"no call needs statement {statement['Sid']}"


def _recording(session: Any, recorder: Recorder) -> Any:
    recorder.install(session)
    return session


def test_the_policy_is_scoped_to_the_environment(cli):
    policy = json.loads(cli("policy", "--json", "--account-id", ACCOUNT, *OPTIONS).out)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert len(json.dumps(policy, separators=(",", ":"))) <= 10240  # fits an inline role policy
    passing = [s for s in policy["Statement"] if "iam:PassRole" in s["Action"]]
    assert passing == [statements["PassTheFunctionRoleToLambdaOnly"]]
    assert passing[0]["Action"] == ["iam:PassRole"]
    assert passing[0]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/{STACK}-task-processor-role"]
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    from taskmgmt_deploy.stack.policy import STAR

    for statement in policy["Statement"]:
        for resource in statement["Resource"]:
            if resource == "*":
                assert set(statement["Action"]) <= set(STAR)
            elif not any(f":{service}:" in resource for service in ("dsql", "kms", "iam", "apigateway", "execute-api")):
                # ids that are generated: scoped by the environment's tags (or a read), not by name
                assert STACK in resource, f"{statement['Sid']}: {resource}"
    other_env = Request(
        "dsql:DeleteCluster",
        f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/x",
        context={"aws:ResourceTag/taskmgmt:env": "prod", "aws:ResourceTag/taskmgmt:prefix": "task-mgmt"},
    )
    assert decide([policy], other_env) == "implicitDeny"
    other_api = Request(
        "apigateway:DELETE",
        "arn:aws:apigateway:us-east-1::/apis/x",
        context={"aws:ResourceTag/taskmgmt:env": "prod", "aws:ResourceTag/taskmgmt:prefix": "task-mgmt"},
    )
    assert decide([policy], other_api) == "implicitDeny"
    untagged_api = Request("apigateway:POST", "arn:aws:apigateway:us-east-1::/apis")
    assert decide([policy], untagged_api) == "implicitDeny"
    untagged_create = Request("dsql:CreateCluster", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/x")
    assert decide([policy], untagged_create) == "implicitDeny"
    assert not allowed([policy], Request("dsql:DbConnect", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/x", Principal()))


@pytest.mark.parametrize(
    "options",
    [(), OPTIONS, (*OPTIONS, "--state", "s3://team-state/taskmgmt")],
    ids=["default", "all-options", "s3-state"],
)
def test_parliament_finds_nothing_of_medium_severity_or_worse(cli, options):
    from parliament import analyze_policy_string, enhance_finding

    printed = cli("policy", "--json", "--account-id", ACCOUNT, *options)
    findings = [
        enhance_finding(f) for f in analyze_policy_string(printed.out, include_community_auditors=True).findings
    ]
    serious = [(f.issue, f.detail) for f in findings if f.severity in ("MEDIUM", "HIGH", "CRITICAL")]
    assert serious == []
    # What is left: actions parliament's IAM data predates (DSQL's multi-Region and policy
    # actions) and a read with no resource to scope it to.
    assert {f.issue for f in findings} <= {"UNKNOWN_ACTION", "RESOURCE_STAR"}


def test_policy_prints_one_entry_per_statement_and_rejects_a_bad_account(cli):
    listed = cli("policy", "--account-id", ACCOUNT)
    assert listed.code == 0
    assert "PassTheFunctionRoleToLambdaOnly:" in listed.out and "only if: iam:PassedToService" in listed.out
    bad = cli("policy", "--account-id", "12345")
    assert bad.code == 2 and "--account-id '12345' is invalid" in bad.err
