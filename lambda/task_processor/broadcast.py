"""The broadcast entry point: the notification the function put on its bus after a change comes
back through the broadcast rule, and is posted to every connection subscribed to the task's
topics, in both regions (one table of connections: the clusters are one database).

The subscribers are read in pages (one short statement each) and each page is handed to the
bounded pool as soon as it is read, so the posts to one page go out while the next is read.
A post that answers 410 Gone deletes its connection; rows past their expiry are skipped and
deleted, with a few more expired rows on each run, so rows whose $disconnect never came do
not pile up. Delivery is at-least-once: the message carries the task's version, and clients
drop what is older than what they have.

A post that fails otherwise is logged and counted, not retried: raising would make Lambda run
the whole fan-out again for every other subscriber. A database failure raises (Lambda retries;
its on-failure queue keeps what never succeeds).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from task_processor import observability, subscriptions
from task_processor.contract import NOTIFICATION_DETAIL_TYPE, NOTIFICATION_SOURCE
from task_processor.db import Database
from task_processor.management import FAILED, GONE, SENT, Poster

KINDS = ("task.created", "task.updated", "task.completed", "task.deleted")
# API Gateway sends a WebSocket message in frames of at most 32 KB; a message kept to one
# frame fits whatever the client. A task with a long description is sent without it, marked
# "partial": the client reads the task with GET /tasks/{id}.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
MAX_MESSAGE_BYTES = 32 * 1024


def is_notification(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == NOTIFICATION_SOURCE and "detail-type" in event


def message(event: dict[str, Any]) -> bytes | None:
    """What the subscribers get, or None when the notification is not one this function sends."""
    detail = event.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return None
    if event.get("detail-type") != NOTIFICATION_DETAIL_TYPE or not isinstance(detail, dict):
        return None
    task = detail.get("data")
    if detail.get("eventType") not in KINDS or not isinstance(task, dict) or not task.get("id"):
        return None
    body = {"type": "task", "event": detail["eventType"], "task": task, "region": detail.get("region")}
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        body["task"] = {key: value for key, value in task.items() if key != "description"}
        body["partial"] = True
        data = json.dumps(body, separators=(",", ":")).encode()
    return data


class Broadcaster:
    def __init__(self, db: Database, poster: Poster, clock: Callable[[], float] = time.monotonic):
        self.db, self.poster, self._clock = db, poster, clock

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        data = message(event)
        if data is None:
            observability.count("EventsDropped")
            observability.log_fields(
                logging.WARNING, "notification dropped", event_id=event.get("id"), detail_type=event.get("detail-type")
            )
            return {"status": "dropped", "reason": "not a task notification this function sends"}
        started = self._clock()
        task = json.loads(data)["task"]
        outcomes = {SENT: 0, GONE: 0, FAILED: 0}
        gone: list[str] = []
        expired: list[str] = []
        for connection_id, outcome in self.poster.post_all(self._targets(task, expired), data):
            outcomes[outcome] += 1
            if outcome == GONE:
                gone.append(connection_id)
        expired += self.db.read(subscriptions.expired_connections)
        removed = self._remove(sorted(set(gone + expired)))
        elapsed_ms = round((self._clock() - started) * 1000, 1)
        observability.count("BroadcastPosts", outcomes[SENT])
        observability.count("BroadcastGone", outcomes[GONE])
        observability.count("BroadcastFailures", outcomes[FAILED])
        result = {
            "status": "broadcast",
            "delivered": outcomes[SENT],
            "gone": outcomes[GONE],
            "failed": outcomes[FAILED],
            "expired": len(set(expired)),
            "removed": removed,
            "duration_ms": elapsed_ms,
        }
        observability.log_fields(logging.INFO, "broadcast", task_id=task["id"], version=task.get("version"), **result)
        return result

    def _targets(self, task: dict[str, Any], expired: list[str]) -> Iterator[tuple[str, str, str]]:
        """Every live subscriber of the task's topics, page by page; expired ones are collected."""
        topics = subscriptions.topics_of(task)
        after = ""
        while True:
            page = self.db.read(lambda conn, after=after: subscriptions.subscribers(conn, topics, after))
            for subscriber in page:
                if subscriber.expired:
                    expired.append(subscriber.connection_id)
                else:
                    yield subscriber.endpoint, subscriber.region, subscriber.connection_id
            if len(page) < subscriptions.READ_BATCH:
                return
            after = page[-1].connection_id

    def _remove(self, connection_ids: list[str]) -> int:
        removed = 0
        for start in range(0, len(connection_ids), subscriptions.DELETE_BATCH):
            batch = connection_ids[start : start + subscriptions.DELETE_BATCH]
            removed += self.db.transaction(lambda conn, batch=batch: subscriptions.remove_connections(conn, batch))
        return removed
