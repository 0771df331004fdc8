"""EventBridge task events (the recipe's contract), each applied exactly once.

Each event runs the HTTP API's use case (TaskApp) with the event's id, which is recorded in
processed_events in the same transaction as its change, so a second delivery changes nothing
and answers with the task the first one changed. A Task Created event's task gets an id
derived from the event's id, so that a second delivery can name it without storing it.
EventBridge gives every event an id; a direct invoke may not: such an event is applied all
the same, with a warning that it cannot be de-duplicated. An event that can never succeed is
logged and dropped; a transient failure raises, so Lambda retries it and its on-failure
queue catches it last.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from task_processor import fields, observability
from task_processor.app import AlreadyApplied, TaskApp
from task_processor.contract import DETAIL_TYPES, EVENT_SOURCE
from task_processor.errors import BadRequest, LimitExceeded, NotFound, Unavailable, VersionConflict

# the namespace of the ids of tasks created by events: uuid5(EVENT_TASKS, event id)
EVENT_TASKS = uuid.UUID("5b0c8d52-3f7e-4c1a-9a57-2d1e6f0b8c41")


class Dropped(Exception):
    """The event can never be applied; retrying would not help."""


class NotYet(Unavailable):
    """The task an update names does not exist (yet): EventBridge does not order events, so
    its create may still be on the way. Raised, so Lambda retries and the on-failure queue
    keeps it if it never appears."""


def is_event(event: Any) -> bool:
    return isinstance(event, dict) and "detail-type" in event and "source" in event


def handle(event: dict[str, Any], app: TaskApp) -> dict[str, Any]:
    event_id = str(event.get("id") or "") or None
    try:
        kind, detail = _parse(event)
        if event_id is None:
            observability.log_fields(
                logging.WARNING,
                "event without an id: applied, but it cannot be de-duplicated",
                detail_type=event.get("detail-type"),
            )
        outcome, task_id = _apply(app, event_id, kind, detail)
    except Dropped as exc:
        observability.count("EventsDropped")
        observability.log_fields(
            logging.WARNING, "event dropped", event_id=event_id, detail_type=event.get("detail-type"), reason=str(exc)
        )
        return {"status": "dropped", "reason": str(exc)}
    observability.log_fields(logging.INFO, "event applied", event_id=event_id, event_type=kind, outcome=outcome)
    if outcome == "duplicate":
        observability.count("EventsDuplicated")
    return {"status": outcome, "taskId": task_id}


def _parse(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if event.get("source") != EVENT_SOURCE:
        raise Dropped(f"unexpected source {event.get('source')!r}")
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


def _apply(app: TaskApp, event_id: str | None, kind: str, detail: dict[str, Any]) -> tuple[str, str]:
    """(applied or duplicate, the id of the task it changed)."""
    try:
        task_id, change = _change(kind, detail, event_id)
    except BadRequest as exc:
        raise Dropped(f"invalid {kind}: {exc.details or exc.message}") from None
    try:
        return "applied", change(app)["id"]
    except AlreadyApplied:
        assert task_id is not None  # only an event with an id is recognised as applied before
        return "duplicate", task_id
    except (VersionConflict, LimitExceeded) as exc:  # the same event would fail the same way again
        raise Dropped(exc.message) from None
    except NotFound as exc:
        observability.count("EventsRetried")
        raise NotYet(exc.message) from None


def _change(
    kind: str, detail: dict[str, Any], event_id: str | None
) -> tuple[str | None, Callable[[TaskApp], dict[str, Any]]]:
    """The id of the task an event changes (None: a new task, id to be chosen) and its use
    case, its input validated now and run with the event's id."""
    if kind == "task.created":
        task = fields.new_task(detail.get("taskData"))
        new_id = None if event_id is None else str(uuid.uuid5(EVENT_TASKS, event_id))
        return new_id, lambda app: app.create(task, event_id=event_id, task_id=new_id)
    task_id = fields.task_id(str(detail.get("taskId") or ""))
    if kind == "task.updated":
        body = dict(detail.get("updates") or {}) if isinstance(detail.get("updates"), dict) else detail.get("updates")
        if isinstance(body, dict):
            body["updated_by"] = detail.get("updatedBy")
            if "version" in detail:
                body["version"] = detail["version"]
        changes, by, version = fields.task_update(body)
        return task_id, lambda app: app.update(task_id, changes, by, version, event_id=event_id)
    by, version = fields.completion(
        {
            "completed_by": detail.get("completedBy"),
            **({"version": detail["version"]} if "version" in detail else {}),
        }
    )
    return task_id, lambda app: app.complete(task_id, by, version, event_id=event_id)
