"""Connections the tool makes: to DSQL as `admin` with an IAM token, or to a libpq URL."""

from __future__ import annotations

from typing import Any

import psycopg

from taskmgmt_deploy.database.migrate import Connect


def dsql_admin(dsql_client: Any, endpoint: str, region: str) -> Connect:
    """A fresh admin token for every connection (tokens are made locally, no API call)."""

    def connect() -> psycopg.Connection[Any]:
        token = dsql_client.generate_db_connect_admin_auth_token(Hostname=endpoint, Region=region, ExpiresIn=900)
        return psycopg.connect(
            host=endpoint,
            port=5432,
            dbname="postgres",
            user="admin",
            password=token,
            sslmode="require",
            connect_timeout=15,
            application_name="taskmgmt-migrate",
        )

    return connect


def from_url(url: str) -> Connect:
    return lambda: psycopg.connect(url, connect_timeout=15, application_name="taskmgmt-migrate")
