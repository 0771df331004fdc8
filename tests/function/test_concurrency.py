"""No lost updates: versions, OCC retries, dropped connections."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from task_processor import app as app_module
from task_processor.db import Database, url_connect
from tests.function.conftest import Client, make_app


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
    task = client.create()
    real = app_module.service.update_task
    failures = {"left": 2}

    def flaky(conn, *args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise psycopg.errors.SerializationFailure("change conflicts with another transaction (OC000)")
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(app_module.service, "update_task", flaky)
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "after retries", "updated_by": "bo"})
    assert status == 200 and body["task"]["version"] == 2
    assert failures["left"] == 0


def test_conflicts_that_never_end_give_503_not_500(app_url, bus, monkeypatch):
    client = Client(make_app(app_url, bus, max_attempts=3))
    task = client.create()

    def always(conn, *args, **kwargs):
        raise psycopg.errors.SerializationFailure("OC000")

    monkeypatch.setattr(app_module.service, "update_task", always)
    status, body, _ = client.request("PATCH", f"/tasks/{task['id']}", {"title": "x", "updated_by": "bo"})
    assert status == 503 and body["error"] == "unavailable"


def test_a_connection_dropped_between_invocations_is_reopened(app_url, schema_url, bus):
    client = Client(make_app(app_url, bus))
    client.create()
    pid = client.app.db.connection().info.backend_pid
    with psycopg.connect(schema_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    status, body, _ = client.request("GET", "/tasks")
    assert status == 200 and len(body["tasks"]) == 1
    assert client.app.db.connection().info.backend_pid != pid


def test_the_connection_is_reused_and_recycled_when_old(app_url):
    now = [0.0]
    opened = []

    def connect():
        opened.append(1)
        return psycopg.connect(app_url)

    db = Database(connect, clock=lambda: now[0], max_age=3000)
    for _ in range(3):
        db.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
    assert len(opened) == 1
    now[0] = 3001
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


def test_sixteen_writers_on_one_task_lose_nothing_and_never_fail(app_url, bus):
    client = Client(make_app(app_url, bus))
    task = client.create()
    writers, rounds = 16, 3

    def writer(n: int) -> list[int]:
        mine = Client(make_app(app_url, bus))
        return [
            mine.request("PATCH", f"/tasks/{task['id']}", {"description": f"w{n}r{i}", "updated_by": f"w{n}"})[0]
            for i in range(rounds)
        ]

    with ThreadPoolExecutor(writers) as pool:
        codes = [code for batch in pool.map(writer, range(writers)) for code in batch]
    assert codes == [200] * writers * rounds  # no 500, no 503: every conflict was retried to success
    _, body, _ = client.request("GET", f"/tasks/{task['id']}")
    assert body["task"]["version"] == 1 + writers * rounds
    assert len(body["history"]) == writers * rounds


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
