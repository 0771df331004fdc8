"""Hostile requests: each gets a 4xx with a useful message, never a 500, and changes nothing."""

from __future__ import annotations

import json

import psycopg
import pytest

from task_processor import api
from tests.function.conftest import rest_event as req

GOOD = {"title": "ok", "created_by": "ana"}
TASK = "11111111-2222-4333-8444-555555555555"  # replaced by a real task id in each test


HOSTILE = [
    # malformed JSON and bodies of the wrong shape
    ("malformed json", req("POST", "/tasks", raw="{title: 'x'"), 400, "body"),
    ("truncated json", req("POST", "/tasks", raw='{"title": "x", "created_by": '), 400, "body"),
    ("json array body", req("POST", "/tasks", body=[GOOD]), 400, "body"),
    ("json string body", req("POST", "/tasks", raw='"a string"'), 400, "body"),
    ("empty body on create", req("POST", "/tasks"), 400, "body"),
    ("deeply nested json", req("POST", "/tasks", raw="[" * 100_000 + "]" * 100_000), 413, None),
    ("body over 64 KiB", req("POST", "/tasks", body={**GOOD, "description": "x" * 70_000}), 413, None),
    ("bad base64", {**req("POST", "/tasks", raw="!!!"), "isBase64Encoded": True}, 400, "body"),
    # missing and unknown fields
    ("missing title", req("POST", "/tasks", body={"created_by": "ana"}), 400, "title"),
    ("missing created_by", req("POST", "/tasks", body={"title": "x"}), 400, "created_by"),
    ("unknown field", req("POST", "/tasks", body={**GOOD, "owner": "x"}), 400, "owner"),
    (
        "sql-looking field name",
        req("POST", "/tasks", body={**GOOD, "title; DROP TABLE tasks; --": "x"}),
        400,
        "title; DROP TABLE tasks; --",
    ),
    ("id is not settable", req("POST", "/tasks", body={**GOOD, "id": TASK}), 400, "id"),
    ("version is not settable on create", req("POST", "/tasks", body={**GOOD, "version": 7}), 400, "version"),
    # wrong types
    ("title is a number", req("POST", "/tasks", body={**GOOD, "title": 42}), 400, "title"),
    ("title is null", req("POST", "/tasks", body={**GOOD, "title": None}), 400, "title"),
    ("title is a list", req("POST", "/tasks", body={**GOOD, "title": ["x"]}), 400, "title"),
    ("project_id is a string", req("POST", "/tasks", body={**GOOD, "project_id": "7"}), 400, "project_id"),
    ("project_id is a float", req("POST", "/tasks", body={**GOOD, "project_id": 7.5}), 400, "project_id"),
    ("project_id is a bool", req("POST", "/tasks", body={**GOOD, "project_id": True}), 400, "project_id"),
    ("project_id is negative", req("POST", "/tasks", body={**GOOD, "project_id": -1}), 400, "project_id"),
    ("project_id overflows bigint", req("POST", "/tasks", body={**GOOD, "project_id": 2**63}), 400, "project_id"),
    ("status not in the list", req("POST", "/tasks", body={**GOOD, "status": "done"}), 400, "status"),
    ("priority upper case", req("POST", "/tasks", body={**GOOD, "priority": "HIGH"}), 400, "priority"),
    ("due_date not a date", req("POST", "/tasks", body={**GOOD, "due_date": "next tuesday"}), 400, "due_date"),
    ("due_date a number", req("POST", "/tasks", body={**GOOD, "due_date": 1700000000}), 400, "due_date"),
    (
        "NaN project id",
        req("POST", "/tasks", raw='{"title": "x", "created_by": "a", "project_id": NaN}'),
        400,
        "project_id",
    ),
    # sizes and text edge cases
    ("title over 255 characters", req("POST", "/tasks", body={**GOOD, "title": "t" * 256}), 400, "title"),
    ("empty title", req("POST", "/tasks", body={**GOOD, "title": ""}), 400, "title"),
    ("blank title", req("POST", "/tasks", body={**GOOD, "title": "   "}), 400, "title"),
    ("created_by over 100", req("POST", "/tasks", body={**GOOD, "created_by": "a" * 101}), 400, "created_by"),
    ("NUL in title", req("POST", "/tasks", body={**GOOD, "title": "bad\u0000title"}), 400, "title"),
    ("lone surrogate", req("POST", "/tasks", raw='{"title": "\\ud800", "created_by": "a"}'), 400, "title"),
    ("control character in name", req("POST", "/tasks", body={**GOOD, "created_by": "a\u0007b"}), 400, "created_by"),
    ("description over 10000", req("POST", "/tasks", body={**GOOD, "description": "d" * 10_001}), 400, "description"),
    # ids, routes and methods
    ("malformed id", req("GET", "/tasks/123"), 400, "id"),
    ("sql in id", req("GET", "/tasks/1' OR '1'='1"), 400, "id"),
    ("path traversal", req("GET", "/tasks/../../etc/passwd"), 404, None),
    ("unknown route", req("GET", "/admin"), 404, None),
    ("wrong method", req("PATCH", "/tasks"), 405, None),
    ("complete with GET", req("GET", f"/tasks/{TASK}/complete"), 405, None),
    # updates
    ("update without updated_by", req("PATCH", f"/tasks/{TASK}", body={"title": "x"}), 400, "updated_by"),
    ("update with nothing to change", req("PATCH", f"/tasks/{TASK}", body={"updated_by": "bo"}), 400, "body"),
    (
        "update of created_by",
        req("PATCH", f"/tasks/{TASK}", body={"created_by": "eve", "updated_by": "e"}),
        400,
        "created_by",
    ),
    (
        "version is a string",
        req("PATCH", f"/tasks/{TASK}", body={"title": "x", "updated_by": "a", "version": "1"}),
        400,
        "version",
    ),
    (
        "version is zero",
        req("PATCH", f"/tasks/{TASK}", body={"title": "x", "updated_by": "a", "version": 0}),
        400,
        "version",
    ),
    (
        "garbage If-Match",
        req("PATCH", f"/tasks/{TASK}", body={"title": "x", "updated_by": "a"}, headers={"If-Match": "*"}),
        400,
        "If-Match",
    ),
    ("complete without completed_by", req("POST", f"/tasks/{TASK}/complete", body={}), 400, "completed_by"),
    # list queries
    ("huge limit", req("GET", "/tasks", query={"limit": "1000000"}), 400, "limit"),
    ("zero limit", req("GET", "/tasks", query={"limit": "0"}), 400, "limit"),
    ("negative limit", req("GET", "/tasks", query={"limit": "-5"}), 400, "limit"),
    ("negative cursor", req("GET", "/tasks", query={"cursor": "-1"}), 400, "cursor"),
    ("forged cursor", req("GET", "/tasks", query={"cursor": "eyJhIjoxfQ"}), 400, "cursor"),
    ("unknown query parameter", req("GET", "/tasks", query={"order": "asc"}), 400, "order"),
    ("sql in a filter", req("GET", "/tasks", query={"status": "pending' OR 1=1 --"}), 400, "status"),
    ("project filter not a number", req("GET", "/tasks", query={"project_id": "1;DROP"}), 400, "project_id"),
]


def snapshot(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        tasks = conn.execute("SELECT id, title, version, updated_at FROM tasks ORDER BY id").fetchall()
        updates = conn.execute("SELECT count(*) FROM task_updates").fetchone()
    return [*tasks, updates]


def test_there_are_at_least_40_hostile_cases():
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("name,event,status,field", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_request_is_refused_usefully(app, client, schema_url, name, event, status, field):
    task = client.create()
    event = json.loads(json.dumps(event).replace(TASK, task["id"]))
    before = snapshot(schema_url)
    response = api.handle(event, app, "req")
    assert response["statusCode"] == status, response["body"]
    body = json.loads(response["body"])
    assert body["error"] and body["message"]
    if field is not None:
        assert field in body["details"], body
    assert "Traceback" not in response["body"] and "psycopg" not in response["body"]
    assert snapshot(schema_url) == before
