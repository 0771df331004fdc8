"""What deploy and destroy tell the operator: the plan, the result, and both as JSON for scripts."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.deploy.inventory import empty, inventory
from tests.deploy.kinds import default_stack_size

ALL = default_stack_size()  # every resource of a default dev stack

FUNCTION_KEY = "lambda_function:task-processor@us-east-1"

_RESOURCE = {
    "resource": {"type": "string", "pattern": "^[a-z_]+:[A-Za-z0-9_.-]+@[a-z0-9-]+$"},
    "kind": {"type": "string"},
    "region": {"type": ["string", "null"]},
    "name": {"type": "string"},
}
PLAN_SCHEMA = {
    "type": "object",
    "required": ["stack", "env", "changes_pending", "summary", "resources"],
    "additionalProperties": False,
    "properties": {
        "stack": {"type": "string"},
        "env": {"type": "string"},
        "changes_pending": {"type": "boolean"},
        "summary": {
            "type": "object",
            "required": ["create", "update", "delete", "unchanged", "skip"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["resource", "kind", "region", "name", "action", "reason", "fields"],
                "additionalProperties": False,
                "properties": {
                    **_RESOURCE,
                    "action": {"enum": ["create", "update", "delete", "unchanged", "skip"]},
                    "reason": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["old", "new", "known_after_apply"],
                            "additionalProperties": False,
                            "properties": {"old": {}, "new": {}, "known_after_apply": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    },
}
DONE = ("created", "updated", "deleted", "unchanged", "skipped")
_TIMED = {"seconds": {"type": ["number", "null"], "minimum": 0}}
DEPLOY_SCHEMA = {
    "type": "object",
    "required": ["stack", "env", "operation", "seconds", "summary", "resources", "outputs"],
    "additionalProperties": False,
    "properties": {
        "stack": {"type": "string"},
        "env": {"type": "string"},
        "operation": {"const": "deploy"},
        "seconds": {"type": "number", "minimum": 0},
        "summary": {"type": "object", "required": list(DONE)},
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["resource", "action", "seconds"],
                "properties": {
                    **_RESOURCE,
                    **_TIMED,
                    "action": {"enum": list(DONE)},
                },
            },
        },
        "outputs": {"type": "object"},
    },
}
DESTROY_SCHEMA = {
    "type": "object",
    "required": ["stack", "env", "operation", "seconds", "summary", "resources", "left"],
    "additionalProperties": False,
    "properties": {
        "stack": {"type": "string"},
        "env": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "operation": {"const": "destroy"},
        "summary": {"type": "object", "required": ["deleted", "left"]},
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["resource", "action", "seconds"],
                "properties": {**_TIMED, "action": {"const": "deleted"}},
            },
        },
        "left": {"type": "array", "items": {"type": "object", "required": ["resource", "reason"]}},
    },
}


@pytest.fixture
def deployed(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0


def test_a_plan_applies_nothing_and_says_nothing_was_applied(deployed, cli, calls):
    calls.clear()
    result = cli("deploy", "--plan", "--lambda-memory", "1024")
    assert result.code == 0, result.err
    assert calls.mutating() == []
    assert "updated" not in result.out + result.err and "created" not in result.out + result.err
    lines = result.out.splitlines()
    assert f"~ {FUNCTION_KEY}" in lines and f"~ {FUNCTION_KEY.replace('us-east-1', 'us-west-2')}" in lines
    assert "      memory: 512 → 1024" in lines
    assert not any(line.startswith("  ") and "@" in line for line in lines)  # unchanged ones only with --verbose
    assert f"plan for task-mgmt-dev: 2 to update, {ALL - 2} unchanged; nothing was changed" in result.err
    verbose = cli("deploy", "--plan", "--lambda-memory", "1024", "--verbose").out.splitlines()
    assert "  event_bus:task-events@us-east-1" in verbose


def test_an_option_turned_off_is_planned_as_a_delete_and_done_as_one(aws, runtime, cli):
    assert cli("deploy", "--yes", "--alarm-email", "ops@example.com").code == 0
    plan = cli("deploy", "--plan", "--json")
    assert plan.code == 0, plan.err
    document = json.loads(plan.out)
    jsonschema.validate(document, PLAN_SCHEMA)
    removed = [r["resource"] for r in document["resources"] if r["action"] == "delete"]
    assert sorted(removed) == ["sns_subscription:alarm-email@us-east-1", "sns_subscription:alarm-email@us-west-2"]
    shown = cli("deploy", "--plan").out.splitlines()
    assert "- sns_subscription:alarm-email@us-east-1  (no longer in the configuration)" in shown
    done = cli("deploy", "--yes", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["summary"]["deleted"] == 2
    assert "deleted 2, unchanged" in done.err


def test_the_plan_of_a_new_environment_marks_every_resource_created(aws, runtime, cli, calls):
    result = cli("deploy", "--plan")
    assert result.code == 0, result.err
    assert calls.mutating() == []
    assert f"+ {FUNCTION_KEY}  (does not exist)" in result.out.splitlines()
    assert sum(line.startswith("+ ") for line in result.out.splitlines()) == ALL


def test_detailed_exitcode_tells_pending_changes_from_none_and_from_errors(deployed, cli, monkeypatch):
    assert cli("deploy", "--plan", "--detailed-exitcode").code == 0
    assert cli("deploy", "--plan", "--detailed-exitcode", "--lambda-timeout", "30").code == 1
    assert cli("deploy", "--plan", "--lambda-timeout", "30").code == 0

    from taskmgmt_deploy.core.engine import Engine
    from taskmgmt_deploy.errors import DeployFailed, StepError

    def broken(self, resources):
        raise DeployFailed("reading", [StepError(FUNCTION_KEY, RuntimeError("throttled"))])

    monkeypatch.setattr(Engine, "plan", broken)
    failed = cli("deploy", "--plan", "--detailed-exitcode")
    assert failed.code == 2 and "reading failed" in failed.err
    assert cli("deploy", "--plan").code == 1  # without the flag, a failure is 1 as always
    assert cli("deploy", "--detailed-exitcode", "--yes").code == 2  # only a plan has changes pending


def test_the_plan_as_json_follows_its_schema(deployed, cli):
    result = cli("deploy", "--plan", "--json", "--lambda-memory", "1024")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert plan["changes_pending"] is True
    assert plan["summary"] == {"create": 0, "update": 2, "delete": 0, "unchanged": ALL - 2, "skip": 0}
    function = next(r for r in plan["resources"] if r["resource"] == FUNCTION_KEY)
    assert function["action"] == "update"
    assert function["fields"] == {"memory": {"old": 512, "new": 1024, "known_after_apply": False}}
    assert "memory: 512 -> 1024" in function["reason"]


def test_the_plan_of_a_new_environment_as_json_marks_values_known_after_apply(aws, runtime, cli):
    plan = json.loads(cli("deploy", "--plan", "--json").out)
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert {r["action"] for r in plan["resources"]} == {"create"}


def test_deploy_says_what_it_did_in_the_past_tense_and_as_json(aws, runtime, cli):
    result = cli("deploy", "--yes", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)  # stdout holds the document and nothing else
    jsonschema.validate(document, DEPLOY_SCHEMA)
    assert document["summary"] == {"created": ALL, "updated": 0, "deleted": 0, "unchanged": 0, "skipped": 0}
    assert all(r["seconds"] is not None for r in document["resources"])
    assert document["outputs"]["regions"]["us-east-1"]["function_name"] == "task-mgmt-dev-task-processor"
    summary = [line for line in result.err.splitlines() if line.startswith("deployed")]
    assert summary == [f"deployed task-mgmt-dev: created {ALL}, updated 0, unchanged 0 in {document['seconds']:.1f} s"]
    assert f"[{ALL}/{ALL}] created" in result.err

    again = cli("deploy", "--yes", "--lambda-memory", "1024")
    assert "deployed task-mgmt-dev: updated 2" not in again.err
    assert f"deployed task-mgmt-dev: created 0, updated 2, unchanged {ALL - 2} in " in again.err


def test_destroy_says_what_it_did_and_prints_json(deployed, cli):
    result = cli("destroy", "--yes", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    jsonschema.validate(document, DESTROY_SCHEMA)
    assert document["summary"] == {"deleted": ALL, "left": 0} and document["left"] == []
    assert f"destroyed task-mgmt-dev: deleted {ALL} in {document['seconds']:.1f} s, nothing left" in result.err
    assert inventory() == empty()
    nothing = cli("destroy", "--yes", "--json")
    assert nothing.code == 0
    assert json.loads(nothing.out)["summary"] == {"deleted": 0, "left": 0}
