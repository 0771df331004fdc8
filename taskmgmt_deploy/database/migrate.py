"""Apply sql/ to the database, then make the function's role and grants. Idempotent.

DSQL's rules: a transaction holds one DDL statement and never DDL with DML, so every
statement here runs in its own; indexes are built asynchronously (jobs.py waits for
them); the application role is mapped to the function's IAM role with AWS IAM GRANT.
On a plain PostgreSQL (a local URL) the DSQL-only parts are translated (CREATE INDEX
ASYNC -> CREATE INDEX, which is done when it returns) or skipped (the IAM mapping);
everything else runs as it is.
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/using-database-and-iam-roles.html

Nothing is changed that is already as wanted: DDL on a live DSQL cluster makes every other
session retry (OC001), so a second run must not issue any.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from taskmgmt_deploy.aws.retry import call_with_retry
from taskmgmt_deploy.core.clock import Clock, SystemClock
from taskmgmt_deploy.database.jobs import INDEX_WAIT, JOBS_TABLE, IndexJobs, index_name, is_occ_conflict
from taskmgmt_deploy.database.sqlfiles import Migration, check_migrations
from taskmgmt_deploy.errors import TaskmgmtError

APP_ROLE = "taskmgmt_app"
# Only the DML the function needs (schema_migrations: none).
APP_GRANTS = {
    "tasks": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "task_updates": ("SELECT", "INSERT", "DELETE"),
    "processed_events": ("SELECT", "INSERT"),
    "connections": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "subscriptions": ("SELECT", "INSERT", "DELETE"),
}
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(16) PRIMARY KEY, "
    "name varchar(255) NOT NULL, checksum varchar(64) NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())"
)
_ASYNC_INDEX = re.compile(r"^(\s*create\s+(?:unique\s+)?index)\s+async\b", re.IGNORECASE)

Connect = Callable[[], psycopg.Connection[Any]]


class MigrationError(TaskmgmtError):
    pass


@dataclass
class SchemaState:
    pending: list[str] = field(default_factory=list)
    role_exists: bool = False
    role_mapped: bool | None = None  # None: not DSQL, nothing to map
    missing_grants: list[str] = field(default_factory=list)
    latest: str | None = None

    @property
    def complete(self) -> bool:
        return not self.pending and self.role_exists and self.role_mapped is not False and not self.missing_grants


class Migrator:
    def __init__(
        self,
        connect: Connect,
        migrations: list[Migration],
        *,
        dsql: bool,
        role_arn: str | None,
        clock: Clock | None = None,
        progress: Callable[[str], None] = lambda message: None,
        index_wait: float = INDEX_WAIT,
    ):
        problems = check_migrations(migrations) if dsql else []
        if problems:
            raise MigrationError("refusing SQL that DSQL rejects: " + "; ".join(problems))
        if dsql and (role_arn is None or not ROLE_ARN.match(role_arn)):
            raise MigrationError(f"not an IAM role ARN: {role_arn!r}")
        self.connect, self.migrations, self.dsql, self.role_arn = connect, migrations, dsql, role_arn
        self.clock = clock or SystemClock()
        self.progress = progress
        self.index_wait = index_wait

    # -- reading ------------------------------------------------------------------------
    def inspect(self) -> SchemaState:
        with self.connect() as conn:
            conn.autocommit = True
            return self._inspect(conn)

    def _inspect(self, conn: psycopg.Connection[Any]) -> SchemaState:
        applied = self._applied(conn)
        state = SchemaState(
            pending=[m.version for m in self.migrations if m.version not in applied],
            latest=max(applied) if applied else None,
        )
        state.role_exists = bool(conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone())
        if self.dsql:
            state.role_mapped = state.role_exists and self._mapped(conn)
        state.missing_grants = self._missing_grants(conn) if state.role_exists else ["all"]
        return state

    def _applied(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'schema_migrations'"
        ).fetchone()
        if not exists:
            return {}
        applied = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
        for migration in self.migrations:
            recorded = applied.get(migration.version)
            if recorded is not None and recorded != migration.checksum:
                raise MigrationError(
                    f"sql/{migration.name}.sql changed after it was applied to this database; "
                    "add a new migration instead of editing an applied one"
                )
        return applied

    def _mapped(self, conn: psycopg.Connection[Any]) -> bool:
        # Matched on values, not column names: the view's columns are not documented.
        rows = conn.execute("SELECT * FROM sys.iam_pg_role_mappings").fetchall()
        return any(self.role_arn in map(str, row) and APP_ROLE in map(str, row) for row in rows)

    def _missing_grants(self, conn: psycopg.Connection[Any]) -> list[str]:
        missing = []
        if not conn.execute("SELECT has_schema_privilege(%s, 'public', 'USAGE')", [APP_ROLE]).fetchone()[0]:
            missing.append("USAGE ON SCHEMA public")
        for table, privileges in APP_GRANTS.items():
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = %s", [table]
            ).fetchone()
            for privilege in privileges:
                if (
                    not exists
                    or not conn.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", [APP_ROLE, f"public.{table}", privilege]
                    ).fetchone()[0]
                ):
                    missing.append(f"{privilege} ON {table}")
        return missing

    # -- changing -----------------------------------------------------------------------
    def apply(self) -> list[str]:
        """Bring the database up to date; return what was done (empty when it already was)."""
        done: list[str] = []
        jobs = IndexJobs(self.clock, self.progress, self.index_wait)
        with self.connect() as conn:
            conn.autocommit = True
            state = self._inspect(conn)
            if state.pending:
                self._run(conn, MIGRATIONS_TABLE)
                if self.dsql:
                    self._run(conn, JOBS_TABLE)
            for migration in self.migrations:
                if migration.version in state.pending:
                    self._apply_migration(conn, migration, jobs)
                    done.append(f"applied {migration.name}")
            if not state.role_exists:
                self._run(conn, sql.SQL("CREATE ROLE {} WITH LOGIN").format(sql.Identifier(APP_ROLE)))
                done.append(f"created role {APP_ROLE}")
            if self.dsql and not (state.role_exists and state.role_mapped):
                self._run(
                    conn, sql.SQL("AWS IAM GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Literal(self.role_arn))
                )
                done.append(f"mapped {APP_ROLE} to {self.role_arn}")
            done += self._grant(conn)
        return done

    def _apply_migration(self, conn: psycopg.Connection[Any], migration: Migration, jobs: IndexJobs) -> None:
        """Recorded as applied only once every statement is done, index builds included."""
        self.progress(f"applying {migration.name}")
        for statement in migration.statements:
            if not self.dsql:
                self._run(conn, _ASYNC_INDEX.sub(r"\1", statement))
                continue
            job = self._run(conn, statement)
            index = index_name(statement)
            if index is not None:
                jobs.settle(conn, index, job, migration.name, migration.version)
        self._run(
            conn,
            sql.SQL("INSERT INTO schema_migrations (version, name, checksum) VALUES ({}, {}, {})").format(
                sql.Literal(migration.version), sql.Literal(migration.name), sql.Literal(migration.checksum)
            ),
        )

    def _grant(self, conn: psycopg.Connection[Any]) -> list[str]:
        missing = self._missing_grants(conn)
        if "USAGE ON SCHEMA public" in missing:
            self._run(conn, sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(APP_ROLE)))
        for table, privileges in APP_GRANTS.items():
            wanted = [p for p in privileges if f"{p} ON {table}" in missing]
            if wanted:  # one GRANT per table: each is a DDL, in its own transaction
                self._run(
                    conn,
                    sql.SQL("GRANT {} ON {} TO {}").format(
                        sql.SQL(", ").join(sql.SQL(p) for p in wanted), sql.Identifier(table), sql.Identifier(APP_ROLE)
                    ),
                )
        return [f"granted {grant} to {APP_ROLE}" for grant in missing]

    def _run(self, conn: psycopg.Connection[Any], statement: Any) -> Any:
        """One statement, one transaction, retried on OCC conflicts; returns a job id if any."""

        def once() -> Any:
            with conn.transaction():
                cursor = conn.execute(statement)
                row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None

        return call_with_retry(once, is_occ_conflict, "occ_conflict", self.clock, self.progress)
