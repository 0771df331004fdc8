"""EventBridge: the custom bus, the processing rule, and the rule's Lambda target."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.errors import is_already_exists
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.errors import TaskmgmtError
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, tag_list


class FailedEntries(TaskmgmtError):
    """PutTargets/RemoveTargets answered 200 but refused entries."""


class EventBusStep(AwsStep):
    kind = "event_bus"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        bus = absent_is_none(lambda: self.aws.get("events", res.region).describe_event_bus(Name=res.name))
        if bus is None:
            return None
        return Observed(outputs=_bus_outputs(bus), state="present")

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        events = self.aws.get("events", res.region)
        try:
            events.create_event_bus(Name=res.name, Tags=tag_list(spec["tags"]))
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
        return _bus_outputs(events.describe_event_bus(Name=res.name))

    def delete(self, record: Record, ctx: StepContext) -> None:
        """Rules left on the bus first (a stray one, or one a failed destroy left): AWS wants
        a bus's rules deleted before the bus."""
        events = self.aws.get("events", record.region)
        pages = absent_is_none(lambda: list(events.get_paginator("list_rules").paginate(EventBusName=record.name)))
        for rule in (rule for page in pages or () for rule in page.get("Rules", [])):
            delete_rule(events, rule["Name"], record.name)
        absent_is_done(lambda: events.delete_event_bus(Name=record.name))


def _bus_outputs(bus: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": bus["Name"], "arn": bus["Arn"], "name": bus["Name"]}


class EventRuleStep(AwsStep):
    kind = "event_rule"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        bus = res.spec.get("bus_name") or (record.outputs.get("bus_name") if record else None)
        if not bus:
            return None
        events = self.aws.get("events", res.region)
        rule = absent_is_none(lambda: events.describe_rule(Name=res.name, EventBusName=bus))
        if rule is None:
            return None
        return Observed(
            outputs=_rule_outputs(rule["Arn"], res.name, bus),
            live={
                "pattern": json.loads(rule.get("EventPattern") or "{}"),
                "state": rule.get("State"),
                "description": rule.get("Description"),
            },
            state=str(rule.get("State")),
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"pattern": spec["pattern"], "state": "ENABLED", "description": spec["description"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        arn = self.aws.get("events", res.region).put_rule(
            Name=res.name,
            EventBusName=spec["bus_name"],
            EventPattern=json.dumps(spec["pattern"]),
            State="ENABLED",
            Description=spec["description"],
            Tags=tag_list(spec["tags"]),
        )["RuleArn"]
        return _rule_outputs(arn, res.name, spec["bus_name"])

    def delete(self, record: Record, ctx: StepContext) -> None:
        delete_rule(self.aws.get("events", record.region), record.name, record.outputs.get("bus_name"))


def delete_rule(events: Any, name: str, bus: str | None) -> None:
    """Targets first: EventBridge refuses to delete a rule that still has targets."""
    targets = absent_is_none(lambda: events.list_targets_by_rule(Rule=name, EventBusName=bus))
    if targets is None:
        return
    ids = [t["Id"] for t in targets.get("Targets", [])]
    if ids:
        check_entries(events.remove_targets(Rule=name, EventBusName=bus, Ids=ids, Force=False), "RemoveTargets")
    absent_is_done(lambda: events.delete_rule(Name=name, EventBusName=bus))


def _rule_outputs(arn: str, name: str, bus: str) -> dict[str, Any]:
    return {"id": name, "arn": arn, "name": name, "bus_name": bus}


class EventTargetStep(AwsStep):
    kind = "event_target"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        events = self.aws.get("events", res.region)
        rule, bus, target_id = (res.spec.get("rule_name"), res.spec.get("bus_name"), res.name)
        if record is not None:
            rule, bus = record.outputs.get("rule_name", rule), record.outputs.get("bus_name", bus)
        if not rule or not bus:
            return None
        listed = absent_is_none(lambda: events.list_targets_by_rule(Rule=rule, EventBusName=bus))
        target = next((t for t in (listed or {}).get("Targets", []) if t["Id"] == target_id), None)
        if target is None:
            return None
        return Observed(
            outputs=_target_outputs(target_id, rule, bus),
            live={
                "arn": target["Arn"],
                "retry_policy": target.get("RetryPolicy"),
                "dead_letter_arn": (target.get("DeadLetterConfig") or {}).get("Arn"),
            },
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "arn": spec["function_arn"],
            "retry_policy": spec["retry_policy"],
            "dead_letter_arn": spec["dead_letter_arn"],
        }

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        target = {
            "Id": res.name,
            "Arn": spec["function_arn"],
            "RetryPolicy": spec["retry_policy"],
            "DeadLetterConfig": {"Arn": spec["dead_letter_arn"]},
        }
        response = self.aws.get("events", res.region).put_targets(
            Rule=spec["rule_name"], EventBusName=spec["bus_name"], Targets=[target]
        )
        check_entries(response, "PutTargets")
        return _target_outputs(res.name, spec["rule_name"], spec["bus_name"])

    def delete(self, record: Record, ctx: StepContext) -> None:
        events = self.aws.get("events", record.region)
        rule, bus = record.outputs.get("rule_name"), record.outputs.get("bus_name")
        response = absent_is_none(lambda: events.remove_targets(Rule=rule, EventBusName=bus, Ids=[record.name]))
        if response is not None:
            failed = [e for e in response.get("FailedEntries", []) if e.get("ErrorCode") != "ResourceNotFoundException"]
            if failed:
                check_entries({"FailedEntryCount": len(failed), "FailedEntries": failed}, "RemoveTargets")


def _target_outputs(target_id: str, rule: str, bus: str) -> dict[str, Any]:
    return {"id": f"{rule}/{target_id}", "name": target_id, "rule_name": rule, "bus_name": bus}


def check_entries(response: Mapping[str, Any], operation: str) -> None:
    """A 200 answer may still refuse entries; never treat that as success."""
    if response.get("FailedEntryCount"):
        details = "; ".join(f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in response.get("FailedEntries", []))
        raise FailedEntries(f"{operation} refused {response['FailedEntryCount']} entries ({details})")
