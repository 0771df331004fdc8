"""DSQL's documented limits, held by construction: JSON as text, row and size limits per
transaction, and SQLSTATE 54000 as a final answer rather than a broken connection."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from task_processor import app as app_module
from task_processor.db import Database
from task_processor.errors import LimitExceeded
from tests.function.conftest import ROW_LIMIT, Client, make_app, send_event, task_event

# -- JSON ----------------------------------------------------------------------------------------


def test_the_stand_in_driver_returns_json_as_text(app):
    row = app.db.read(lambda conn: conn.execute("SELECT '[1]'::json AS j, '{}'::jsonb AS b").fetchone())
    assert row == {"j": "[1]", "b": "{}"}


def test_the_history_reads_the_same_whether_or_not_the_driver_parses_json(app_url, bus):
    client = Client(make_app(app_url, bus))
    task = client.create()
    for title in ("second", "third"):
        client.request("PATCH", f"/tasks/{task['id']}", {"title": title, "priority": "high", "updated_by": "bo"})
    as_text = client.request("GET", f"/tasks/{task['id']}")
    parsing = Client(make_app(app_url, bus))
    parsing.app.db = Database(lambda: psycopg.Connection.connect(app_url))  # psycopg's own JSON loaders
    as_json = parsing.request("GET", f"/tasks/{task['id']}")
    assert as_text == as_json
    status, body, _ = as_text
    assert status == 200 and sorted(h["new_value"] for h in body["history"]) == ["high", "second", "third"]
    assert all(h["updated_at"].endswith("Z") for h in body["history"])


# -- rows per transaction ------------------------------------------------------------------------


def test_the_guard_fails_a_transaction_over_3000_rows_and_54000_is_final(app, row_guard):
    def insert(rows: int) -> Any:
        return lambda conn: conn.execute(
            "INSERT INTO processed_events (event_id, event_type)"
            " SELECT %s || g, 'task.created' FROM generate_series(1, %s) g",
            [f"batch-{rows}-", rows],
        )

    app.db.transaction(insert(ROW_LIMIT))  # exactly at the limit: allowed
    pid = app.db.connection().info.backend_pid
    with pytest.raises(LimitExceeded, match=r"row limit exceeded.*retrying will not help"):
        app.db.transaction(insert(ROW_LIMIT + 1))
    assert row_guard.violations == [f"transaction row limit exceeded: {ROW_LIMIT + 1} rows mutated, DSQL allows 3000"]
    row_guard.violations.clear()  # seen: this test is the one meant to break the limit
    assert app.db.connection().info.backend_pid == pid  # the same connection: not taken for a broken one
    assert (app.db.stats.opened, app.db.stats.reconnects, app.db.stats.occ_retries) == (1, 0, 0)
    count = app.db.read(lambda conn: conn.execute("SELECT count(*) AS n FROM processed_events").fetchone()["n"])
    assert count == ROW_LIMIT  # the refused transaction was rolled back


def test_a_limit_error_is_one_clear_500_never_retried_or_reconnected(client: Client, monkeypatch):
    task = client.create()
    calls = []

    def too_old(conn, *args, **kwargs):
        calls.append(1)
        raise psycopg.errors.ProgramLimitExceeded("transaction age limit of 300s exceeded")

    monkeypatch.setattr(app_module.service, "update_task", too_old)
    pid = client.app.db.connection().info.backend_pid
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "x", "updated_by": "bo"})
    assert status == 500 and body["error"] == "limit_exceeded"
    assert "transaction age limit of 300s exceeded" in body["message"] and "will not help" in body["message"]
    assert len(calls) == 1
    assert client.app.db.connection().info.backend_pid == pid and client.app.db.stats.reconnects == 0


def test_an_event_that_hits_a_limit_is_dropped_not_retried(app, client: Client, monkeypatch):
    task = client.create()

    def too_big(conn, *args, **kwargs):
        raise psycopg.errors.ProgramLimitExceeded("transaction size limit 10mb exceeded")

    monkeypatch.setattr(app_module.service, "update_task", too_big)
    event = task_event("task.updated", {"taskId": task["id"], "updates": {"title": "x"}, "updatedBy": "bo"})
    outcome = send_event(app, event)
    assert outcome["status"] == "dropped" and "10mb" in outcome["reason"]
