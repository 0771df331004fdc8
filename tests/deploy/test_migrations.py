"""sql/ and the migrator: DSQL-compatible SQL, idempotent runs, and the DSQL statement flow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from taskmgmt_deploy.assets import sql_dir
from taskmgmt_deploy.database.connect import from_url
from taskmgmt_deploy.database.jobs import IndexJobError, index_name
from taskmgmt_deploy.database.migrate import APP_ROLE, MigrationError, Migrator
from taskmgmt_deploy.database.sqlfiles import check_migrations, load_migrations, problems_of, split_statements

ROLE_ARN = "arn:aws:iam::123456789012:role/task-mgmt-dev-task-processor-role"
# What the DSQL stand-in counts as DDL: its own list, not the migrator's, as it plays DSQL.
DDL = re.compile(r"^\s*(create|alter|drop|grant|revoke|comment)\b", re.IGNORECASE)


def test_every_statement_in_sql_runs_on_dsql():
    # docs/pessimistic-emulation.md row Q10
    migrations = load_migrations(sql_dir())
    assert [m.version for m in migrations] == ["0001", "0002", "0003", "0004", "0005"]
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
    # docs/pessimistic-emulation.md row Q10
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
        assert versions == ["0001", "0002", "0003", "0004", "0005"]


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


# -- the DSQL flow, on a PostgreSQL that answers as DSQL does ----------------------------------


@dataclass
class Job:
    index: str
    polls_left: int  # 'processing' answers before the outcome
    failure: str | None
    answers: int = 0


class StandIn:
    """A PostgreSQL database held to DSQL's rules where PostgreSQL has no such thing
    (docs/pessimistic-emulation.md, Q6 to Q9).

    - CREATE INDEX ASYNC builds the index (CREATE INDEX) and returns a job id; sys.jobs then
      answers 'submitted', 'processing' for `polls` more looks, and only then 'completed', or
      'failed' with a reason for the indexes in `failing`, leaving the index INVALID. For an
      index that exists already, CREATE INDEX ASYNC IF NOT EXISTS returns no job id.
    - A transaction holds at most one DDL statement and no DDL with DML (SQLSTATE 0A000).
    - AWS IAM GRANT and sys.iam_pg_role_mappings are modelled; sys.wait_for_job is refused.
    - The first `conflicts` CREATE statements fail with an OCC schema conflict (40001).
    """

    def __init__(self, url: str, polls: int = 3, failing: dict[str, str] | None = None, conflicts: int = 0):
        self.url, self.polls, self.failing, self.conflicts = url, polls, dict(failing or {}), conflicts
        self.jobs: dict[str, Job] = {}
        self.mappings: list[tuple[str, str]] = []
        self.log: list[str] = []

    def connect(self) -> StandInConnection:
        return StandInConnection(self, psycopg.connect(self.url, autocommit=True))

    def answer_job(self, job_id: str) -> tuple[str, str | None] | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        job.answers += 1
        if job.answers == 1:
            return ("submitted", None)
        if job.polls_left > 0:
            job.polls_left -= 1
            return ("processing", None)
        return ("failed", job.failure) if job.failure else ("completed", None)

    def polls_of(self, index: str) -> list[int]:
        return [job.answers for job in self.jobs.values() if job.index == index]


class StandInConnection:
    def __init__(self, stand_in: StandIn, real: psycopg.Connection[Any]):
        self.stand_in, self.real = stand_in, real
        self.in_transaction: list[str] | None = None

    def __enter__(self) -> StandInConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()

    @property
    def autocommit(self) -> bool:
        return self.real.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.real.autocommit = value

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.in_transaction = []
        self.stand_in.log.append("BEGIN")
        try:
            with self.real.transaction():
                yield
            self.stand_in.log.append("COMMIT")
        finally:
            self.in_transaction = None

    def execute(self, statement: Any, params: Any = None) -> Any:
        text = statement.as_string(self.real) if isinstance(statement, sql.Composable) else statement
        self._check_transaction(text)
        self.stand_in.log.append(text)
        if text.startswith("CREATE") and self.stand_in.conflicts:
            self.stand_in.conflicts -= 1
            raise psycopg.errors.SerializationFailure("schema has been updated by another transaction (OC001)")
        if "wait_for_job" in text:
            raise psycopg.errors.UndefinedFunction("sys.wait_for_job is not used: a wait must not outlive 5 minutes")
        if "FROM sys.jobs" in text:
            answer = self.stand_in.answer_job(params[0])
            return Answer(["job_id", "status", "details"], [] if answer is None else [(params[0], *answer)])
        if "sys.iam_pg_role_mappings" in text:
            return Answer(["pg_role_name", "arn"], list(self.stand_in.mappings))
        if text.startswith("AWS IAM GRANT"):
            role, arn = re.match(r'AWS IAM GRANT "?(\w+)"? TO \'(.+)\'$', text).groups()
            self.stand_in.mappings.append((role, arn))
            return Answer([], [])
        index = index_name(text)
        if index is not None:
            return self._create_index_async(text, index)
        return self.real.execute(text, params)

    def _create_index_async(self, text: str, index: str) -> Answer:
        existed = self.real.execute("SELECT to_regclass(%s) IS NOT NULL", [index]).fetchone()[0]
        self.real.execute(re.sub(r"(?i)\s+async\b", "", text, count=1))
        if existed:
            return Answer([], [])
        job_id = f"job{len(self.stand_in.jobs) + 1:03d}{index[:8]}"
        failure = self.stand_in.failing.get(index)
        if failure:
            self.real.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [index])
        self.stand_in.jobs[job_id] = Job(index, self.stand_in.polls, failure)
        return Answer(["job_id"], [(job_id,)])

    def _check_transaction(self, text: str) -> None:
        if self.in_transaction is None:
            return  # autocommit: the statement is its own transaction
        ddl = DDL.match(text) or text.startswith("AWS IAM")
        kind = "ddl" if ddl else "read" if text.startswith("SELECT") else "dml"
        kinds = [*self.in_transaction, kind]
        if kinds.count("ddl") > 1 or ("ddl" in kinds and "dml" in kinds):
            raise psycopg.errors.FeatureNotSupported("a transaction holds one DDL statement and no DML with it")
        self.in_transaction = kinds


@dataclass
class Answer:
    """A result that the stand-in makes up (psycopg's cursor shape, as far as the migrator reads it)."""

    names: list[str]
    rows: list[tuple[Any, ...]]

    @property
    def description(self) -> list[Any] | None:
        return [SimpleNamespace(name=name) for name in self.names] or None

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


def dsql_migrator(stand_in: StandIn, clock: Any, progress: list[str] | None = None, **options: Any) -> Migrator:
    report = progress.append if progress is not None else (lambda message: None)
    return Migrator(
        stand_in.connect,
        load_migrations(sql_dir()),
        dsql=True,
        role_arn=ROLE_ARN,
        clock=clock,
        progress=report,
        **options,
    )


def recorded(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_dsql_flow_one_statement_per_transaction_async_indexes_and_iam_mapping(database_url, clock):
    # docs/pessimistic-emulation.md row Q8
    stand_in = StandIn(database_url, polls=0)
    done = dsql_migrator(stand_in, clock).apply()
    assert "applied 0004_create_indexes" in done and f"mapped {APP_ROLE} to {ROLE_ARN}" in done
    log = stand_in.log
    changes = [
        entry for entry in log if entry.startswith(("CREATE", "GRANT", "AWS IAM", "INSERT INTO schema_migrations"))
    ]
    for entry in changes:  # each alone between BEGIN and COMMIT
        index = log.index(entry)
        assert (log[index - 1], log[index + 1]) == ("BEGIN", "COMMIT"), entry
    assert len([entry for entry in log if "INDEX ASYNC" in entry]) == len(INDEXES)
    assert f"AWS IAM GRANT \"{APP_ROLE}\" TO '{ROLE_ARN}'" in log
    assert any(entry.startswith('GRANT SELECT, INSERT, UPDATE, DELETE ON "tasks"') for entry in log)
    assert any(entry.startswith('GRANT SELECT, INSERT ON "processed_events"') for entry in log)
    assert not any('schema_migrations" TO' in entry for entry in log)
    assert recorded(database_url) == ["0001", "0002", "0003", "0004", "0005"]
    stand_in.log.clear()
    assert dsql_migrator(stand_in, clock).apply() == []
    assert not any(entry.startswith(("CREATE", "GRANT", "AWS IAM", "INSERT", "DELETE")) for entry in stand_in.log)


@dataclass
class StandInTarget:
    """Where DbSchemaStep puts the schema: the DSQL stand-in."""

    stand_in: StandIn
    clock: Any
    skip_reason: None = None
    database_url: None = None
    dsql: bool = True

    def migrator(self, endpoint: str | None, region: str, role_arn: str | None, *args: Any, **kwargs: Any) -> Migrator:
        return dsql_migrator(self.stand_in, self.clock)


def test_status_reports_a_lost_iam_mapping_and_deploy_restores_it(database_url, clock):
    """The drift row db_schema.role_mapped of tests/deploy/test_drift.py: compared on DSQL only."""
    from taskmgmt_deploy.core.context import StepContext
    from taskmgmt_deploy.core.models import Action, Change, Resource, record_of
    from taskmgmt_deploy.steps.schema import DbSchemaStep

    stand_in = StandIn(database_url, polls=0)
    step = DbSchemaStep(StandInTarget(stand_in, clock))  # type: ignore[arg-type]
    spec = {"endpoint": "x.dsql.us-east-1.on.aws", "region": "us-east-1", "role_arn": ROLE_ARN}
    res = Resource("db_schema", "tasks", None, "tasks", spec)
    ctx = StepContext(clock=clock)
    record = record_of(res, 1, "ready", step.apply(res, spec, Change(Action.CREATE), None, ctx))
    assert step.plan(res, spec, step.read(res, record)).action is Action.NOOP
    stand_in.mappings.clear()  # someone revoked it: AWS IAM REVOKE
    observed = step.read(res, record)
    change = step.plan(res, spec, observed)
    assert change.action is Action.UPDATE and change.reasons == ("role_mapped: false -> true",)
    step.apply(res, spec, change, observed, ctx)
    assert stand_in.mappings == [(APP_ROLE, ROLE_ARN)]
    assert step.plan(res, spec, step.read(res, record)).action is Action.NOOP


@dataclass
class ClustersTarget(StandInTarget):
    """Each cluster endpoint its own database, as each new DSQL cluster pair is."""

    by_endpoint: dict[str, StandIn] | None = None

    def migrator(self, endpoint: str | None, region: str, role_arn: str | None, *args: Any, **kwargs: Any) -> Migrator:
        assert self.by_endpoint is not None and endpoint is not None
        return dsql_migrator(self.by_endpoint[endpoint], self.clock)


def test_a_cluster_made_again_gets_the_schema_even_while_the_old_one_answers(database_url, pg_server, clock):
    """Clusters deleted outside taskmgmt, or a sandbox started anew: deploy makes new clusters
    (another endpoint, an empty database) while the schema's record names the old endpoint."""
    from taskmgmt_deploy.core.context import StepContext
    from taskmgmt_deploy.core.models import Action, Change, Resource, record_of
    from taskmgmt_deploy.steps.schema import DbSchemaStep

    old, new = "old.dsql.us-east-1.on.aws", "new.dsql.us-east-1.on.aws"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE t_new_cluster")
    try:
        second = make_conninfo(database_url, dbname="t_new_cluster")
        clusters = {old: StandIn(database_url, polls=0), new: StandIn(second, polls=0)}
        step = DbSchemaStep(ClustersTarget(clusters[old], clock, by_endpoint=clusters))  # type: ignore[arg-type]
        spec = {"endpoint": old, "region": "us-east-1", "role_arn": ROLE_ARN}
        res = Resource("db_schema", "tasks", None, "tasks", spec)
        ctx = StepContext(clock=clock)
        record = record_of(res, 1, "ready", step.apply(res, spec, Change(Action.CREATE), None, ctx))
        assert step.plan(res, spec, step.read(res, record)).action is Action.NOOP

        moved = {**spec, "endpoint": new}
        observed = step.read(res, record)  # the old database still answers, migrated
        change = step.plan(res, moved, observed)
        assert change.action is Action.UPDATE and change.reasons == (f"endpoint: {old} -> {new}",)
        record = record_of(res, 1, "ready", step.apply(res, moved, change, observed, ctx))
        assert recorded(second) == ["0001", "0002", "0003", "0004", "0005"]
        assert step.plan(res, moved, step.read(res, record)).action is Action.NOOP
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS t_new_cluster WITH (FORCE)")


def test_dsql_conflicts_during_migration_are_retried(database_url, clock):
    # docs/pessimistic-emulation.md row Q9
    stand_in = StandIn(database_url, polls=0, conflicts=3)
    dsql_migrator(stand_in, clock).apply()
    assert stand_in.conflicts == 0 and recorded(database_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_the_stand_in_refuses_two_ddl_statements_or_ddl_with_dml_in_one_transaction(database_url):
    # docs/pessimistic-emulation.md row Q8
    with StandIn(database_url).connect() as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported), conn.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS a (id int PRIMARY KEY)")
            conn.execute("CREATE TABLE IF NOT EXISTS b (id int PRIMARY KEY)")
        with pytest.raises(psycopg.errors.FeatureNotSupported), conn.transaction():
            conn.execute("CREATE TABLE IF NOT EXISTS a (id int PRIMARY KEY)")
            conn.execute("INSERT INTO a VALUES (1)")


def test_the_stand_in_refuses_a_wait_inside_a_statement(database_url):
    # docs/pessimistic-emulation.md row Q7: a wait inside one statement could outlive the 5-minute transaction
    with StandIn(database_url).connect() as conn, pytest.raises(psycopg.errors.UndefinedFunction):
        conn.execute("SELECT sys.wait_for_job(%s)", ["job001"])


def test_each_index_job_is_polled_in_short_statements_until_it_completes(database_url, clock):
    # docs/pessimistic-emulation.md rows Q6, Q7
    stand_in = StandIn(database_url, polls=3)
    progress: list[str] = []
    dsql_migrator(stand_in, clock, progress).apply()
    assert all(answers == [5] for answers in map(stand_in.polls_of, INDEXES))  # submitted, 3 x processing, completed
    log = stand_in.log
    polls = [i for i, entry in enumerate(log) if "FROM sys.jobs" in entry]
    assert all(log[i - 1] != "BEGIN" for i in polls)  # each poll is its own statement, outside any transaction
    last_poll = max(polls)
    record = next(
        i for i, entry in enumerate(log) if entry.startswith("INSERT INTO schema_migrations") and "'0005'" in entry
    )
    assert record > last_poll  # recorded only after its last index job completed
    assert clock.slept == pytest.approx(len(INDEXES) * (1 + 2 + 4 + 8))  # one growing wait per 'submitted'/'processing'
    assert "index job" in progress[progress.index("applying 0004_create_indexes") + 1]
    assert any(line.endswith(": processing, 1 s") for line in progress)
    assert sum(line.startswith("index tasks_") for line in progress) == 4


def test_a_failed_index_job_stops_the_migration_with_its_id_and_reason_on_every_run(database_url, clock):
    # docs/pessimistic-emulation.md row Q6
    stand_in = StandIn(database_url, polls=1, failing={"tasks_status_idx": "could not create index: out of memory"})
    with pytest.raises(
        IndexJobError, match=r"index job job002tasks_st \(tasks_status_idx\).* failed: could not create"
    ):
        dsql_migrator(stand_in, clock).apply()
    assert recorded(database_url) == ["0001", "0002", "0003"]
    with pytest.raises(IndexJobError, match=r"index job job002tasks_st .* failed: could not create index"):
        dsql_migrator(stand_in, clock).apply()  # the rerun finds the failed job through its record
    assert recorded(database_url) == ["0001", "0002", "0003"]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP INDEX tasks_status_idx")  # what the message tells the user to do
    stand_in.failing.clear()
    dsql_migrator(stand_in, clock).apply()
    assert recorded(database_url) == ["0001", "0002", "0003", "0004", "0005"]


def test_a_build_that_outlives_the_wait_is_waited_for_again_by_the_next_run(database_url, clock):
    # docs/pessimistic-emulation.md row Q6
    stand_in = StandIn(database_url, polls=10_000)
    started = clock.now()
    with pytest.raises(IndexJobError, match=r"job001tasks_cr \(tasks_created_idx\).* still processing after 600 s"):
        dsql_migrator(stand_in, clock, index_wait=600).apply()
    assert clock.now() - started == pytest.approx(600)  # bounded: no poll after the deadline
    assert recorded(database_url) == ["0001", "0002", "0003"]
    stand_in.polls = stand_in.jobs["job001tasks_cr"].polls_left = 2  # builds take a few looks from now on
    progress: list[str] = []
    dsql_migrator(stand_in, clock, progress, index_wait=600).apply()
    assert recorded(database_url) == ["0001", "0002", "0003", "0004", "0005"]
    assert "index tasks_created_idx built (job job001tasks_cr)" in progress
    assert len(stand_in.jobs) == len(INDEXES)  # the rerun submitted no second build of the first index


def test_one_run_shares_one_bounded_wait_among_its_index_builds(database_url, clock):
    # docs/pessimistic-emulation.md row Q7
    """So a run, and its one connection, stays well inside DSQL's 60 minutes."""
    stand_in = StandIn(database_url, polls=3)  # 15 s of looks per build
    started = clock.now()
    with pytest.raises(IndexJobError, match=r"index job job004tasks_pr .* still submitted after 0 s"):
        dsql_migrator(stand_in, clock, index_wait=40).apply()
    assert clock.now() - started == pytest.approx(40)


def test_a_rerun_after_a_crash_mid_wait_finds_the_still_running_job(database_url, clock):
    # docs/pessimistic-emulation.md row Q6
    stand_in = StandIn(database_url, polls=5)

    def crash(message: str) -> None:
        if "processing" in message:
            raise KeyboardInterrupt  # the migrating process is killed while it waits

    with pytest.raises(KeyboardInterrupt):
        Migrator(
            stand_in.connect, load_migrations(sql_dir()), dsql=True, role_arn=ROLE_ARN, clock=clock, progress=crash
        ).apply()
    assert recorded(database_url) == ["0001", "0002", "0003"]
    dsql_migrator(stand_in, clock).apply()
    assert recorded(database_url) == ["0001", "0002", "0003", "0004", "0005"]
    assert stand_in.polls_of("tasks_created_idx") == [7]  # the same job, polled on to completion


def test_an_invalid_index_whose_job_is_no_longer_listed_is_reported(database_url, clock):
    # docs/pessimistic-emulation.md row Q6
    stand_in = StandIn(database_url, polls=0, failing={"tasks_project_idx": "duplicate key"})
    with pytest.raises(IndexJobError, match="failed: duplicate key"):
        dsql_migrator(stand_in, clock).apply()
    stand_in.jobs.clear()  # DSQL purges finished jobs after a while
    with pytest.raises(IndexJobError, match=r"index tasks_project_idx .* no longer listed; drop it \(DROP INDEX"):
        dsql_migrator(stand_in, clock).apply()


INDEXES = (
    "tasks_created_idx",
    "tasks_status_idx",
    "tasks_assigned_to_idx",
    "tasks_project_idx",
    "task_updates_task_idx",
    "subscriptions_connection_idx",
    "connections_expires_idx",
)


def test_the_migrator_refuses_a_bad_role_arn():
    with pytest.raises(MigrationError, match="not an IAM role ARN"):
        Migrator(lambda: None, load_migrations(sql_dir()), dsql=True, role_arn="'; DROP ROLE admin; --")
