"""WebSocket connections and their subscriptions in DSQL (sql/0005). Both regions' functions use
the one table, so a change in one region reaches the sockets connected to the other.

Each function takes a connection inside a transaction (or runs one read) and raises typed
errors, as service.py does. Every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from task_processor.errors import BadRequest, NotFound

Conn = psycopg.Connection[Any]

# API Gateway closes a WebSocket connection after 2 hours at the latest: a row is stale by then
# even if its $disconnect never came ($disconnect is best-effort).
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
CONNECTION_TTL = "2 hours"
MAX_SUBSCRIPTIONS = 20  # per connection
# One delete transaction: 100 connections with at most 20 subscriptions each is at most 2,100
# rows, inside DSQL's 3,000 mutated rows per transaction.
DELETE_BATCH = 100
READ_BATCH = 500  # subscribers read per statement


@dataclass(frozen=True)
class Subscriber:
    connection_id: str
    region: str
    endpoint: str
    expired: bool = False


def topics_of(task: dict[str, Any]) -> list[str]:
    """The topics a change to this task is posted to."""
    topics = ["all"]
    if task.get("project_id") is not None:
        topics.append(f"project:{task['project_id']}")
    if task.get("assigned_to"):
        topics.append(f"assignee:{task['assigned_to']}")
    return topics


def add_connection(conn: Conn, connection_id: str, region: str, endpoint: str, principal: str | None) -> None:
    """Record a connection (again, if $connect is delivered twice)."""
    values = [region, endpoint, principal, connection_id]
    updated = conn.execute(
        "UPDATE connections SET region = %s, endpoint = %s, principal = %s,"
        f" expires_at = now() + interval '{CONNECTION_TTL}' WHERE connection_id = %s",
        values,
    ).rowcount
    if not updated:
        conn.execute(
            "INSERT INTO connections (region, endpoint, principal, connection_id, expires_at)"
            f" VALUES (%s, %s, %s, %s, now() + interval '{CONNECTION_TTL}')",
            values,
        )


def subscribe(conn: Conn, connection_id: str, topic: str) -> bool:
    """Subscribe the connection to a topic; False if it already was."""
    row = conn.execute(
        "SELECT expires_at > now() AS live FROM connections WHERE connection_id = %s", [connection_id]
    ).fetchone()
    if row is None or not row["live"]:
        raise NotFound("this connection is not registered any more: connect again")
    topics = [
        r["topic"]
        for r in conn.execute("SELECT topic FROM subscriptions WHERE connection_id = %s", [connection_id]).fetchall()
    ]
    if topic in topics:
        return False
    if len(topics) >= MAX_SUBSCRIPTIONS:
        raise BadRequest(f"a connection has at most {MAX_SUBSCRIPTIONS} subscriptions")
    conn.execute("INSERT INTO subscriptions (topic, connection_id) VALUES (%s, %s)", [topic, connection_id])
    return True


def unsubscribe(conn: Conn, connection_id: str, topic: str) -> bool:
    """Take one subscription back; False if the connection did not have it."""
    deleted = conn.execute(
        "DELETE FROM subscriptions WHERE connection_id = %s AND topic = %s", [connection_id, topic]
    ).rowcount
    return deleted > 0


def remove_connections(conn: Conn, connection_ids: list[str]) -> int:
    """Delete connections and their subscriptions (at most DELETE_BATCH in one transaction)."""
    assert len(connection_ids) <= DELETE_BATCH
    if not connection_ids:
        return 0
    marks = ", ".join(["%s"] * len(connection_ids))
    conn.execute(f"DELETE FROM subscriptions WHERE connection_id IN ({marks})", connection_ids)
    return conn.execute(f"DELETE FROM connections WHERE connection_id IN ({marks})", connection_ids).rowcount


def subscribers(conn: Conn, topics: list[str], after: str, limit: int = READ_BATCH) -> list[Subscriber]:
    """One page of the connections subscribed to any of the topics, each once, by connection id
    after `after` (keyset paging: each page is one short statement)."""
    marks = ", ".join(["%s"] * len(topics))
    rows = conn.execute(
        "SELECT DISTINCT c.connection_id, c.region, c.endpoint, c.expires_at <= now() AS expired"
        " FROM subscriptions s JOIN connections c ON c.connection_id = s.connection_id"
        f" WHERE s.topic IN ({marks}) AND s.connection_id > %s ORDER BY c.connection_id LIMIT %s",
        [*topics, after, limit],
    ).fetchall()
    return [Subscriber(r["connection_id"], r["region"], r["endpoint"], bool(r["expired"])) for r in rows]


def expired_connections(conn: Conn, limit: int = DELETE_BATCH) -> list[str]:
    """Connections past their expiry, subscribed or not (whose $disconnect never came)."""
    rows = conn.execute(
        "SELECT connection_id FROM connections WHERE expires_at <= now() ORDER BY expires_at LIMIT %s", [limit]
    ).fetchall()
    return [r["connection_id"] for r in rows]
