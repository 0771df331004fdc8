"""Use cases: one transaction each, then metrics and the notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from task_processor import observability, service
from task_processor.db import Database
from task_processor.errors import VersionConflict
from task_processor.notify import Notifier


class TaskApp:
    def __init__(self, db: Database, notifier: Notifier):
        self.db, self.notifier = db, notifier

    def create(self, task: dict[str, Any]) -> dict[str, Any]:
        created = self.db.transaction(lambda conn: service.create_task(conn, task))
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
        self, task_id: str, changes: dict[str, Any], by: str, version: int | None, event: str = "task.updated"
    ) -> dict[str, Any]:
        try:
            task, changed = self.db.transaction(lambda conn: service.update_task(conn, task_id, changes, by, version))
        except VersionConflict:
            observability.count("VersionConflicts")
            raise
        if changed:
            observability.count("TasksCompleted" if event == "task.completed" else "TasksUpdated")
            self.notifier.publish(event, task)
        return task

    def complete(self, task_id: str, by: str, version: int | None) -> dict[str, Any]:
        return self.update(task_id, {"status": "completed"}, by, version, event="task.completed")

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
