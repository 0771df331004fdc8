"""No lost updates: versions, OCC retries, dropped connections."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from task_processor import app as app_module
from task_processor.db import Database, url_connect
from tests.function.conftest import Client, FakeEvents, make_app


def test_two_updates_with_the_same_version_give_one_200_and_one_409(app_url, bus):
    client = Client(make_app(app_url, bus))
    task = client.create()
    barrier = threading.Barrier(2)

    def update(who: str) -> int:
        other = Client(make_app(app_url, bus))
        barrier.wait()
        return other.request("PATCH", f"/tasks/{task['id']}", {"title": f"by {who}", "updated_by": who, "version": 1})[
            0
        ]

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(update, ["bo", "cy"]))
    assert codes == [200, 409]
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["version"] == 2 and len(body["history"]) == 1


def test_a_burst_of_concurrent_updates_loses_none(app_url, bus):
    client = Client(make_app(app_url, bus))
    task = client.create()
    writers, rounds = 12, 5

    def writer(n: int) -> int:
        mine = Client(make_app(app_url, bus))
        ok = 0
        for i in range(rounds):
            status, _, _ = mine.request(
                "PATCH", f"/tasks/{task['id']}", {"description": f"writer {n} round {i}", "updated_by": f"w{n}"}
            )
            assert status == 200
            ok += 1
        return ok

    with ThreadPoolExecutor(writers) as pool:
        successes = sum(pool.map(writer, range(writers)))
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert successes == writers * rounds
    assert body["task"]["version"] == 1 + successes
    assert len(body["history"]) == successes
    assert len({h["new_value"] for h in body["history"]}) == successes


def test_a_serialization_failure_is_retried_and_succeeds(client: Client, monkeypatch):
    # docs/pessimistic-emulation.md row Q5
    task = client.create()
    real = app_module.service.update_task
    failures = {"left": 2}

    def flaky(conn, *args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise psycopg.errors.SerializationFailure("change conflicts with another transaction (OC000)")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(app_module.service, "update_task", flaky)
    pid = client.app.db.connection().info.backend_pid
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "after retries", "updated_by": "bo"})
    assert status == 200 and body["task"]["version"] == 2
    assert failures["left"] == 0
    assert client.app.db.connection().info.backend_pid == pid  # retried on the same connection
    assert (client.app.db.stats.opened, client.app.db.stats.reconnects, client.app.db.stats.occ_retries) == (1, 0, 2)


def test_conflicts_that_never_end_give_503_not_500(app_url, bus, monkeypatch):
    client = Client(make_app(app_url, bus, max_attempts=3))
    task = client.create()

    def always(conn, *args, **kwargs):
        raise psycopg.errors.SerializationFailure("OC000")

    monkeypatch.setattr(app_module.service, "update_task", always)
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "x", "updated_by": "bo"})
    assert status == 503 and body["error"] == "unavailable"


def test_an_operational_error_on_a_live_connection_is_503_and_keeps_the_connection(client: Client, monkeypatch):
    task = client.create()

    def cancelled(conn, *args, **kwargs):
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    monkeypatch.setattr(app_module.service, "update_task", cancelled)
    pid = client.app.db.connection().info.backend_pid
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "x", "updated_by": "bo"})
    assert status == 503 and body["error"] == "unavailable"
    assert client.app.db.connection().info.backend_pid == pid and client.app.db.stats.reconnects == 0


def test_a_connection_dropped_between_invocations_is_reopened(app_url, schema_url, bus):
    # docs/pessimistic-emulation.md row Q11
    client = Client(make_app(app_url, bus))
    client.create()
    pid = client.app.db.connection().info.backend_pid
    with psycopg.connect(schema_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    status, body, _ = client.request("GET", "/tasks")
    assert status == 200 and len(body["tasks"]) == 1
    assert client.app.db.connection().info.backend_pid != pid
    assert (client.app.db.stats.opened, client.app.db.stats.reconnects) == (2, 1)


def test_the_connection_is_reused_and_recycled_when_old(app_url):
    # docs/pessimistic-emulation.md row Q11
    now = [0.0]
    opened = []

    def connect():
        opened.append(1)
        return psycopg.connect(app_url)

    db = Database(connect, clock=lambda: now[0])  # the default age: the one the function runs with
    for second in (0, 60, 600):
        now[0] = second
        db.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
    assert len(opened) == 1
    now[0] = 3599  # DSQL closes a connection at 60 minutes: one this old must be new already
    db.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
    assert len(opened) == 2


def test_the_function_cannot_touch_what_it_was_not_granted(app_url):
    with psycopg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM schema_migrations")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM processed_events")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE tasks")


def test_url_connect_is_used_for_local_databases(app_url):
    db = Database(url_connect(app_url))
    assert db.transaction(lambda conn: conn.execute("SELECT current_user AS u").fetchone())["u"] == "taskmgmt_app"


def _hot_writer(url: str, task_id: str, n: int, results: Any) -> None:
    """One function instance in its own process: one update of the hot task, no version."""
    app = make_app(url, FakeEvents())
    status = Client(app).request("PATCH", f"/tasks/{task_id}", {"description": f"w{n}", "updated_by": f"w{n}"})[0]
    results.put((status, app.db.stats.opened, app.db.stats.reconnects, app.db.stats.occ_retries))


def test_sixteen_writer_processes_on_one_task_retry_conflicts_on_their_own_connections(app_url, schema_url, bus):
    # docs/pessimistic-emulation.md row Q5
    """Real 40001s: the writers queue on the row this test holds, the test changes it, and at
    REPEATABLE READ every one of them then fails to serialize and must retry."""
    client = Client(make_app(app_url, bus))
    task = client.create()
    writers = 16
    forking = multiprocessing.get_context("fork")  # the children inherit the row guard
    results = forking.Queue()
    with psycopg.connect(schema_url) as gate, psycopg.connect(schema_url, autocommit=True) as watcher:
        gate.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", [task["id"]])
        processes = [
            forking.Process(target=_hot_writer, args=(app_url, task["id"], n, results)) for n in range(writers)
        ]
        for process in processes:
            process.start()
        deadline = time.monotonic() + 60
        while _waiting_for_a_lock(watcher) < writers:  # each poll is a round trip; no sleep needed
            assert time.monotonic() < deadline, "the writers never queued on the task"
        gate.execute("UPDATE tasks SET updated_at = updated_at WHERE id = %s", [task["id"]])
    outcomes = [results.get(timeout=60) for _ in range(writers)]
    for process in processes:
        process.join(timeout=60)
    statuses, opened, reconnects, retries = zip(*outcomes, strict=True)
    assert statuses == (200,) * writers
    assert (sum(opened), sum(reconnects)) == (writers, 0)  # a conflict never costs a connection
    assert min(retries) >= 1  # every writer met at least one real serialization failure
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["version"] == 1 + writers
    assert sorted(h["new_value"] for h in body["history"]) == sorted(f"w{n}" for n in range(writers))


def _waiting_for_a_lock(conn: psycopg.Connection[Any]) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


def test_an_expired_token_is_never_reused(app_url, monkeypatch):
    """DSQL tokens expire (15 minutes by default); a connection outlives its token, a new one does not."""
    from task_processor import db as db_module

    now = [0.0]
    issued: list[float] = []

    class Tokens:
        def generate_db_connect_auth_token(self, Hostname, Region, ExpiresIn):
            issued.append(now[0])
            return f"token-issued-at-{now[0]}"

    real_connect = psycopg.connect

    def dsql_like(**kwargs):
        issued_at = float(kwargs["password"].rsplit("-", 1)[1])
        if now[0] - issued_at > 900:
            raise psycopg.OperationalError("FATAL: access denied: the authentication token has expired")
        return real_connect(app_url)

    monkeypatch.setattr("boto3.client", lambda *args, **kwargs: Tokens())
    monkeypatch.setattr(db_module.psycopg, "connect", dsql_like)
    db = Database(db_module.dsql_connect("cluster.dsql.us-east-1.on.aws", "us-east-1"), clock=lambda: now[0])
    assert db.transaction(lambda conn: conn.execute("SELECT 1 AS one").fetchone())["one"] == 1
    now[0] = 20 * 60  # the token has expired; the open connection still works
    assert db.transaction(lambda conn: conn.execute("SELECT 2 AS two").fetchone())["two"] == 2
    db.connection().close()  # the server dropped it
    assert db.transaction(lambda conn: conn.execute("SELECT 3 AS three").fetchone())["three"] == 3
    now[0] = 2 * 3600  # past DSQL's hour: recycled, with a fresh token again
    assert db.transaction(lambda conn: conn.execute("SELECT 4 AS four").fetchone())["four"] == 4
    assert issued == [0.0, 20 * 60, 2 * 3600]
