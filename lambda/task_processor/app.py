"""Use cases: one transaction each, then metrics and the notification. HTTP requests and task
events both come through here; an event carries its id, so that it applies only once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from task_processor import observability, service
from task_processor.db import Database
from task_processor.errors import VersionConflict
from task_processor.notify import Notifier

T = TypeVar("T")


class AlreadyApplied(Exception):
    """The event was applied before: nothing was done this time."""


class TaskApp:
    def __init__(self, db: Database, notifier: Notifier):
        self.db, self.notifier = db, notifier

    def create(self, task: dict[str, Any], event_id: str | None = None, task_id: str | None = None) -> dict[str, Any]:
        created = self._write("task.created", event_id, lambda conn: service.create_task(conn, task, task_id))
        observability.count("TasksCreated")
        self.notifier.publish("task.created", created)
        return created

    def get(self, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self.db.read(lambda conn: service.get_with_history(conn, task_id))

    def list(
        self, filters: dict[str, Any], limit: int, cursor: tuple[datetime, str] | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self.db.read(lambda conn: service.list_tasks(conn, filters, limit, cursor))

    def update(
        self, task_id: str, changes: dict[str, Any], by: str, version: int | None, event_id: str | None = None
    ) -> dict[str, Any]:
        return self._update("task.updated", task_id, changes, by, version, event_id)

    def complete(self, task_id: str, by: str, version: int | None, event_id: str | None = None) -> dict[str, Any]:
        return self._update("task.completed", task_id, {"status": "completed"}, by, version, event_id)

    def delete(self, task_id: str, version: int | None) -> None:
        """The history in batches, one transaction each, then the task (see service.delete_task_step)."""
        try:
            deleted = False
            while not deleted:
                task, deleted = self.db.transaction(lambda conn: service.delete_task_step(conn, task_id, version))
        except VersionConflict:
            observability.count("VersionConflicts")
            raise
        observability.count("TasksDeleted")
        self.notifier.publish("task.deleted", task)

    def _update(
        self, kind: str, task_id: str, changes: dict[str, Any], by: str, version: int | None, event_id: str | None
    ) -> dict[str, Any]:
        try:
            task, changed = self._write(
                kind, event_id, lambda conn: service.update_task(conn, task_id, changes, by, version)
            )
        except VersionConflict:
            observability.count("VersionConflicts")
            raise
        if changed:
            observability.count("TasksCompleted" if kind == "task.completed" else "TasksUpdated")
            self.notifier.publish(kind, task)
        return task

    def _write(self, kind: str, event_id: str | None, work: Callable[[service.Conn], T]) -> T:
        """One transaction. With an event id, the event is recorded in the same transaction, so a
        second delivery raises AlreadyApplied and changes nothing."""
        if event_id is None:
            return self.db.transaction(work)

        def once(conn: service.Conn) -> T:
            if not service.claim_event(conn, event_id, kind):
                raise AlreadyApplied(event_id)
            return work(conn)

        try:
            return self.db.transaction(once)
        except psycopg.errors.UniqueViolation:  # the same event, delivered twice at once
            return self.db.transaction(once)
