"""taskmgmt invoke's exit code: 0 only when the function ran and answered."""

from __future__ import annotations

import json

import pytest

from taskmgmt_deploy.usecases.functions import invoke_failure


def http(status: int, body: dict | None = None) -> bytes:
    return json.dumps({"statusCode": status, "body": json.dumps(body) if body else ""}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        http(200, {"tasks": []}),
        http(201, {"task": {}}),
        http(204),
        json.dumps({"status": "applied", "taskId": "t"}).encode(),
        json.dumps({"status": "duplicate", "taskId": "t"}).encode(),
    ],
)
def test_an_answer_is_success(payload):
    assert invoke_failure(payload, None) is None


@pytest.mark.parametrize(
    "payload,error,reason",
    [
        (b'{"errorMessage": "boom", "errorType": "RuntimeError"}', "Unhandled", "the function failed (Unhandled)"),
        (
            http(404, {"error": "not_found", "message": "no route for /x"}),
            None,
            "the function answered 404 (not_found: no route for /x)",
        ),
        (http(503, {"error": "unavailable", "message": "down"}), None, "the function answered 503 (unavailable: down)"),
        (http(500), None, "the function answered 500"),
        (
            json.dumps({"status": "dropped", "reason": "unknown eventType 'x'"}).encode(),
            None,
            "the function dropped the event: unknown eventType 'x'",
        ),
    ],
)
def test_a_failure_names_itself_in_one_line(payload, error, reason):
    assert invoke_failure(payload, error) == reason
