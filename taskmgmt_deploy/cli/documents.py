"""The JSON documents that deploy --plan, deploy and destroy print for scripts (--json).

Every document names the stack and what was (or would be) done per resource; the shapes
are pinned by JSON schemas in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.models import UNKNOWN, Action, Change, Resource
from taskmgmt_deploy.stack.config import StackConfig

# what an action is called once done
PAST = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.DELETE: "deleted",
    Action.NOOP: "unchanged",
    Action.SKIP: "skipped",
}


def _resource(res: Resource) -> dict[str, Any]:
    return {"resource": res.key, "kind": res.kind, "region": res.region, "name": res.name}


def _json_value(value: Any) -> Any:
    return None if value is UNKNOWN else value


def plan_document(stack: StackConfig, changes: list[tuple[Resource, Change]]) -> dict[str, Any]:
    """What deploy would do. A field whose new value is known only after apply has "new": null
    and "known_after_apply": true."""
    counts = {action.value: sum(1 for _, c in changes if c.action is action) for action in Action}
    return {
        "stack": stack.stack_name,
        "env": stack.env,
        "changes_pending": any(c.mutates for _, c in changes),
        "summary": counts,
        "resources": [
            {
                **_resource(res),
                "action": change.action.value,
                "reason": "; ".join(change.reasons),
                "fields": {
                    name: {"old": _json_value(old), "new": _json_value(new), "known_after_apply": new is UNKNOWN}
                    for name, (old, new) in change.diff.items()
                },
            }
            for res, change in changes
        ],
    }


def deploy_document(
    stack: StackConfig,
    changes: list[tuple[Resource, Change]],
    seconds: Mapping[str, float],
    elapsed: float,
    outputs: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        **_run(stack, "deploy", elapsed),
        "summary": {PAST[action]: sum(1 for _, c in changes if c.action is action) for action in Action},
        "resources": [
            {**_resource(res), "action": PAST[change.action], "seconds": _seconds(seconds.get(res.key))}
            for res, change in changes
        ],
        "outputs": outputs,
    }


def destroy_document(
    stack: StackConfig, deleted: list[str], left: list[tuple[str, str]], seconds: Mapping[str, float], elapsed: float
) -> dict[str, Any]:
    return {
        **_run(stack, "destroy", elapsed),
        "summary": {"deleted": len(deleted), "left": len(left)},
        "resources": [{"resource": key, "action": "deleted", "seconds": _seconds(seconds.get(key))} for key in deleted],
        "left": [{"resource": what, "reason": why} for what, why in left],
    }


def _run(stack: StackConfig, operation: str, elapsed: float) -> dict[str, Any]:
    return {"stack": stack.stack_name, "env": stack.env, "operation": operation, "seconds": round(elapsed, 3)}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def done_summary(changes: list[tuple[Resource, Change]], elapsed: float) -> str:
    """`created 38, updated 2, unchanged 0 in 24.0 s` (deleted and skipped only when some were)."""
    counts = {action: sum(1 for _, c in changes if c.action is action) for action in Action}
    parts = [f"{PAST[a]} {counts[a]}" for a in (Action.CREATE, Action.UPDATE, Action.NOOP)]
    if counts[Action.DELETE]:
        parts.insert(2, f"deleted {counts[Action.DELETE]}")
    if counts[Action.SKIP]:
        parts.append(f"skipped {counts[Action.SKIP]}")
    return ", ".join(parts) + f" in {elapsed:.1f} s"
