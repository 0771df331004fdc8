"""The task processor against a real PostgreSQL, connected as the function's own role.

Every connection a test opens (the function's, the migrator's, the test's own) is a
GuardedConnection: PostgreSQL made as strict as DSQL where DSQL documents a limit that
PostgreSQL does not enforce (docs/pessimistic-emulation.md, Q1 to Q4).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

from task_processor import api, events  # noqa: E402
from task_processor.app import TaskApp  # noqa: E402
from task_processor.db import Database, url_connect  # noqa: E402
from task_processor.notify import Notifier  # noqa: E402
from taskmgmt_deploy.assets import sql_dir  # noqa: E402
from taskmgmt_deploy.database.connect import from_url  # noqa: E402
from taskmgmt_deploy.database.migrate import Migrator  # noqa: E402
from taskmgmt_deploy.database.sqlfiles import load_migrations  # noqa: E402

# DSQL's rows mutated per transaction: https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html
ROW_LIMIT = 3000
MUTATIONS = ("INSERT", "UPDATE", "DELETE", "MERGE")


class RowGuard:
    """What the guarded connections saw: the largest transaction, and each one over the limit."""

    def __init__(self) -> None:
        self.largest = 0
        self.violations: list[str] = []

    def reset(self) -> None:
        self.largest, self.violations = 0, []


GUARD = RowGuard()


class CountingCursor(psycopg.Cursor[Any]):
    """Adds the rows each INSERT, UPDATE or DELETE reports (cursor.rowcount) to its transaction."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> CountingCursor:
        starts_transaction = self.connection.info.transaction_status == TransactionStatus.IDLE
        super().execute(query, params, **kwargs)
        self.connection.count(self, starts_transaction)  # type: ignore[attr-defined]
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        starts_transaction = self.connection.info.transaction_status == TransactionStatus.IDLE
        super().executemany(query, params_seq, **kwargs)
        self.connection.count(self, starts_transaction)  # type: ignore[attr-defined]


class GuardedConnection(psycopg.Connection[Any]):
    """A PostgreSQL connection held to DSQL's documented rules that PostgreSQL does not enforce:

    - a transaction that mutates more than 3,000 rows fails with SQLSTATE 54000, as on DSQL,
      and is recorded so the test fails even if the code under test swallows the error;
    - json and jsonb results come back as text: the driver never parses JSON for the code.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CountingCursor
        self.mutated = 0
        for name in ("json", "jsonb"):
            self.adapters.register_loader(name, TextLoader)

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        if self.info.transaction_status == TransactionStatus.IDLE:
            self.mutated = 0  # BEGIN is sent now, before the first statement
        return super().transaction(*args, **kwargs)

    def count(self, cursor: psycopg.Cursor[Any], starts_transaction: bool) -> None:
        if starts_transaction:  # autocommit, or the implicit BEGIN of a non-autocommit connection
            self.mutated = 0
        verb = (cursor.statusmessage or "").split(" ")[0]
        if verb not in MUTATIONS or cursor.rowcount <= 0:
            return
        self.mutated += cursor.rowcount
        GUARD.largest = max(GUARD.largest, self.mutated)
        if self.mutated > ROW_LIMIT:
            message = f"transaction row limit exceeded: {self.mutated} rows mutated, DSQL allows {ROW_LIMIT}"
            GUARD.violations.append(message)
            raise psycopg.errors.ProgramLimitExceeded(message)


@pytest.fixture(autouse=True)
def row_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[RowGuard]:
    """Every test in this package is guarded: any transaction over DSQL's row limit fails it."""
    monkeypatch.setattr(psycopg, "connect", GuardedConnection.connect)
    GUARD.reset()
    yield GUARD
    if GUARD.violations:
        pytest.fail("a transaction broke DSQL's row limit: " + "; ".join(GUARD.violations))


class FakeEvents:
    """Records put_events entries; can be told to refuse them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.fail = False
        self.lock = threading.Lock()

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            if self.fail:
                return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "no"}]}
            self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(entry["Detail"]) for entry in self.entries]


def _new_database(pg_server: Any, template: str | None = None) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return pg_server.get_uri().replace("/postgres?", f"/{name}?")


@pytest.fixture(scope="session")
def migrated_template(pg_server: Any) -> str:
    """A database with the schema applied, once per session: each test's database is a copy
    (as quick to make as an empty one; migrating each took about 0.3 s)."""
    url = _new_database(pg_server)
    Migrator(from_url(url), load_migrations(sql_dir()), dsql=False, role_arn=None).apply()
    return url.split("?")[0].rsplit("/", 1)[1]


@pytest.fixture
def schema_url(pg_server: Any, migrated_template: str) -> str:
    """A fresh database with the schema applied; returns the admin URL."""
    return _new_database(pg_server, migrated_template)


@pytest.fixture(scope="module")
def shared_schema_url(pg_server: Any, migrated_template: str) -> str:
    """One migrated database for a whole module; tests that use it start by emptying the
    tables they use (see live_url)."""
    return _new_database(pg_server, migrated_template)


@pytest.fixture
def live_url(shared_schema_url: str) -> str:
    """The module's database, emptied, as the function's role."""
    with psycopg.connect(shared_schema_url, autocommit=True) as conn:
        for table in ("subscriptions", "connections", "task_updates", "tasks", "processed_events"):
            conn.execute(f"DELETE FROM {table}")
    return shared_schema_url.replace("postgres:@", "taskmgmt_app:@")


@pytest.fixture
def app_url(schema_url: str) -> str:
    """The same database, as the least-privileged role the function uses."""
    return schema_url.replace("postgres:@", "taskmgmt_app:@")


@pytest.fixture
def bus() -> FakeEvents:
    return FakeEvents()


def make_app(url: str, bus: FakeEvents, **db_options: Any) -> TaskApp:
    """One function instance. Its OCC backoff sleeps for real: a few jittered milliseconds, and
    only on conflicts, which is what spreads concurrent writers apart."""
    return TaskApp(Database(url_connect(url), **db_options), Notifier("task-bus", "us-east-1", client=bus))


@pytest.fixture
def app(app_url: str, bus: FakeEvents) -> TaskApp:
    return make_app(app_url, bus)


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) request; `raw` is the body as sent, instead of `body` as JSON."""
    return {
        "httpMethod": method,
        "path": path,
        "queryStringParameters": query,
        "headers": headers or {},
        "body": raw if raw is not None else (None if body is None else json.dumps(body)),
    }


class Client:
    """Sends API Gateway REST (v1) requests straight to the API module."""

    def __init__(self, app: TaskApp):
        self.app = app

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        response = api.handle(rest_event(method, path, body, query, headers, raw), self.app, "test-request")
        payload = json.loads(response["body"]) if response["body"] else None
        return response["statusCode"], payload, response["headers"]

    def create(self, **fields: Any) -> dict[str, Any]:
        status, body, _ = self.request("POST", "/tasks", {"title": "Write the report", "created_by": "ana", **fields})
        assert status == 201, body
        return body["task"]


@pytest.fixture
def client(app: TaskApp) -> Client:
    return Client(app)


def task_event(kind: str, detail: dict[str, Any], event_id: str = "evt-1") -> dict[str, Any]:
    detail_type = {"task.created": "Task Created", "task.updated": "Task Updated", "task.completed": "Task Completed"}[
        kind
    ]
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": "task.management",
        "account": "123456789012",
        "time": "2026-11-25T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"eventType": kind, **detail},
    }


def send_event(app: TaskApp, event: dict[str, Any]) -> dict[str, Any]:
    return events.handle(event, app)


class FakeManagement:
    """Every region's management API at once: records posts per (endpoint, connection id);
    connections can be gone (410), failing (500) or slow (held until their gate opens).
    Counts the posts in flight, and notifies `changed` whenever a post starts or ends."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, str, dict[str, Any]]] = []  # endpoint, region, connection id, message
        self.gone: set[str] = set()
        self.failing: set[str] = set()
        self.slow: dict[str, threading.Event] = {}
        self.clients: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.in_flight = self.most_in_flight = 0

    def client(self, endpoint: str, region: str) -> Any:
        self.clients.append((endpoint, region))
        return _FakeClient(self, endpoint, region)

    def received(self, connection_id: str) -> list[dict[str, Any]]:
        with self.changed:
            return [message for _, _, cid, message in self.posts if cid == connection_id]

    def wait_for(self, predicate: Any) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout=10)


class _FakeClient:
    def __init__(self, fake: FakeManagement, endpoint: str, region: str):
        self.fake, self.endpoint, self.region = fake, endpoint, region

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        fake = self.fake
        with fake.changed:
            fake.in_flight += 1
            fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
            fake.changed.notify_all()
        try:
            gate = fake.slow.get(ConnectionId)
            if gate is not None:
                assert gate.wait(timeout=10)
            for ids, code, status in ((fake.gone, "GoneException", 410), (fake.failing, "InternalServerError", 500)):
                if ConnectionId in ids:
                    error = {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}
                    raise ClientError(error, "PostToConnection")
            assert len(Data) <= 128 * 1024  # botocore's limit on Data
            with fake.changed:
                fake.posts.append((self.endpoint, self.region, ConnectionId, json.loads(Data)))
            return {}
        finally:
            with fake.changed:
                fake.in_flight -= 1
                fake.changed.notify_all()


def ws_event(
    route: str,
    connection_id: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
    stage: str = "live",
) -> dict[str, Any]:
    """An API Gateway WebSocket request as the Lambda proxy integration sends it."""
    kinds = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route,
            "eventType": kinds.get(route, "MESSAGE"),
            "connectionId": connection_id,
            "domainName": domain,
            "stage": stage,
            "apiId": domain.split(".", maxsplit=1)[0],
            "messageDirection": "IN",
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "isBase64Encoded": False,
    }
    if query is not None:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


@pytest.fixture
def management() -> FakeManagement:
    return FakeManagement()
