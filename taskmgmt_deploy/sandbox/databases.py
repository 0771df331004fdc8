"""The sandbox's DSQL storage: one PostgreSQL database per cluster pair.

On AWS a peered pair of clusters is one database, reached through either cluster's endpoint;
a new pair starts empty, and deleting the pair deletes its data. The sandbox's emulator does
the same on its PostgreSQL: a cluster created alone gets a new database, a cluster created
with a peer joins the peer's, and the database is dropped once every cluster of it is being
deleted. A directory table in the admin connection's database maps each cluster's endpoint
to its database, so that the emulator (which creates and drops them and runs the functions)
and the CLI (which migrates them), in other processes, find the same one.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

DIRECTORY = "taskmgmt_sandbox_clusters"
_TABLE = sql.Identifier(DIRECTORY)
APP_USER = "taskmgmt_app"  # the function's role (what DSQL_ENDPOINT's IAM mapping grants on AWS)


class ClusterDatabases:
    """Called by the emulator's DSQL clusters as they are created and deleted."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}  # endpoint -> database, of the clusters this process made

    def _admin(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (endpoint text PRIMARY KEY, database text NOT NULL)").format(_TABLE)
        )
        return conn

    def created(self, endpoint: str, peers: list[str]) -> None:
        """A new cluster: it joins the database of a peer that has one, or gets a new, empty one."""
        with self._lock, self._admin() as conn:
            joined = conn.execute(
                sql.SQL("SELECT database FROM {} WHERE endpoint = ANY(%s) LIMIT 1").format(_TABLE),
                [peers],
            ).fetchone()
            database = joined[0] if joined else database_name(endpoint)
            if not joined:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            conn.execute(
                sql.SQL("INSERT INTO {} (endpoint, database) VALUES (%s, %s) ON CONFLICT (endpoint) DO NOTHING").format(
                    _TABLE
                ),
                [endpoint, database],
            )
            self._known[endpoint] = database

    def deleted(self, endpoint: str) -> None:
        """A cluster is being deleted: its database goes with the last cluster that used it."""
        with self._lock, self._admin() as conn:
            self._known.pop(endpoint, None)
            row = conn.execute(
                sql.SQL("DELETE FROM {} WHERE endpoint = %s RETURNING database").format(_TABLE),
                [endpoint],
            ).fetchone()
            if row is None:
                return
            still_used = conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE database = %s").format(_TABLE), [row[0]]
            ).fetchone()
            if not still_used:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(row[0])))

    def url(self, endpoint: str, user: str = APP_USER) -> str:
        """What a function configured with this endpoint connects to (looked up once per cluster)."""
        with self._lock:
            known = self._known.get(endpoint)
        if known is not None:
            return make_conninfo(self.admin_url, dbname=known, user=user)
        return database_url(self.admin_url, endpoint, user)


def forget_all(admin_url: str) -> list[str]:
    """A new emulator has no clusters: drop the databases of the clusters an earlier one made
    (no cluster can reach them any more); return their names."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [DIRECTORY]).fetchone()
        if not exists or not exists[0]:
            return []
        names = [row[0] for row in conn.execute(sql.SQL("SELECT DISTINCT database FROM {}").format(_TABLE))]
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DELETE FROM {}").format(_TABLE))
        return sorted(names)


def database_name(endpoint: str) -> str:
    """The database a cluster founds: named after its identifier, the endpoint's first label."""
    return "dsql_" + re.sub(r"[^a-z0-9]", "_", endpoint.split(".", 1)[0].lower())[:40]


def database_url(admin_url: str, endpoint: str, user: str | None = None) -> str:
    """How to reach the database behind a cluster's endpoint. An endpoint no cluster has (deleted,
    or never created) names a database that does not exist: connecting fails, as on AWS."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [DIRECTORY]).fetchone()
        row = (
            conn.execute(sql.SQL("SELECT database FROM {} WHERE endpoint = %s").format(_TABLE), [endpoint]).fetchone()
            if exists and exists[0]
            else None
        )
    database = row[0] if row else database_name(endpoint)
    return make_conninfo(admin_url, dbname=database, **({"user": user} if user else {}))
