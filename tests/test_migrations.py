"""sql/ and the migrator: DSQL-compatible SQL, idempotent runs, and the DSQL statement flow."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from taskmgmt_deploy.assets import sql_dir
from taskmgmt_deploy.database.connect import from_url
from taskmgmt_deploy.database.migrate import APP_ROLE, MigrationError, Migrator
from taskmgmt_deploy.database.sqlfiles import check_migrations, load_migrations, problems_of, split_statements

ROLE_ARN = "arn:aws:iam::123456789012:role/task-mgmt-dev-task-processor-role"


def test_every_statement_in_sql_runs_on_dsql():
    migrations = load_migrations(sql_dir())
    assert [m.version for m in migrations] == ["0001", "0002", "0003", "0004"]
    assert check_migrations(migrations) == []


@pytest.mark.parametrize(
    "statement,complaint",
    [
        ("CREATE TABLE IF NOT EXISTS t (id SERIAL PRIMARY KEY)", "SERIAL"),
        ("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY)", "SERIAL"),
        ("CREATE TRIGGER t BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION f()", "triggers"),
        ("CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql", "PL/pgSQL"),
        ("DO $$ BEGIN PERFORM 1; END $$", "PL/pgSQL"),
        ("CREATE TEMPORARY TABLE t (a int)", "temporary"),
        ("CREATE INDEX IF NOT EXISTS i ON tasks (status)", "ASYNC"),
        ("CREATE UNIQUE INDEX i ON tasks (status)", "ASYNC"),
        ("TRUNCATE tasks", "TRUNCATE"),
        ("CREATE TABLE IF NOT EXISTS u (task_id uuid REFERENCES tasks (id))", "foreign keys"),
        ("CREATE EXTENSION pgcrypto", "extensions"),
        ("CREATE TYPE mood AS ENUM ('sad', 'ok')", "CREATE TYPE"),
        ("CREATE TABLE IF NOT EXISTS t (tags text[])", "arrays"),
        ("CREATE SEQUENCE s", "CACHE"),
        ("CREATE TABLE IF NOT EXISTS t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 10))", "CACHE"),
        ("CREATE TABLE t (a int)", "IF NOT EXISTS"),
        ("VACUUM tasks", "not supported"),
    ],
)
def test_the_check_refuses_what_dsql_rejects(statement, complaint):
    assert any(complaint in problem for problem in problems_of(statement))


def test_identity_with_an_allowed_cache_passes():
    assert (
        problems_of("CREATE TABLE IF NOT EXISTS t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 65536) PRIMARY KEY)")
        == []
    )


def test_statements_split_outside_quotes_and_dollar_bodies():
    text = "select ';'; -- a; comment\nCREATE FUNCTION f() AS $b$ select 1; $b$ LANGUAGE sql; /* x; */ select 2"
    assert split_statements(text) == ["select ';'", "CREATE FUNCTION f() AS $b$ select 1; $b$ LANGUAGE sql", "select 2"]


def test_migrations_apply_once_and_a_second_run_does_nothing(database_url, monkeypatch):
    migrator = Migrator(from_url(database_url), load_migrations(sql_dir()), dsql=False, role_arn=None)
    done = migrator.apply()
    assert done[:4] == [
        "applied 0001_create_tasks",
        "applied 0002_create_task_updates",
        "applied 0003_create_processed_events",
        "applied 0004_create_indexes",
    ]
    assert migrator.inspect().complete
    statements: list[Any] = []
    monkeypatch.setattr(Migrator, "_run", lambda self, conn, statement: statements.append(statement))
    assert migrator.apply() == []
    assert statements == []  # no DDL at all on an up-to-date database
    with psycopg.connect(database_url) as conn:
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")}
        assert {"tasks_created_idx", "tasks_status_idx", "tasks_assigned_to_idx", "tasks_project_idx"} <= indexes
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == ["0001", "0002", "0003", "0004"]


def test_a_changed_migration_is_refused(database_url, tmp_path: Path):
    for path in sql_dir().glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    Migrator(from_url(database_url), load_migrations(tmp_path), dsql=False, role_arn=None).apply()
    (tmp_path / "0002_create_task_updates.sql").write_text(
        "-- edited\n" + (sql_dir() / "0002_create_task_updates.sql").read_text()
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        Migrator(from_url(database_url), load_migrations(tmp_path), dsql=False, role_arn=None).apply()


def test_migrate_command_against_a_local_postgres(cli, database_url, monkeypatch):
    monkeypatch.setenv("TASKMGMT_DATABASE_URL", database_url)
    first = cli("migrate")
    assert first.code == 0, first.err
    # The role may exist already: roles belong to the whole server, shared by the tests' databases.
    assert "applied 0004_create_indexes" in first.err
    assert f"granted SELECT ON tasks to {APP_ROLE}" in first.err
    second = cli("migrate")
    assert second.code == 0 and "nothing to do" in second.err


def test_migrate_without_a_database_or_a_deployment_is_a_user_error(cli):
    result = cli("migrate")
    assert result.code == 2 and "no deployment of environment 'dev'" in result.err


# -- the DSQL flow, on a recording connection -----------------------------------------------


class Recorder:
    """Answers the migrator's catalog queries like an empty DSQL cluster and records the rest."""

    def __init__(self, conflicts: int = 0):
        self.log: list[str] = []
        self.conflicts = conflicts

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @contextmanager
    def transaction(self):
        self.log.append("BEGIN")
        yield
        self.log.append("COMMIT")

    def execute(self, statement: Any, params: Any = None) -> Any:
        text = statement.as_string(None) if isinstance(statement, sql.Composable) else statement
        if text.startswith("CREATE") and self.conflicts:
            self.conflicts -= 1
            raise psycopg.errors.SerializationFailure("schema has been updated by another transaction (OC001)")
        self.log.append(text)
        row: tuple[Any, ...] | None = None
        if "has_schema_privilege" in text or "has_table_privilege" in text:
            row = (False,)
        elif "INDEX ASYNC" in text:
            row = (f"job-{len(self.log)}",)
        elif "wait_for_job" in text:
            row = (True,)
        return _Cursor(row, rows=[] if "iam_pg_role_mappings" in text else None)

    autocommit = True


class _Cursor:
    def __init__(self, row: Any, rows: Any = None):
        self.row, self.rows = row, rows
        self.description = [("x",)] if row is not None else None

    def fetchone(self) -> Any:
        return self.row

    def fetchall(self) -> Any:
        return self.rows or []

    def __iter__(self) -> Any:
        return iter(self.rows or [])


def test_dsql_flow_one_statement_per_transaction_async_indexes_and_iam_mapping(clock):
    recorder = Recorder()
    Migrator(lambda: recorder, load_migrations(sql_dir()), dsql=True, role_arn=ROLE_ARN, clock=clock).apply()
    log = recorder.log
    ddl = [entry for entry in log if entry.startswith(("CREATE", "GRANT", "AWS IAM", "INSERT"))]
    assert len(ddl) == len(set(ddl))
    for entry in ddl:  # each alone between BEGIN and COMMIT
        index = log.index(entry)
        assert (log[index - 1], log[index + 1]) == ("BEGIN", "COMMIT"), entry
    indexes = [entry for entry in log if "INDEX ASYNC" in entry]
    assert len(indexes) == 5
    waits = [entry for entry in log if "sys.wait_for_job" in entry]
    assert len(waits) == 5
    assert f"AWS IAM GRANT \"{APP_ROLE}\" TO '{ROLE_ARN}'" in log
    assert 'CREATE ROLE "taskmgmt_app" WITH LOGIN' in log
    assert any(entry.startswith('GRANT SELECT, INSERT, UPDATE, DELETE ON "tasks"') for entry in log)
    assert any(entry.startswith('GRANT SELECT, INSERT ON "processed_events"') for entry in log)
    assert not any('schema_migrations" TO' in entry for entry in log)


def test_dsql_conflicts_during_migration_are_retried(clock):
    recorder = Recorder(conflicts=3)
    Migrator(lambda: recorder, load_migrations(sql_dir()), dsql=True, role_arn=ROLE_ARN, clock=clock).apply()
    assert any(entry.startswith("CREATE TABLE IF NOT EXISTS tasks") for entry in recorder.log)


def test_the_migrator_refuses_a_bad_role_arn():
    with pytest.raises(MigrationError, match="not an IAM role ARN"):
        Migrator(Recorder, load_migrations(sql_dir()), dsql=True, role_arn="'; DROP ROLE admin; --")
