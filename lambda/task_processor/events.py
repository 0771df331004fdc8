"""EventBridge task events (the recipe's contract), each applied exactly once.

Each event runs the HTTP API's use case (TaskApp) with the event's id, which is recorded in
processed_events in the same transaction as its change, so a second delivery changes nothing.
An event that can never succeed is logged and dropped; a transient failure raises, so Lambda
retries it and its on-failure queue catches it last.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from task_processor import fields, observability
from task_processor.app import AlreadyApplied, TaskApp
from task_processor.contract import DETAIL_TYPES, EVENT_SOURCE
from task_processor.errors import BadRequest, LimitExceeded, NotFound, Unavailable, VersionConflict


class Dropped(Exception):
    """The event can never be applied; retrying would not help."""


class NotYet(Unavailable):
    """The task an update names does not exist (yet): EventBridge does not order events, so
    its create may still be on the way. Raised, so Lambda retries and the on-failure queue
    keeps it if it never appears."""


def is_event(event: Any) -> bool:
    return isinstance(event, dict) and "detail-type" in event and "source" in event


def handle(event: dict[str, Any], app: TaskApp) -> dict[str, Any]:
    event_id = str(event.get("id") or "")
    try:
        kind, detail = _parse(event)
        outcome, task = _apply(app, event_id, kind, detail)
    except Dropped as exc:
        observability.count("EventsDropped")
        observability.log_fields(
            logging.WARNING, "event dropped", event_id=event_id, detail_type=event.get("detail-type"), reason=str(exc)
        )
        return {"status": "dropped", "reason": str(exc)}
    observability.log_fields(logging.INFO, "event applied", event_id=event_id, event_type=kind, outcome=outcome)
    if outcome == "duplicate":
        observability.count("EventsDuplicated")
    return {"status": outcome, "taskId": task["id"] if task else None}


def _parse(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if event.get("source") != EVENT_SOURCE:
        raise Dropped(f"unexpected source {event.get('source')!r}")
    if not event.get("id"):
        raise Dropped("the event has no id")
    detail = event.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            raise Dropped("detail is not JSON") from None
    if not isinstance(detail, dict):
        raise Dropped("detail is not an object")
    kind = detail.get("eventType") or DETAIL_TYPES.get(str(event.get("detail-type")))
    if kind not in DETAIL_TYPES.values():
        raise Dropped(f"unknown eventType {kind!r}")
    return str(kind), detail


def _apply(app: TaskApp, event_id: str, kind: str, detail: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    try:
        change = _change(kind, detail)
    except BadRequest as exc:
        raise Dropped(f"invalid {kind}: {exc.details or exc.message}") from None
    try:
        return "applied", change(app, event_id)
    except AlreadyApplied:
        return "duplicate", None
    except (VersionConflict, LimitExceeded) as exc:  # the same event would fail the same way again
        raise Dropped(exc.message) from None
    except NotFound as exc:
        observability.count("EventsRetried")
        raise NotYet(exc.message) from None


def _change(kind: str, detail: dict[str, Any]) -> Callable[[TaskApp, str], dict[str, Any]]:
    """The use case an event asks for, its input validated now; run with the event's id."""
    if kind == "task.created":
        task = fields.new_task(detail.get("taskData"))
        return lambda app, event_id: app.create(task, event_id=event_id)
    task_id = fields.task_id(str(detail.get("taskId") or ""))
    if kind == "task.updated":
        body = dict(detail.get("updates") or {}) if isinstance(detail.get("updates"), dict) else detail.get("updates")
        if isinstance(body, dict):
            body["updated_by"] = detail.get("updatedBy")
            if "version" in detail:
                body["version"] = detail["version"]
        changes, by, version = fields.task_update(body)
        return lambda app, event_id: app.update(task_id, changes, by, version, event_id=event_id)
    by, version = fields.completion(
        {
            "completed_by": detail.get("completedBy"),
            **({"version": detail["version"]} if "version" in detail else {}),
        }
    )
    return lambda app, event_id: app.complete(task_id, by, version, event_id=event_id)
