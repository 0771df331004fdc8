"""DSQL's documented limits, held by construction: JSON as text, row and size limits per
transaction, and SQLSTATE 54000 as a final answer rather than a broken connection."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from task_processor import app as app_module
from task_processor import service
from task_processor.db import Database
from task_processor.errors import LimitExceeded
from tests.function.conftest import ROW_LIMIT, Client, make_app, send_event, task_event


def add_history(admin_url: str, task_id: str, rows: int, value: str = "x") -> None:
    """Seed history straight into the table, 1,000 rows per transaction (within DSQL's limit)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for start in range(0, rows, 1000):
            conn.execute(
                "INSERT INTO task_updates (task_id, field_name, old_value, new_value, updated_by)"
                " SELECT %s, 'description', %s || g, %s || g, 'seed' FROM generate_series(1, %s) g",
                [task_id, value, value, min(1000, rows - start)],
            )


def count_left(admin_url: str, task_id: str) -> tuple[int, int]:
    with psycopg.connect(admin_url) as conn:
        tasks = conn.execute("SELECT count(*) FROM tasks WHERE id = %s", [task_id]).fetchone()[0]
        history = conn.execute("SELECT count(*) FROM task_updates WHERE task_id = %s", [task_id]).fetchone()[0]
    return tasks, history


# -- JSON ----------------------------------------------------------------------------------------


def test_the_stand_in_driver_returns_json_as_text(app):
    # docs/pessimistic-emulation.md row Q4
    row = app.db.read(lambda conn: conn.execute("SELECT '[1]'::json AS j, '{}'::jsonb AS b").fetchone())
    assert row == {"j": "[1]", "b": "{}"}


def test_the_history_reads_the_same_whether_or_not_the_driver_parses_json(app_url, bus):
    # docs/pessimistic-emulation.md row Q4
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
    # docs/pessimistic-emulation.md row Q1
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
    # docs/pessimistic-emulation.md row Q3
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
    # docs/pessimistic-emulation.md row Q3
    task = client.create()

    def too_big(conn, *args, **kwargs):
        raise psycopg.errors.ProgramLimitExceeded("transaction size limit 10mb exceeded")

    monkeypatch.setattr(app_module.service, "update_task", too_big)
    event = task_event("task.updated", {"taskId": task["id"], "updates": {"title": "x"}, "updatedBy": "bo"})
    outcome = send_event(app, event)
    assert outcome["status"] == "dropped" and "10mb" in outcome["reason"]


# -- deleting a long history ---------------------------------------------------------------------


def test_a_task_with_5000_history_rows_is_deleted_in_batches_and_nothing_is_left(client, schema_url, bus, row_guard):
    # docs/pessimistic-emulation.md row Q1
    task = client.create()
    add_history(schema_url, task["id"], 5000)
    row_guard.largest = 0
    status, _, _ = client.request("DELETE", f"/tasks/{task['id']}", headers={"If-Match": '"1"'})
    assert status == 204
    assert count_left(schema_url, task["id"]) == (0, 0)
    assert row_guard.largest == service.HISTORY_BATCH_ROWS  # each batch its own transaction, 1,000 rows at most
    assert bus.details()[-1]["eventType"] == "task.deleted"


def test_a_delete_with_a_stale_version_deletes_nothing_not_even_history(client, schema_url):
    task = client.create()
    add_history(schema_url, task["id"], 1500)
    client.request("PATCH", f"/tasks/{task['id']}", {"title": "v2", "updated_by": "bo"})
    status, body, _ = client.request("DELETE", f"/tasks/{task['id']}", headers={"If-Match": '"1"'})
    assert status == 409 and body["current_version"] == 2
    assert count_left(schema_url, task["id"]) == (1, 1501)


def test_a_delete_cut_short_between_batches_leaves_the_task_and_a_retry_finishes(client, schema_url, monkeypatch):
    task = client.create()
    add_history(schema_url, task["id"], 2500)
    real = service.delete_task_step
    steps = []

    def dies_after_one_batch(conn, *args):
        if steps:
            raise RuntimeError("the function was stopped")
        steps.append(1)
        return real(conn, *args)

    monkeypatch.setattr(app_module.service, "delete_task_step", dies_after_one_batch)
    assert client.request("DELETE", f"/tasks/{task['id']}", headers={"If-Match": '"1"'})[0] == 500
    assert count_left(schema_url, task["id"]) == (1, 1500)  # the task, at its version, with a shorter history
    monkeypatch.setattr(app_module.service, "delete_task_step", real)
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["version"] == 1
    assert client.request("DELETE", f"/tasks/{task['id']}", headers={"If-Match": '"2"'})[0] == 409
    assert count_left(schema_url, task["id"]) == (1, 1500)
    assert client.request("DELETE", f"/tasks/{task['id']}", headers={"If-Match": '"1"'})[0] == 204
    assert count_left(schema_url, task["id"]) == (0, 0)


def test_large_history_rows_are_deleted_in_batches_of_at_most_4_mib(client, schema_url, row_guard):
    # docs/pessimistic-emulation.md row Q2
    task = client.create()
    # about 80 KB a row: 11.3 MB in all, more than DSQL's 10 MiB for one transaction
    add_history(schema_url, task["id"], 140, value="é" * 20_000)
    row_guard.largest = 0
    assert client.request("DELETE", f"/tasks/{task['id']}")[0] == 204
    assert count_left(schema_url, task["id"]) == (0, 0)
    per_row = 2 * (40_000 + 3) + 1024
    # the row's bound, not the code's own constant; + 1: the task row, deleted with the last batch
    assert row_guard.largest <= 4 * 1024 * 1024 // per_row + 1


def test_rows_within_a_budget():
    assert service._rows_within(10, []) == 0
    assert service._rows_within(10, [4, 4, 4]) == 2
    assert service._rows_within(10, [4, 4]) == 2
    assert service._rows_within(10, [50, 1]) == 1  # one row always goes, or nothing would
