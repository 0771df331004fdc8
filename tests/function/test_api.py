"""Every route of the REST-style API, in the three request shapes."""

from __future__ import annotations

import json
import uuid

import pytest

from task_processor import api
from task_processor.handler import lambda_handler
from tests.function.conftest import Client


def test_create_applies_defaults_and_notifies(client: Client, bus):
    task = client.create()
    assert task["status"] == "pending" and task["priority"] == "medium"
    assert task["version"] == 1
    assert uuid.UUID(task["id"])
    assert task["created_at"].endswith("Z") and task["completed_at"] is None
    assert [(d["eventType"], d["taskId"], d["version"]) for d in bus.details()] == [("task.created", task["id"], 1)]
    detail = bus.details()[0]
    assert detail["data"]["title"] == "Write the report" and detail["region"] == "us-east-1" and detail["timestamp"]
    assert bus.entries[0]["Source"] == "task.management.notifications"
    assert bus.entries[0]["DetailType"] == "Task Notification" and bus.entries[0]["EventBusName"] == "task-bus"


def test_create_with_every_optional_field(client: Client):
    task = client.create(
        description="Q3 numbers",
        status="in-progress",
        priority="urgent",
        assigned_to="bo",
        project_id=42,
        due_date="2026-12-01T17:00:00+01:00",
    )
    assert (task["status"], task["priority"], task["assigned_to"], task["project_id"]) == (
        "in-progress",
        "urgent",
        "bo",
        42,
    )
    assert task["due_date"] == "2026-12-01T16:00:00Z"


def test_get_returns_the_task_and_its_history(client: Client):
    task = client.create()
    client.request("PATCH", f"/tasks/{task['id']}", {"priority": "high", "assigned_to": "bo", "updated_by": "ana"})
    status, body, headers = client.request("GET", f"/tasks/{task['id']}")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["task"]["version"] == 2
    assert sorted((h["field_name"], h["old_value"], h["new_value"], h["updated_by"]) for h in body["history"]) == [
        ("assigned_to", None, "bo", "ana"),
        ("priority", "medium", "high", "ana"),
    ]


def test_get_of_an_unknown_task_is_404(client: Client):
    status, body, _ = client.request("GET", f"/tasks/{uuid.uuid4()}")
    assert status == 404 and body["error"] == "not_found"


def test_update_with_the_current_version_increments_it(client: Client, bus):
    task = client.create()
    status, body, _ = client.request(
        "PUT", f"/tasks/{task['id']}", {"title": "Write the final report", "updated_by": "bo", "version": 1}
    )
    assert status == 200
    assert body["task"]["title"] == "Write the final report" and body["task"]["version"] == 2
    assert bus.details()[-1]["eventType"] == "task.updated" and bus.details()[-1]["version"] == 2


def test_update_with_a_stale_version_is_409_and_writes_nothing(client: Client):
    task = client.create()
    client.request("PATCH", f"/tasks/{task['id']}", {"title": "v2", "updated_by": "bo", "version": 1})
    status, body, _ = client.request(
        "PATCH", f"/tasks/{task['id']}", {"title": "stale", "updated_by": "cy", "version": 1}
    )
    assert status == 409
    assert body["error"] == "version_conflict" and body["current_version"] == 2
    assert body["task"]["title"] == "v2"
    _, after, _ = client.request("GET", f"/tasks/{task['id']}")
    assert after["task"]["title"] == "v2" and after["task"]["version"] == 2
    assert len(after["history"]) == 1


def test_if_match_header_carries_the_version(client: Client):
    task = client.create()
    status, _, _ = client.request(
        "PATCH", f"/tasks/{task['id']}", {"status": "in-progress", "updated_by": "bo"}, headers={"If-Match": '"1"'}
    )
    assert status == 200
    status, body, _ = client.request(
        "PATCH", f"/tasks/{task['id']}", {"status": "pending", "updated_by": "bo"}, headers={"If-Match": 'W/"1"'}
    )
    assert status == 409 and body["current_version"] == 2


def test_update_without_a_version_is_last_writer_wins_and_still_recorded(client: Client):
    task = client.create()
    for who, title in (("bo", "first"), ("cy", "second")):
        assert client.request("PATCH", f"/tasks/{task['id']}", {"title": title, "updated_by": who})[0] == 200
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["title"] == "second" and body["task"]["version"] == 3
    assert [(h["new_value"], h["updated_by"]) for h in body["history"]] == [("first", "bo"), ("second", "cy")]


def test_an_update_that_changes_nothing_keeps_the_version(client: Client, bus):
    task = client.create(priority="high")
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"priority": "high", "updated_by": "bo"})
    assert status == 200 and body["task"]["version"] == 1
    assert len(bus.entries) == 1  # only the create


def test_complete_sets_status_and_completed_at(client: Client, bus):
    task = client.create()
    status, body, _ = client.request("POST", f"/tasks/{task['id']}/complete", {"completed_by": "bo", "version": 1})
    assert status == 200
    assert body["task"]["status"] == "completed" and body["task"]["completed_at"]
    assert bus.details()[-1]["eventType"] == "task.completed"
    status, body, _ = client.request("POST", f"/tasks/{task['id']}/complete", {"completed_by": "bo", "version": 1})
    assert status == 409


def test_reopening_a_completed_task_clears_completed_at(client: Client):
    task = client.create(status="completed")
    assert task["completed_at"]
    _, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"status": "in-progress", "updated_by": "bo"})
    assert body["task"]["completed_at"] is None


def test_delete_is_204_and_removes_the_history(client: Client, bus):
    task = client.create()
    client.request("PATCH", f"/tasks/{task['id']}", {"title": "x", "updated_by": "bo"})
    status, body, _ = client.request("DELETE", f"/tasks/{task['id']}")
    assert status == 204 and body is None
    assert client.request("GET", f"/tasks/{task['id']}")[0] == 404
    assert client.request("DELETE", f"/tasks/{task['id']}")[0] == 404
    assert bus.details()[-1]["eventType"] == "task.deleted"
    with client.app.db.connection().cursor() as cur:
        assert (
            cur.execute("SELECT count(*) AS n FROM task_updates WHERE task_id = %s", [task["id"]]).fetchone()["n"] == 0
        )


@pytest.mark.parametrize(
    "method,suffix,body",
    [("DELETE", "", None), ("POST", "/complete", {"completed_by": "bo"})],
    ids=["delete", "complete"],
)
def test_a_stale_if_match_is_409_and_changes_nothing(client: Client, bus, method, suffix, body):
    task = client.create()
    client.request("PATCH", f"/tasks/{task['id']}", {"title": "v2", "updated_by": "bo"})
    _, before, _ = client.request("GET", f"/tasks/{task['id']}")
    bus.entries.clear()
    status, answer, _ = client.request(method, f"/tasks/{task['id']}{suffix}", body, headers={"If-Match": '"1"'})
    assert status == 409
    assert answer["error"] == "version_conflict" and answer["current_version"] == 2
    _, after, _ = client.request("GET", f"/tasks/{task['id']}")
    assert after == before  # the task, its version and its history as they were
    assert bus.entries == []  # and nobody was told of a change
    status, _, _ = client.request(method, f"/tasks/{task['id']}{suffix}", body, headers={"If-Match": '"2"'})
    assert status == (204 if method == "DELETE" else 200)  # the current version goes through


def test_list_is_newest_first_and_pages_with_a_cursor(client: Client):
    ids = [client.create(title=f"task {i}")["id"] for i in range(7)]
    status, page, _ = client.request("GET", "/tasks", query={"limit": "3"})
    assert status == 200 and len(page["tasks"]) == 3 and page["next_cursor"]
    seen = [t["id"] for t in page["tasks"]]
    while page["next_cursor"]:
        _, page, _ = client.request("GET", "/tasks", query={"limit": "3", "cursor": page["next_cursor"]})
        seen += [t["id"] for t in page["tasks"]]
    assert seen == list(reversed(ids))


def test_list_filters(client: Client):
    client.create(title="a", status="in-progress", assigned_to="bo", project_id=1)
    client.create(title="b", status="pending", assigned_to="bo", project_id=2)
    client.create(title="c", status="in-progress", assigned_to="cy", project_id=1)

    def titles(**query: str) -> list[str]:
        status, body, _ = client.request("GET", "/tasks", query=query)
        assert status == 200
        return sorted(t["title"] for t in body["tasks"])

    assert titles(status="in-progress") == ["a", "c"]
    assert titles(assigned_to="bo") == ["a", "b"]
    assert titles(project_id="1", assigned_to="cy") == ["c"]
    assert titles() == ["a", "b", "c"]


def test_list_default_limit_is_50(client: Client):
    for i in range(52):
        client.app.db.transaction(
            lambda conn, i=i: conn.execute("INSERT INTO tasks (title, created_by) VALUES (%s, 'seed')", [f"t{i}"])
        )
    _, body, _ = client.request("GET", "/tasks")
    assert len(body["tasks"]) == 50 and body["next_cursor"]


def test_health(client: Client):
    assert client.request("GET", "/health")[:2] == (200, {"status": "ok"})


def test_unknown_route_is_404_and_wrong_method_is_405(client: Client):
    assert client.request("GET", "/projects")[0] == 404
    status, body, headers = client.request("DELETE", "/tasks")
    assert status == 405 and body["error"] == "method_not_allowed"
    assert headers["allow"] == "GET, POST"


def test_http_api_v2_and_function_url_shape(app):
    event = {
        "version": "2.0",
        "rawPath": "/tasks",
        "rawQueryString": "",
        "requestContext": {"http": {"method": "POST", "path": "/tasks"}, "stage": "$default"},
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"title": "via v2", "created_by": "ana"}),
        "isBase64Encoded": False,
    }
    response = api.handle(event, app, "r")
    assert response["statusCode"] == 201
    created = json.loads(response["body"])["task"]
    event = {
        "version": "2.0",
        "rawPath": f"/prod/tasks/{created['id']}",
        "requestContext": {"http": {"method": "GET"}, "stage": "prod"},
    }
    assert api.handle(event, app, "r")["statusCode"] == 200


def test_base64_encoded_body(app):
    import base64

    body = base64.b64encode(json.dumps({"title": "b64", "created_by": "ana"}).encode()).decode()
    event = {
        "version": "2.0",
        "rawPath": "/tasks",
        "requestContext": {"http": {"method": "POST"}},
        "body": body,
        "isBase64Encoded": True,
    }
    assert api.handle(event, app, "r")["statusCode"] == 201


def test_recipe_direct_invoke_payload_through_the_handler(app_url, monkeypatch):
    monkeypatch.setenv("TASKMGMT_DATABASE_URL", app_url)
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    import task_processor.handler as handler_module

    monkeypatch.setattr(handler_module, "_app", None)
    response = lambda_handler(
        {"httpMethod": "POST", "path": "/tasks", "body": json.dumps({"title": "Direct", "created_by": "ana"})}, None
    )
    assert response["statusCode"] == 201
    assert response["headers"] == {"content-type": "application/json"}
    assert lambda_handler({"httpMethod": "GET", "path": "/health"}, None)["statusCode"] == 200
    listed = json.loads(lambda_handler({"httpMethod": "GET", "path": "/tasks"}, None)["body"])
    assert [t["title"] for t in listed["tasks"]] == ["Direct"]


def test_a_body_given_as_an_object_is_accepted(app):
    event = {"httpMethod": "POST", "path": "/tasks", "body": {"title": "dict body", "created_by": "ana"}}
    assert api.handle(event, app, "r")["statusCode"] == 201


def test_an_unrecognised_invocation_is_400(app_url, monkeypatch):
    monkeypatch.setenv("TASKMGMT_DATABASE_URL", app_url)
    response = lambda_handler({"hello": "world"}, None)
    assert response["statusCode"] == 400


@pytest.mark.parametrize("status_code", [500])
def test_a_500_never_carries_internal_details(client: Client, monkeypatch, status_code):
    from task_processor import app as app_module

    def explode(*args, **kwargs):
        raise RuntimeError("secret connection string postgresql://admin:hunter2@db")

    monkeypatch.setattr(app_module.service, "list_tasks", explode)
    status, body, _ = client.request("GET", "/tasks")
    assert status == status_code
    assert body == {"error": "internal_error", "message": "internal error", "request_id": "test-request"}


def test_one_change_carries_one_instant(client: Client):
    """Every timestamp one change writes is the transaction's now(): none is read twice."""
    created = client.create(status="completed")
    assert created["completed_at"] == created["updated_at"] == created["created_at"]
    task = client.create()
    status, body, _ = client.request(
        "PATCH", f"/tasks/{task['id']}", {"status": "in-progress", "assigned_to": "bo", "updated_by": "cy"}
    )
    assert status == 200
    status, body, _ = client.request("POST", f"/tasks/{task['id']}/complete", {"completed_by": "bo"})
    assert status == 200
    completed = body["task"]
    assert completed["completed_at"] == completed["updated_at"]
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    by_instant: dict[str, set[str]] = {}
    for change in body["history"]:
        by_instant.setdefault(change["updated_by"], set()).add(change["updated_at"])
    assert len(by_instant["cy"]) == 1  # the two fields of one PATCH share one instant
    assert by_instant["bo"] == {completed["updated_at"]}
