"""The broadcast entry point: a change's notification posted to every subscribed connection of
both regions, on a bounded pool, with gone and expired connections removed."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from task_processor import broadcast, subscriptions
from task_processor.broadcast import Broadcaster
from task_processor.db import Database
from task_processor.management import Poster
from tests.function.conftest import Client, FakeEvents, FakeManagement, make_app

EAST_1 = "https://one.execute-api.us-east-1.amazonaws.com/live"
EAST_2 = "https://two.execute-api.us-east-2.amazonaws.com/live"


@pytest.fixture
def app(live_url: str, bus: FakeEvents):
    return make_app(live_url, bus)


@pytest.fixture
def broadcaster(app, management: FakeManagement) -> Broadcaster:
    return Broadcaster(app.db, Poster(management.client, workers=4))


def add(db: Database, connection_id: str, *topics: str, endpoint: str = EAST_1, expired: bool = False) -> None:
    region = endpoint.split(".")[2]

    def work(conn):
        subscriptions.add_connection(conn, connection_id, region, endpoint, None)
        for topic in topics:
            subscriptions.subscribe(conn, connection_id, topic)
        if expired:
            conn.execute(
                "UPDATE connections SET expires_at = now() - interval '1 second' WHERE connection_id = %s",
                [connection_id],
            )

    db.transaction(work)


def notification(bus: FakeEvents, index: int = -1) -> dict[str, Any]:
    """The event the broadcast rule delivers for what the function put on the bus."""
    entry = bus.entries[index]
    return {
        "version": "0",
        "id": f"n-{len(bus.entries)}",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": "2026-12-01T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }


def live_ids(db: Database) -> set[str]:
    return {
        r["connection_id"] for r in db.read(lambda c: c.execute("SELECT connection_id FROM connections").fetchall())
    }


def test_a_change_reaches_each_subscriber_of_its_topics_once_in_both_regions(app, broadcaster, bus, management):
    add(app.db, "all-1", "all")
    add(app.db, "all-2", "all", "project:42", "assignee:bo", endpoint=EAST_2)  # three matching topics: one message
    add(app.db, "proj-42", "project:42", endpoint=EAST_2)
    add(app.db, "proj-7", "project:7")
    add(app.db, "bo", "assignee:bo")
    add(app.db, "ana", "assignee:ana")
    add(app.db, "nothing")
    task = Client(app).create(project_id=42, assigned_to="bo")
    result = broadcaster.handle(notification(bus))
    assert (result["status"], result["delivered"], result["gone"], result["failed"]) == ("broadcast", 4, 0, 0)
    expected = {"type": "task", "event": "task.created", "task": task, "region": "us-east-1"}
    assert sorted((cid, endpoint, region) for endpoint, region, cid, _ in management.posts) == [
        ("all-1", EAST_1, "us-east-1"),
        ("all-2", EAST_2, "us-east-2"),
        ("bo", EAST_1, "us-east-1"),
        ("proj-42", EAST_2, "us-east-2"),
    ]
    assert all(message == expected for *_, message in management.posts)
    assert sorted(set(management.clients)) == [(EAST_1, "us-east-1"), (EAST_2, "us-east-2")]


def test_every_kind_of_change_is_sent_with_its_version(app, broadcaster, bus, management):
    add(app.db, "c1", "all")
    client = Client(app)
    task = client.create()
    client.request("PATCH", f"/tasks/{task['id']}", {"priority": "high", "updated_by": "bo", "version": 1})
    client.request("POST", f"/tasks/{task['id']}/complete", {"completed_by": "bo"})
    client.request("DELETE", f"/tasks/{task['id']}")
    for index in range(len(bus.entries)):
        broadcaster.handle(notification(bus, index))
    assert [(m["event"], m["task"]["version"]) for m in management.received("c1")] == [
        ("task.created", 1),
        ("task.updated", 2),
        ("task.completed", 3),
        ("task.deleted", 3),
    ]


def test_a_gone_connection_is_deleted_a_failing_one_kept_and_expired_ones_skipped_and_deleted(
    app, broadcaster, bus, management
):
    for cid in ("ok", "gone", "failing"):
        add(app.db, cid, "all")
    add(app.db, "expired", "all", expired=True)
    add(app.db, "expired-unsubscribed", expired=True)  # its $disconnect never came
    management.gone.add("gone")
    management.failing.add("failing")
    Client(app).create()
    result = broadcaster.handle(notification(bus))
    assert {k: result[k] for k in ("delivered", "gone", "failed", "expired", "removed")} == {
        "delivered": 1,
        "gone": 1,
        "failed": 1,
        "expired": 2,
        "removed": 3,
    }
    assert sorted(cid for *_, cid, _ in management.posts) == ["ok"]
    assert live_ids(app.db) == {"ok", "failing"}
    subscribed = app.db.read(lambda c: c.execute("SELECT connection_id FROM subscriptions").fetchall())
    assert {r["connection_id"] for r in subscribed} == {"ok", "failing"}


def test_a_slow_connection_does_not_delay_the_others(app, broadcaster, bus, management):
    for cid in ("slow", "a", "b", "c", "d", "e"):
        add(app.db, cid, "all")
    gate = management.slow["slow"] = threading.Event()
    Client(app).create()
    event = notification(bus)
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(broadcaster.handle(event)))
    worker.start()
    try:
        # every other one delivered while "slow" is held (its post may start after theirs end)
        management.wait_for(lambda: len(management.posts) == 5 and management.in_flight == 1)
        assert results == []
    finally:
        gate.set()
        worker.join(10)
    assert results[0]["delivered"] == 6


def test_the_pool_is_bounded(app, bus, management):
    broadcaster = Broadcaster(app.db, Poster(management.client, workers=3))
    gates = []
    for index in range(12):
        add(app.db, f"c{index:02d}", "all")
        gates.append(management.slow.setdefault(f"c{index:02d}", threading.Event()))
    Client(app).create()
    event = notification(bus)
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(broadcaster.handle(event)))
    worker.start()
    try:
        management.wait_for(lambda: management.in_flight == 3)
    finally:
        for gate in gates:
            gate.set()
        worker.join(10)
    assert results[0]["delivered"] == 12 and management.most_in_flight == 3


def test_subscribers_are_read_in_pages_and_gone_ones_deleted_in_batches(app, broadcaster, bus, management, monkeypatch):
    from tests.function.conftest import GUARD

    monkeypatch.setattr(subscriptions, "READ_BATCH", 40)
    monkeypatch.setattr(subscriptions, "DELETE_BATCH", 30)
    ids = [f"c{index:03d}" for index in range(130)]

    def seed(conn):
        for cid in ids:
            subscriptions.add_connection(conn, cid, "us-east-1", EAST_1, None)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO subscriptions (topic, connection_id) VALUES (%s, %s)",
                [(topic, cid) for cid in ids for topic in ("all", "assignee:bo")],
            )

    app.db.transaction(seed)
    management.gone.update(ids[::2])
    reads = []
    original = subscriptions.subscribers
    monkeypatch.setattr(
        subscriptions,
        "subscribers",
        lambda conn, topics, after, limit=40: reads.append(after) or original(conn, topics, after, limit),
    )
    GUARD.reset()
    Client(app).create(assigned_to="bo")
    result = broadcaster.handle(notification(bus))
    assert (result["delivered"], result["gone"], result["removed"]) == (65, 65, 65)
    assert reads == ["", "c039", "c079", "c119"]
    assert sorted(cid for *_, cid, _ in management.posts) == ids[1::2]
    assert GUARD.largest == 30 * 3  # a batch: 30 connections and their 60 subscriptions
    assert live_ids(app.db) == set(ids[1::2])


def test_a_task_too_large_for_one_frame_is_sent_without_its_description():
    task = {"id": "t1", "title": "x", "description": "😀" * 9000, "version": 3}
    event = {
        "source": "task.management.notifications",
        "detail-type": "Task Notification",
        "detail": {"eventType": "task.updated", "data": task, "region": "us-east-2"},
    }
    data = broadcast.message(event)
    assert len(data) <= broadcast.MAX_MESSAGE_BYTES
    assert json.loads(data) == {
        "type": "task",
        "event": "task.updated",
        "task": {"id": "t1", "title": "x", "version": 3},
        "region": "us-east-2",
        "partial": True,
    }
    task["description"] = "short"
    assert "partial" not in json.loads(broadcast.message(event))


@pytest.mark.parametrize(
    "detail",
    [
        "not json",
        [],
        {"eventType": "task.exploded", "data": {"id": "t1"}},
        {"eventType": "task.created"},
        {"eventType": "task.created", "data": {"title": "no id"}},
    ],
)
def test_a_notification_it_did_not_send_is_dropped(broadcaster, management, detail):
    event = {"source": "task.management.notifications", "detail-type": "Task Notification", "detail": detail}
    assert broadcaster.handle(event)["status"] == "dropped"
    assert management.posts == []


def test_notifications_reach_the_broadcast_through_the_handler(live_url, monkeypatch, management, bus):
    import task_processor.handler as handler_module
    from task_processor import live as live_module

    monkeypatch.setenv("TASKMGMT_DATABASE_URL", live_url)
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    for name in ("_app", "_live", "_broadcaster"):
        monkeypatch.setattr(handler_module, name, None)
    monkeypatch.setattr(live_module, "Poster", lambda: Poster(management.client, workers=2))
    app = make_app(live_url, bus)
    add(app.db, "c1", "all", endpoint=EAST_2)
    Client(app).create()
    result = handler_module.lambda_handler(notification(bus), None)
    assert (result["status"], result["delivered"]) == ("broadcast", 1)
    assert [m["type"] for m in management.received("c1")] == ["task"]
