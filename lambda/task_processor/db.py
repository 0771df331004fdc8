"""Database access: one connection reused across warm invocations, transactions retried on OCC.

On DSQL the function connects as the non-admin role with an IAM token made for each new
connection (tokens outlive the handshake, not the role's credentials). The connection is
recycled before DSQL's one-hour limit and reopened only when it is gone (closed by the
server, or broken). A transaction that fails with SQLSTATE 40001 (DSQL's OC000/OC001
conflicts) was rolled back and the connection is fine: it is retried whole on the same
connection, with jittered backoff, a bounded number of times. SQLSTATE 54000 (a DSQL
transaction limit) is final: retrying the same transaction would hit it again.
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-concurrency-control.html
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import IsolationLevel
from psycopg.rows import dict_row

from task_processor import observability
from task_processor.contract import DB_APP_ROLE, ENV_DATABASE_URL, ENV_DSQL_ENDPOINT
from task_processor.errors import LimitExceeded, Unavailable

T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40001", "OC000", "OC001"})
LIMIT_SQLSTATE = "54000"  # DSQL: transaction row, size or age limit exceeded
MAX_CONNECTION_AGE = 50 * 60.0  # DSQL closes connections after 60 minutes


class CommitUncertain(Unavailable):
    """The connection broke during COMMIT: the change may or may not be stored."""


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES


@dataclass
class Stats:
    """What one function instance did to the database (read by the benchmark and the tests)."""

    opened: int = 0
    reconnects: int = 0
    occ_retries: int = 0


class Database:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        *,
        max_attempts: int = 20,
        base_delay: float = 0.005,
        max_delay: float = 1.0,
        max_age: float = MAX_CONNECTION_AGE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._connect = connect
        self.max_attempts = max_attempts
        self.base_delay, self.max_delay, self.max_age = base_delay, max_delay, max_age
        self._clock, self._sleep = clock, sleep
        self._conn: psycopg.Connection[Any] | None = None
        self._opened_at = 0.0
        self.stats = Stats()

    def connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken or self._clock() - self._opened_at > self.max_age):
            self.close()
            conn = None
        if conn is None:
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                raise Unavailable("the database cannot be reached") from exc
            conn.autocommit = True  # transactions are explicit, one per unit of work
            conn.isolation_level = IsolationLevel.REPEATABLE_READ  # DSQL's only level
            conn.row_factory = dict_row
            self._conn, self._opened_at = conn, self._clock()
            self.stats.opened += 1
        return conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def transaction(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `work` in one transaction; retried whole on conflicts and on a dropped connection."""
        return self._run(work, transactional=True)

    def read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run one read-only statement without BEGIN and COMMIT: a round trip instead of three.
        A single statement sees one snapshot anyway, and a read is always safe to retry."""
        return self._run(work, transactional=False)

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], transactional: bool) -> T:
        reconnected = False
        for attempt in range(1, self.max_attempts + 1):
            conn = self.connection()
            committing = False
            try:
                if not transactional:
                    return work(conn)
                with conn.transaction():
                    result = work(conn)
                    committing = True
                return result
            except psycopg.Error as exc:
                if is_retryable(exc):  # rolled back; the connection is fine: retry on it
                    self._backoff(attempt)
                    continue
                if getattr(exc, "sqlstate", None) == LIMIT_SQLSTATE:
                    reason = exc.diag.message_primary or str(exc)
                    raise LimitExceeded(
                        f"the transaction exceeded a database limit ({reason}); retrying will not help"
                    ) from exc
                if not (conn.closed or conn.broken):
                    if isinstance(exc, psycopg.OperationalError):
                        raise Unavailable("the database could not run the request") from exc
                    raise
                self.close()
                if committing:
                    raise CommitUncertain("the connection broke while committing") from exc
                if reconnected:
                    raise Unavailable("the database connection keeps failing") from exc
                reconnected = True  # the connection is gone (dropped while idle): reconnect once, retry
                self.stats.reconnects += 1
                observability.count("Reconnects")
        raise Unavailable(f"the transaction still conflicted after {self.max_attempts} attempts")

    def _backoff(self, attempt: int) -> None:
        self.stats.occ_retries += 1
        observability.count("OccRetries")
        if attempt < self.max_attempts:
            ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
            self._sleep(random.uniform(0, ceiling))  # full jitter


def dsql_connect(endpoint: str, region: str, user: str = DB_APP_ROLE) -> Callable[[], psycopg.Connection[Any]]:
    client: list[Any] = []

    def connect() -> psycopg.Connection[Any]:
        if not client:
            import boto3  # the runtime's boto3; imported only when DSQL is used

            client.append(boto3.client("dsql", region_name=region))
        token = client[0].generate_db_connect_auth_token(Hostname=endpoint, Region=region, ExpiresIn=900)
        return psycopg.connect(
            host=endpoint,
            port=5432,
            dbname="postgres",
            user=user,
            password=token,
            sslmode="require",
            connect_timeout=10,
            application_name="taskmgmt-task-processor",
        )

    return connect


def url_connect(url: str) -> Callable[[], psycopg.Connection[Any]]:
    return lambda: psycopg.connect(url, connect_timeout=10, application_name="taskmgmt-task-processor")


def from_environment() -> Database:
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        return Database(url_connect(url))
    endpoint = os.environ.get(ENV_DSQL_ENDPOINT)
    if not endpoint:

        def unconfigured() -> psycopg.Connection[Any]:
            raise Unavailable(f"neither {ENV_DSQL_ENDPOINT} nor {ENV_DATABASE_URL} is set")

        return Database(unconfigured)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return Database(dsql_connect(endpoint, region))
