"""Waiting for DSQL's asynchronous index builds without holding a transaction open.

CREATE INDEX ASYNC returns a job id at once and builds the index in the background. The
blocking sys.wait_for_job would wait inside one statement, and DSQL ends every
transaction after five minutes, so a longer build would fail the wait. Instead each look
at sys.jobs is its own short statement, spaced out on the injected clock. One run waits
at most INDEX_WAIT for all its builds together, which also keeps its one connection well
inside DSQL's 60-minute connection limit. A job id is recorded in schema_index_jobs as
soon as it is known, so a run that was interrupted or gave up waiting finds the job
again: CREATE INDEX ASYNC IF NOT EXISTS returns no job for an index that already exists,
even one still being built or left INVALID by a failed build.
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg

from taskmgmt_deploy.aws.retry import call_with_retry
from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.errors import TaskmgmtError

JOBS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_index_jobs (index_name varchar(255) PRIMARY KEY, "
    "job_id varchar(64) NOT NULL, version varchar(16) NOT NULL, "
    "submitted_at timestamptz NOT NULL DEFAULT now())"
)
RUNNING = frozenset({"submitted", "processing"})
FAILED = frozenset({"failed", "cancelled", "canceled"})
INDEX_WAIT = 30 * 60.0  # seconds one run waits for index builds in all before it stops (a rerun waits on)
FIRST_POLL, LONGEST_POLL = 1.0, 15.0
REPORT_EVERY = 60.0  # progress while the status stays the same
_INDEX = re.compile(r'^\s*create\s+(?:unique\s+)?index\s+async\s+(?:if\s+not\s+exists\s+)?"?([\w$]+)"?', re.IGNORECASE)


class IndexJobError(TaskmgmtError):
    pass


def index_name(statement: str) -> str | None:
    """The index a CREATE INDEX ASYNC statement builds; None for any other statement."""
    match = _INDEX.match(statement)
    return match.group(1) if match else None


def is_occ_conflict(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in ("40001", "OC000", "OC001")


class IndexJobs:
    """The index builds of one migrate run, which shares one deadline among them."""

    def __init__(self, clock: Clock, progress: Callable[[str], None], wait: float = INDEX_WAIT):
        self.clock, self.progress, self.wait = clock, progress, wait
        self.deadline: float | None = None

    def settle(self, conn: psycopg.Connection[Any], index: str, job: str | None, migration: str, version: str) -> None:
        """Return once the index is built; raise IndexJobError if it failed or is still building."""
        if job is None:  # the index was there already: an earlier run submitted its build
            job = self._recorded(conn, index)
        else:
            self._record(conn, index, job, version)
        self._await(conn, index, job, migration)

    def _await(self, conn: psycopg.Connection[Any], index: str, job: str | None, migration: str) -> None:
        started, delay = self.clock.now(), FIRST_POLL
        if self.deadline is None:
            self.deadline = started + self.wait
        reported: tuple[str, float] | None = None
        while (status := self._status(conn, index, job, migration)) is not None:
            waited, left = self.clock.now() - started, self.deadline - self.clock.now()
            if left <= 0:
                raise IndexJobError(
                    f"index job {job} ({index}) of {migration} is still {status} after {waited:.0f} s "
                    f"(one run waits {self.wait:.0f} s for index builds); run migrate again to keep waiting "
                    "(the migration is recorded once the index is built)"
                )
            if reported is None or reported[0] != status or waited - reported[1] >= REPORT_EVERY:
                self.progress(f"index job {job} ({index}): {status}, {waited:.0f} s")
                reported = (status, waited)
            self.clock.sleep(min(delay, left))
            delay = min(delay * 2, LONGEST_POLL)

    def _status(self, conn: psycopg.Connection[Any], index: str, job: str | None, migration: str) -> str | None:
        """The build's status while it runs, None once the index is built; raises if it never will be."""
        row = self._job(conn, job) if job else None
        if row is None:  # no job known, or its record was purged (DSQL keeps finished jobs a while)
            if self._valid(conn, index):
                return None
            raise IndexJobError(
                f"index {index} of {migration} is not valid and "
                + (f"its build job {job} is no longer listed" if job else "no build job of it is known")
                + f"; drop it (DROP INDEX {index}) and run migrate again"
            )
        status, details = str(row.get("status") or "").lower(), row.get("details")
        if status == "completed":
            self.progress(f"index {index} built (job {job})")
            return None
        if status in FAILED:
            raise IndexJobError(
                f"index job {job} ({index}) of {migration} {status}: {details or 'no reason given'}; "
                f"drop the INVALID index (DROP INDEX {index}) and run migrate again"
            )
        if status not in RUNNING:
            raise IndexJobError(f"index job {job} ({index}) reports status {status!r}, which taskmgmt does not know")
        return status

    def _job(self, conn: psycopg.Connection[Any], job: str) -> dict[str, Any] | None:
        # Read by column name with SELECT *: only the job id and its status values are documented.
        def look() -> dict[str, Any] | None:
            cursor = conn.execute("SELECT * FROM sys.jobs WHERE job_id = %s", [job])
            row = cursor.fetchone()
            return None if row is None else dict(zip([c.name for c in cursor.description or []], row, strict=False))

        return self._retried(look)

    def _valid(self, conn: psycopg.Connection[Any], index: str) -> bool:
        row = self._retried(
            lambda: conn.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = %s",
                [index],
            ).fetchone()
        )
        return bool(row and row[0])

    def _recorded(self, conn: psycopg.Connection[Any], index: str) -> str | None:
        row = self._retried(
            lambda: conn.execute("SELECT job_id FROM schema_index_jobs WHERE index_name = %s", [index]).fetchone()
        )
        return row[0] if row else None

    def _record(self, conn: psycopg.Connection[Any], index: str, job: str, version: str) -> None:
        def record() -> None:
            with conn.transaction():  # DML only, so DSQL allows both statements in one transaction
                conn.execute("DELETE FROM schema_index_jobs WHERE index_name = %s", [index])
                conn.execute(
                    "INSERT INTO schema_index_jobs (index_name, job_id, version) VALUES (%s, %s, %s)",
                    [index, job, version],
                )

        self._retried(record)

    def _retried(self, fn: Callable[[], Any]) -> Any:
        return call_with_retry(fn, is_occ_conflict, "occ_conflict", self.clock, self.progress)
