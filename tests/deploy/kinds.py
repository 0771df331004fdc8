"""The resource kinds of the stack, for the tests that go over every kind: crash points
(test_crash.py), drift (test_drift.py) and teardown (test_teardown.py).

Each of those keeps a table keyed by kind, and a completeness test beside it fails for a kind
the tool has (a Step in `factory.make_steps`) that the table lacks: adding a kind to the stack
is adding its rows there. `Hand` is what those rows use to change things outside taskmgmt.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.finder import cluster_tags
from taskmgmt_deploy.core.models import Observed, Resource, refs_in, resolve_refs
from taskmgmt_deploy.core.step import Step
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import StackConfig, load_settings
from taskmgmt_deploy.steps.cloudwatch import ALARM_FIELDS
from taskmgmt_deploy.steps.packaging import PackageBuilder, this_machine
from taskmgmt_deploy.steps.schema import SchemaTarget
from taskmgmt_deploy.usecases.factory import make_steps

# Every option that adds a resource kind or a compared field, as environment variables: the
# tables' rows that need one deploy with all of them (`with_options`), so that every kind exists.
OPTIONS = {
    "ALARM_EMAIL": "ops@example.com",
    "KMS_KEY": "alias/taskmgmt",
    "LAMBDA_RESERVED_CONCURRENCY": "5",
    "DSQL_CLUSTER_POLICY": "true",
}
ACCOUNT = "123456789012"  # the emulator's


def stack_config(env: str = "dev") -> StackConfig:
    """With every option on: the blueprint's keys and names are the same without them."""
    return load_settings({"ENVIRONMENT": env, **OPTIONS}, {}, Path(__file__).parent).stack


def with_options(monkeypatch: Any, **client: Any) -> None:
    """The next runs deploy with every option on: the customer key in both regions (the user's
    to create: taskmgmt never creates keys), and OPTIONS in the environment."""
    from tests.deploy.test_guard_rails import customer_key

    for region in stack_config().regions:
        customer_key(region, OPTIONS["KMS_KEY"], **client)
    for name, value in OPTIONS.items():
        monkeypatch.setenv(name, value)


@functools.cache
def steps() -> dict[str, Step]:
    """Every step the tool has, by kind (wired to nothing: only their pure parts are used)."""
    aws = AwsClients(boto3.Session(aws_access_key_id="x", aws_secret_access_key="x"))
    builder = PackageBuilder(Path("."), Path("."), this_machine())
    return make_steps(aws, builder, SchemaTarget(Path("."), database_url="postgresql://unused"))


def kinds() -> set[str]:
    """The kinds that live outside this machine (the package is a local build)."""
    return {kind for kind, step in steps().items() if not step.local}


def default_stack_size(env: str = "dev") -> int:
    """How many resources a stack has with no option set (what a plain `deploy --yes` makes)."""
    return len(blueprint.build(load_settings({"ENVIRONMENT": env}, {}, Path(__file__).parent).stack))


def resources(env: str = "dev") -> dict[str, Resource]:
    return {res.key: res for res in blueprint.build(stack_config(env))}


class _Differs(dict):  # type: ignore[type-arg]
    """A live state that reports every field, each different from anything wanted."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> object:
        return object()


def compared_fields() -> dict[str, set[str]]:
    """kind -> every field its step's plan compares, over the blueprint with every option on:
    what a plan against a live state that differs everywhere reports as changed."""
    fields: dict[str, set[str]] = {kind: set() for kind in kinds()}
    for res in resources().values():
        if res.kind in fields:
            outputs = {ref.key: {ref.field: f"arn:aws:x:us-east-1:{ACCOUNT}:{ref.key}"} for ref in refs_in(res.spec)}
            live = Observed(outputs={"arn": f"arn:aws:x:us-east-1:{ACCOUNT}:{res.name}"}, live=_Differs())
            change = steps()[res.kind].plan(res, resolve_refs(res.spec, outputs), live)
            fields[res.kind] |= set(change.diff)
    return fields


@dataclass
class Hand:
    """Someone with the console: changes made to the emulator's state outside taskmgmt."""

    aws: Any  # the emulator (Fidelity)
    clock: Any
    env: str = "dev"

    def res(self, key: str) -> Resource:
        return resources(self.env)[key]

    def name(self, key: str) -> str:
        return self.res(key).name

    def client(self, service: str, key: str | None = None, region: str | None = None) -> Any:
        region = region or (self.res(key).region if key else None) or "us-east-1"
        return boto3.client(service, region_name=region)

    @property
    def tags(self) -> dict[str, str]:
        return stack_config(self.env).tags()

    def settle(self) -> None:
        """Let every transition the emulator models finish (a change by hand is not instant)."""
        s = self.aws.settings
        self.clock.advance(max(s.lambda_settle, s.dsql_update, s.iam_propagation, s.event_rule_propagation) + 1)

    # -- reading what is live ---------------------------------------------------------------
    def queue_url(self, key: str) -> str:
        return self.client("sqs", key).get_queue_url(QueueName=self.name(key))["QueueUrl"]

    def queue_arn(self, key: str) -> str:
        attributes = self.client("sqs", key).get_queue_attributes(
            QueueUrl=self.queue_url(key), AttributeNames=["QueueArn"]
        )
        return attributes["Attributes"]["QueueArn"]

    def cluster(self, key: str) -> dict[str, Any]:
        """The live cluster a cluster key stands for, found by its tags."""
        dsql = self.client("dsql", key)
        for summary in dsql.list_clusters()["clusters"]:
            cluster = dsql.get_cluster(identifier=summary["identifier"])
            if cluster_tags(dsql, cluster).get("taskmgmt:key") == key:
                return cluster
        raise AssertionError(f"no live cluster for {key}")

    def target(self, key: str) -> dict[str, Any]:
        spec = self.res(key).spec
        listed = self.client("events", key).list_targets_by_rule(Rule=spec["rule_name"], EventBusName=spec["bus_name"])
        return next(t for t in listed["Targets"] if t["Id"] == self.name(key))

    def put_target(self, key: str, **changes: Any) -> None:
        """Put the target back with `changes` (None removes a field)."""
        spec = self.res(key).spec
        target = {k: v for k, v in {**self.target(key), **changes}.items() if v is not None}
        answer = self.client("events", key).put_targets(
            Rule=spec["rule_name"], EventBusName=spec["bus_name"], Targets=[target]
        )
        assert answer["FailedEntryCount"] == 0, answer

    def function(self, key: str) -> dict[str, Any]:
        return self.client("lambda", key).get_function_configuration(FunctionName=self.name(key))

    def permission(self, key: str) -> dict[str, Any]:
        function = self.res(key).spec["function_name"]
        policy = json.loads(self.client("lambda", key).get_policy(FunctionName=function)["Policy"])
        return next(s for s in policy["Statement"] if s["Sid"] == self.name(key))

    def replace_permission(self, key: str, **changes: Any) -> None:
        """Remove the statement and add it again with `changes` to AddPermission's arguments."""
        lam, function, sid = self.client("lambda", key), self.res(key).spec["function_name"], self.name(key)
        statement = self.permission(key)
        current = {
            "Action": statement["Action"],
            "Principal": statement["Principal"]["Service"],
            "SourceArn": statement["Condition"]["ArnLike"]["AWS:SourceArn"],
        }
        lam.remove_permission(FunctionName=function, StatementId=sid)
        lam.add_permission(FunctionName=function, StatementId=sid, **{**current, **changes})

    def invoke_config(self, key: str) -> dict[str, Any]:
        return self.client("lambda", key).get_function_event_invoke_config(FunctionName=self.name(key))

    def put_invoke_config(self, key: str, **changes: Any) -> None:
        current = self.invoke_config(key)
        arguments = {
            "MaximumRetryAttempts": current["MaximumRetryAttempts"],
            "MaximumEventAgeInSeconds": current["MaximumEventAgeInSeconds"],
            "DestinationConfig": current.get("DestinationConfig"),
            **changes,
        }
        self.client("lambda", key).put_function_event_invoke_config(
            FunctionName=self.name(key), **{k: v for k, v in arguments.items() if v is not None}
        )

    def alarm(self, key: str) -> dict[str, Any]:
        return self.client("cloudwatch", key).describe_alarms(AlarmNames=[self.name(key)])["MetricAlarms"][0]

    def put_alarm(self, key: str, **changes: Any) -> None:
        """Put the alarm again as it is live, with `changes`."""
        live = {f: v for f, v in self.alarm(key).items() if f in ALARM_FIELDS and v not in (None, [])}
        self.client("cloudwatch", key).put_metric_alarm(AlarmName=self.name(key), **{**live, **changes})

    def rule(self, key: str) -> dict[str, Any]:
        events = self.client("events", key)
        return events.describe_rule(Name=self.name(key), EventBusName=self.res(key).spec["bus_name"])

    def put_rule(self, key: str, **changes: Any) -> None:
        rule = self.rule(key)
        current = {k: rule[k] for k in ("EventPattern", "State", "Description") if k in rule}
        self.client("events", key).put_rule(
            Name=self.name(key), EventBusName=self.res(key).spec["bus_name"], **{**current, **changes}
        )

    # -- the APIs ----------------------------------------------------------------------------
    def api(self, key: str) -> dict[str, Any]:
        """The live API a key stands for, found by its name and tags (GetApis pages: H4)."""
        gateway = self.client("apigatewayv2", key)
        for page in gateway.get_paginator("get_apis").paginate():
            for api in page["Items"]:
                if api["Name"] == self.name(key) and (api.get("Tags") or {}).get("taskmgmt:key") == key:
                    return dict(api)
        raise AssertionError(f"no live API for {key}")

    def route(self, key: str, route_key: str) -> dict[str, Any]:
        gateway, api_id = self.client("apigatewayv2", key), self.api(key)["ApiId"]
        routes = [r for page in gateway.get_paginator("get_routes").paginate(ApiId=api_id) for r in page["Items"]]
        return next(r for r in routes if r["RouteKey"] == route_key)


def without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}
