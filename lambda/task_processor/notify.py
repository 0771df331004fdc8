"""One notification on the bus after every committed change.

The change is already committed when this runs, so a failed publish does not fail the
request: it is logged and counted (NotificationFailures), never silently ignored.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from task_processor import observability
from task_processor.contract import ENV_EVENT_BUS, NOTIFICATION_DETAIL_TYPE, NOTIFICATION_SOURCE


class Notifier:
    def __init__(self, bus: str | None, region: str | None, client: Any = None):
        self.bus, self.region, self._client = bus, region, client

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get(ENV_EVENT_BUS), os.environ.get("AWS_REGION"))

    def _events(self) -> Any:
        if self._client is None:
            import boto3  # the runtime's boto3, only when a notification is sent

            self._client = boto3.client("events", region_name=self.region)
        return self._client

    def publish(self, event_type: str, task: dict[str, Any]) -> bool:
        if not self.bus:  # never fall back to the default bus
            self._failed(event_type, task, f"{ENV_EVENT_BUS} is not set")
            return False
        detail = {
            "eventType": event_type,
            "taskId": task["id"],
            "data": task,
            "version": task.get("version"),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "region": self.region,
        }
        entry = {
            "Source": NOTIFICATION_SOURCE,
            "DetailType": NOTIFICATION_DETAIL_TYPE,
            "EventBusName": self.bus,
            "Detail": json.dumps(detail),
        }
        try:
            response = self._events().put_events(Entries=[entry])
        except Exception as exc:  # noqa: BLE001 - the change is committed; report, do not fail
            self._failed(event_type, task, f"{type(exc).__name__}: {exc}")
            return False
        if response.get("FailedEntryCount"):
            failed = response.get("Entries", [{}])[0]
            self._failed(event_type, task, f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
            return False
        observability.count("NotificationsSent")
        return True

    @staticmethod
    def _failed(event_type: str, task: dict[str, Any], reason: str) -> None:
        observability.count("NotificationFailures")
        observability.log_fields(
            logging.ERROR, "notification not published", event_type=event_type, task_id=task.get("id"), reason=reason
        )
