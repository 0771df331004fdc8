"""EventBridge task events: applied exactly once, dropped when hopeless, raised when transient."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from task_processor.errors import Unavailable
from task_processor.handler import lambda_handler
from tests.function.conftest import Client, send_event, task_event

NEW_TASK = {"title": "From an event", "created_by": "ana", "priority": "high"}


def test_task_created_event_creates_one_task_and_notifies(app, client: Client, bus):
    outcome = send_event(app, task_event("task.created", {"taskData": NEW_TASK}))
    assert outcome["status"] == "applied"
    _, body, _ = client.request("GET", f"/tasks/{outcome['taskId']}")
    assert body["task"]["title"] == "From an event" and body["task"]["priority"] == "high"
    assert [d["eventType"] for d in bus.details()] == ["task.created"]


def test_the_same_event_delivered_twice_makes_one_task(app, client: Client, bus):
    event = task_event("task.created", {"taskData": NEW_TASK}, event_id="dup-1")
    assert send_event(app, event)["status"] == "applied"
    assert send_event(app, event)["status"] == "duplicate"
    _, listed, _ = client.request("GET", "/tasks")
    assert len(listed["tasks"]) == 1
    assert len(bus.entries) == 1


def test_task_updated_and_completed_events(app, client: Client):
    task = client.create()
    updated = send_event(
        app,
        task_event(
            "task.updated",
            {"taskId": task["id"], "updates": {"status": "in-progress", "assigned_to": "bo"}, "updatedBy": "cy"},
            event_id="u1",
        ),
    )
    assert updated["status"] == "applied"
    completed = send_event(
        app, task_event("task.completed", {"taskId": task["id"], "completedBy": "bo"}, event_id="c1")
    )
    assert completed["status"] == "applied"
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["status"] == "completed" and body["task"]["version"] == 3
    history = [(h["field_name"], h["new_value"], h["updated_by"]) for h in body["history"]]
    # In the order of the changes; the fields of one change share a timestamp, so in any order.
    assert sorted(history[:2]) == [("assigned_to", "bo", "cy"), ("status", "in-progress", "cy")]
    assert history[2:] == [("status", "completed", "bo")]


def test_an_event_is_the_same_use_case_as_its_http_request(app, client: Client, bus):
    """An update event that changes nothing notifies nobody, as the same PATCH does."""
    task = client.create(priority="high")
    bus.entries.clear()
    same = {"taskId": task["id"], "updates": {"priority": "high"}, "updatedBy": "cy"}
    assert send_event(app, task_event("task.updated", same, event_id="noop-1"))["status"] == "applied"
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"priority": "high", "updated_by": "cy"})
    assert status == 200 and body["task"]["version"] == 1
    assert bus.entries == []
    changed = {"taskId": task["id"], "updates": {"priority": "low"}, "updatedBy": "cy"}
    send_event(app, task_event("task.updated", changed, event_id="change-1"))
    assert [d["eventType"] for d in bus.details()] == ["task.updated"]


def test_detail_type_alone_is_enough(app):
    event = task_event("task.created", {"taskData": NEW_TASK})
    del event["detail"]["eventType"]
    assert send_event(app, event)["status"] == "applied"


@pytest.mark.parametrize(
    "detail",
    [
        {"eventType": "task.created"},  # no taskData
        {"eventType": "task.created", "taskData": {"title": ""}},
        {"eventType": "task.created", "taskData": "not an object"},
        {"eventType": "task.updated", "taskId": "not-a-uuid", "updates": {"title": "x"}, "updatedBy": "a"},
        {"eventType": "task.updated", "taskId": str(uuid.uuid4()), "updates": {"colour": "red"}, "updatedBy": "a"},
        {"eventType": "task.updated", "taskId": str(uuid.uuid4()), "updates": {"title": "x"}},  # no updatedBy
        {"eventType": "task.completed", "taskId": str(uuid.uuid4())},  # no completedBy
        {"eventType": "task.exploded"},
    ],
)
def test_an_event_that_can_never_succeed_is_dropped_not_raised(app, client: Client, detail):
    event = task_event("task.created", {})
    event["detail"] = detail
    assert send_event(app, event)["status"] == "dropped"
    assert client.request("GET", "/tasks")[1]["tasks"] == []


def test_an_event_from_another_source_is_dropped(app):
    event = task_event("task.created", {"taskData": NEW_TASK})
    event["source"] = "somebody.else"
    assert send_event(app, event)["status"] == "dropped"


def test_an_update_for_a_task_that_does_not_exist_yet_is_retried(app):
    event = task_event("task.updated", {"taskId": str(uuid.uuid4()), "updates": {"title": "x"}, "updatedBy": "a"})
    with pytest.raises(Unavailable):
        send_event(app, event)


def test_a_database_outage_raises_so_lambda_retries(bus, monkeypatch):
    from tests.function.conftest import make_app

    app = make_app("postgresql://taskmgmt_app@127.0.0.1:9/nowhere?connect_timeout=1", bus)
    with pytest.raises(Unavailable):
        send_event(app, task_event("task.created", {"taskData": NEW_TASK}))


def test_the_lambda_handler_raises_on_the_event_path(app_url, monkeypatch):
    """Swallowing the error would make Lambda count the event as delivered: it retries an
    asynchronous invocation, and sends it to the on-failure queue, only when the handler raises."""
    import task_processor.handler as handler_module

    monkeypatch.setattr(handler_module, "_app", None)
    monkeypatch.delenv("TASKMGMT_DATABASE_URL", raising=False)
    monkeypatch.delenv("DSQL_ENDPOINT", raising=False)
    with pytest.raises(Unavailable):
        lambda_handler(task_event("task.created", {"taskData": NEW_TASK}), None)
    monkeypatch.setattr(handler_module, "_app", None)
    response = lambda_handler({"httpMethod": "GET", "path": "/tasks"}, None)
    assert response["statusCode"] == 503


def test_a_failed_notification_is_counted_and_the_change_kept(app, client: Client, bus, capsys):
    from task_processor import observability

    bus.fail = True
    with observability.invocation("req-1"):
        task = client.create()
    out = capsys.readouterr().out
    assert '"NotificationFailures": 1' in out and '"TasksCreated": 1' in out
    assert '"message": "notification not published"' in out
    assert client.request("GET", f"/tasks/{task['id']}")[0] == 200


def test_concurrent_deliveries_of_the_same_event_apply_it_once(app_url, bus):
    from concurrent.futures import ThreadPoolExecutor

    from tests.function.conftest import make_app

    event = task_event("task.created", {"taskData": NEW_TASK}, event_id="race-1")
    apps = [make_app(app_url, bus) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda a: send_event(a, event)["status"], apps))
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 5
    with psycopg.connect(app_url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1


def test_an_event_without_an_id_is_applied_with_one_warning(app, client: Client, capsys):
    """EventBridge always gives an event an id; a direct invoke may not. Applied all the same."""
    event = task_event("task.created", {"taskData": NEW_TASK})
    del event["id"]
    outcome = send_event(app, event)
    assert outcome["status"] == "applied"
    assert client.request("GET", f"/tasks/{outcome['taskId']}")[0] == 200
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    warnings = [line["message"] for line in logged if line.get("level") == "WARNING"]
    assert warnings == ["event without an id: applied, but it cannot be de-duplicated"]


@pytest.mark.parametrize("kind", ["task.created", "task.updated", "task.completed"])
def test_a_duplicate_answers_with_the_task_it_was_applied_to(app, client: Client, kind):
    task = client.create()
    detail = {
        "task.created": {"taskData": NEW_TASK},
        "task.updated": {"taskId": task["id"], "updates": {"priority": "low"}, "updatedBy": "cy"},
        "task.completed": {"taskId": task["id"], "completedBy": "bo"},
    }[kind]
    event = task_event(kind, detail, event_id=f"twice-{kind}")
    first = send_event(app, event)
    again = send_event(app, event)
    assert first["status"] == "applied" and again["status"] == "duplicate"
    assert again["taskId"] == first["taskId"]
    assert client.request("GET", f"/tasks/{again['taskId']}")[0] == 200
