"""DSQL's documented limits, held by construction."""

from __future__ import annotations

import psycopg

from task_processor.db import Database
from tests.function.conftest import Client, make_app

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
