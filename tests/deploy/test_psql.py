"""taskmgmt psql: the region's endpoint, TLS and a fresh IAM token; or the sandbox's database."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PRIMARY_ENDPOINT_SUFFIX = ".dsql.us-east-1.on.aws"


def variables(output: str) -> dict[str, str]:
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in output.splitlines())
    return dict(pairs)


@pytest.fixture
def deployed_on_dsql(aws, runtime, cli, monkeypatch):
    assert cli("deploy", "--yes").code == 0
    monkeypatch.delenv("TASKMGMT_DATABASE_URL")  # from here on, the database is the DSQL cluster


def test_admin_gets_a_fresh_admin_token_over_tls_to_the_primary(deployed_on_dsql, cli):
    result = cli("psql", "--admin", "--print-env")
    assert result.code == 0, result.err
    pg = variables(result.out)
    assert pg["PGHOST"].endswith(PRIMARY_ENDPOINT_SUFFIX) and pg["PGPORT"] == "5432"
    assert pg["PGUSER"] == "admin" and pg["PGDATABASE"] == "postgres" and pg["PGSSLMODE"] == "require"
    assert pg["PGPASSWORD"].startswith(pg["PGHOST"]) and "Action=DbConnectAdmin" in pg["PGPASSWORD"]
    assert "X-Amz-Expires=900" in pg["PGPASSWORD"]


def test_by_default_the_token_is_signed_as_the_functions_role(deployed_on_dsql, cli):
    pg = variables(cli("psql", "--print-env", "--region", "us-west-2").out)
    assert pg["PGUSER"] == "taskmgmt_app" and pg["PGHOST"].endswith(".dsql.us-west-2.on.aws")
    assert "Action=DbConnect&" in pg["PGPASSWORD"]
    assert "X-Amz-Security-Token=" in pg["PGPASSWORD"]  # temporary credentials of the assumed role
    assert cli("psql", "--print-env", "--region", "eu-west-1").code == 2


def test_psql_runs_with_those_variables_and_its_exit_code(deployed_on_dsql, cli, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "psql"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$PGUSER@$PGHOST sslmode=$PGSSLMODE args=$*" > "$0.log"\nexit 3\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    result = cli("psql", "--admin", "-c", "SELECT version();")
    assert result.code == 3
    seen = (tmp_path / "bin" / "psql.log").read_text()
    assert seen.startswith("admin@") and "sslmode=require args=--command SELECT version();" in seen


def test_without_psql_a_one_line_install_hint(deployed_on_dsql, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    result = cli("psql", "--admin")
    assert result.code == 1
    assert result.err.strip().startswith("error: psql is not installed: install the PostgreSQL client")
    assert len(result.err.strip().splitlines()) == 1


def test_with_a_database_url_it_opens_that_database(aws, runtime, cli, database_url):
    from psycopg.conninfo import conninfo_to_dict

    assert cli("deploy", "--yes").code == 0
    pg = variables(cli("psql", "--print-env").out)
    assert pg["PGDATABASE"] == conninfo_to_dict(database_url)["dbname"]
    if shutil.which("psql") is None:
        pytest.skip("no psql on this machine")
    done = subprocess.run(  # a process of its own: psql writes to the real stdout
        [
            str(Path(sys.executable).parent / "taskmgmt"),
            "psql",
            "-c",
            "SELECT count(*) AS applied FROM schema_migrations",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
