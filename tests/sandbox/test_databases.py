"""The sandbox's DSQL storage: one PostgreSQL database per cluster pair, found by endpoint."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from taskmgmt_deploy.sandbox import databases as storage
from taskmgmt_deploy.sandbox.databases import ClusterDatabases


def endpoint(region: str) -> str:
    return f"{uuid.uuid4().hex[:26]}.dsql.{region}.on.aws"


def test_each_pair_is_its_own_database_made_and_dropped_with_its_clusters(database_url):
    """Row Q12 of docs/pessimistic-emulation.md: a new pair starts empty, the two clusters of a
    pair reach one database, another pair sees none of it, and deleting the pair deletes it."""
    admin_url = database_url  # a fresh database of the test server, where this test's directory lives
    databases = ClusterDatabases(admin_url)
    a, b, other = endpoint("us-east-1"), endpoint("us-west-2"), endpoint("us-east-1")
    databases.created(a, [])
    databases.created(b, [a])
    databases.created(other, [])
    with psycopg.connect(databases.url(a, user="postgres"), autocommit=True) as conn:
        conn.execute("CREATE TABLE tasks (title text)")
        conn.execute("INSERT INTO tasks VALUES ('written through a')")
    with psycopg.connect(databases.url(b, user="postgres")) as conn:
        assert conn.execute("SELECT title FROM tasks").fetchall() == [("written through a",)]
    with psycopg.connect(databases.url(other, user="postgres")) as conn:
        assert conn.execute("SELECT to_regclass('tasks')").fetchone() == (None,)
    # the CLI, in another process, finds the same database from the endpoint alone
    assert storage.database_url(admin_url, b) == storage.database_url(admin_url, a) == databases.url(a, "postgres")

    databases.deleted(a)
    with psycopg.connect(databases.url(b, user="postgres")) as conn:  # the pair still serves through b
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (1,)
    databases.deleted(b)
    for gone in (a, b):
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            psycopg.connect(storage.database_url(admin_url, gone), connect_timeout=5)
    with psycopg.connect(databases.url(other, user="postgres")) as conn:  # the other pair is untouched
        assert conn.execute("SELECT to_regclass('tasks')").fetchone() == (None,)
