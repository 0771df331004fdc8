"""Task operations. Each takes a connection inside a transaction and raises typed errors.

Only the column names below ever reach SQL text; every value is a bound parameter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg

from task_processor.errors import NotFound, VersionConflict
from task_processor.fields import encode_cursor

COLUMNS = (
    "id",
    "title",
    "description",
    "status",
    "priority",
    "assigned_to",
    "created_by",
    "project_id",
    "due_date",
    "completed_at",
    "created_at",
    "updated_at",
    "version",
)
SELECT_TASK = "SELECT " + ", ".join(COLUMNS) + " FROM tasks"
RETURNING = " RETURNING " + ", ".join(COLUMNS)
INSERTABLE = ("title", "description", "status", "priority", "assigned_to", "created_by", "project_id", "due_date")
Conn = psycopg.Connection[Any]


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A task row as the API shows it: ids as text, times in UTC ISO 8601."""
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


def _text(value: Any) -> str | None:
    """How a value is stored in the change history."""
    value = _json_value(value)
    return None if value is None else (value if isinstance(value, str) else json.dumps(value))


def create_task(conn: Conn, task: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    """Every time the row gets is the transaction's now(): one instant for the whole change."""
    fields = [f for f in INSERTABLE if f in task]
    values = [task[f] for f in fields]
    placeholders = ["%s"] * len(fields)
    if task_id is not None:
        fields.append("id")
        values.append(task_id)
        placeholders.append("%s")
    if task.get("status") == "completed":
        fields.append("completed_at")
        placeholders.append("now()")
    row = conn.execute(
        f"INSERT INTO tasks ({', '.join(fields)}) VALUES ({', '.join(placeholders)})" + RETURNING, values
    ).fetchone()
    return to_json(row)


def get_task(conn: Conn, task_id: str, for_update: bool = False) -> dict[str, Any]:
    row = conn.execute(SELECT_TASK + " WHERE id = %s" + (" FOR UPDATE" if for_update else ""), [task_id]).fetchone()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    return row


# The task and its history in one statement (one round trip): the history as a JSON array,
# cast to text. DSQL documents json as a runtime type only and advises casting what returns
# json to text, so no driver is trusted to parse it: Python does.
# https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-postgresql-compatibility-supported-data-types.html
SELECT_WITH_HISTORY = (
    "SELECT " + ", ".join(f"t.{c}" for c in COLUMNS) + ", (SELECT coalesce(json_agg(json_build_object("
    "'id', u.id, 'field_name', u.field_name, 'old_value', u.old_value, 'new_value', u.new_value, "
    "'updated_by', u.updated_by, 'updated_at', u.updated_at) ORDER BY u.updated_at, u.id), '[]'::json)::text "
    "FROM task_updates u WHERE u.task_id = t.id) AS history FROM tasks t WHERE t.id = %s"
)


def get_with_history(conn: Conn, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = conn.execute(SELECT_WITH_HISTORY, [task_id]).fetchone()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    history = [
        {**item, "updated_at": _json_value(datetime.fromisoformat(item["updated_at"]))}
        for item in json.loads(row.pop("history"))
    ]
    return to_json(row), history


def list_tasks(
    conn: Conn, filters: dict[str, Any], limit: int, cursor: tuple[datetime, str] | None
) -> tuple[list[dict[str, Any]], str | None]:
    conditions, values = [], []
    for field, value in filters.items():  # field names come from fields.list_query's fixed set
        conditions.append(f"{field} = %s")
        values.append(value)
    if cursor is not None:
        conditions.append("(created_at < %s OR (created_at = %s AND id < %s))")
        values += [cursor[0], cursor[0], cursor[1]]
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    rows = conn.execute(
        SELECT_TASK + where + " ORDER BY created_at DESC, id DESC LIMIT %s", [*values, limit + 1]
    ).fetchall()
    last = rows[limit - 1] if len(rows) > limit else None  # one more row than asked: there is a next page
    next_cursor = encode_cursor(last["created_at"], str(last["id"])) if last else None
    return [to_json(row) for row in rows[:limit]], next_cursor


def update_task(
    conn: Conn, task_id: str, changes: dict[str, Any], updated_by: str, expected_version: int | None
) -> tuple[dict[str, Any], bool]:
    """(task, changed?). Each changed field is recorded; the version goes up by one.

    updated_at, completed_at and the history rows' updated_at all take the transaction's
    now(), so one change carries one instant."""
    current = get_task(conn, task_id, for_update=True)
    if expected_version is not None and current["version"] != expected_version:
        raise VersionConflict(to_json(current))
    changed = {field: value for field, value in changes.items() if current[field] != value}
    if not changed:
        return to_json(current), False
    sets = [f"{field} = %s" for field in changed]  # fields from fields.UPDATABLE only
    if "status" in changed:
        sets.append("completed_at = " + ("now()" if changed["status"] == "completed" else "NULL"))
    row = conn.execute(
        f"UPDATE tasks SET {', '.join(sets)}, updated_at = now(), version = version + 1"
        " WHERE id = %s AND version = %s" + RETURNING,
        [*changed.values(), task_id, current["version"]],
    ).fetchone()
    if row is None:  # changed under us (only possible below REPEATABLE READ): let the caller retry
        raise psycopg.errors.SerializationFailure("task changed concurrently")
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO task_updates (task_id, field_name, old_value, new_value, updated_by)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(task_id, field, _text(current[field]), _text(value), updated_by) for field, value in changed.items()],
        )
    return to_json(row), True


# One delete transaction stays far inside DSQL's limits of 3,000 mutated rows and 10 MiB of
# changed data: at most 1,000 history rows, and (read pessimistically: deleted data counted
# in full) at most 4 MiB of them, reckoned from the values plus a generous allowance for the
# other columns and the index entry.
# https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html
HISTORY_BATCH_ROWS = 1000
HISTORY_BATCH_BYTES = 4 * 1024 * 1024
HISTORY_ROW_BYTES = "octet_length(coalesce(old_value, '')) + octet_length(coalesce(new_value, '')) + 1024"


def delete_task_step(conn: Conn, task_id: str, expected_version: int | None) -> tuple[dict[str, Any], bool]:
    """One transaction of a delete: a batch of the task's history, and the task itself once
    its history is gone. Returns (the task, deleted?).

    The version is checked in every step, before anything is deleted, so a stale version
    deletes nothing. A delete cut short between steps (the function died, or another writer
    changed the task meanwhile) leaves the task at its version with part of its history gone;
    the next delete finishes it.
    """
    current = get_task(conn, task_id, for_update=True)
    if expected_version is not None and current["version"] != expected_version:
        raise VersionConflict(to_json(current))
    sizes = conn.execute(
        f"SELECT {HISTORY_ROW_BYTES} AS bytes FROM task_updates WHERE task_id = %s ORDER BY id LIMIT %s",
        [task_id, HISTORY_BATCH_ROWS],
    ).fetchall()
    batch = _rows_within(HISTORY_BATCH_BYTES, [row["bytes"] for row in sizes])
    if batch:
        conn.execute(
            "DELETE FROM task_updates WHERE id IN"
            " (SELECT id FROM task_updates WHERE task_id = %s ORDER BY id LIMIT %s)",
            [task_id, batch],
        )
    if batch < len(sizes) or len(sizes) == HISTORY_BATCH_ROWS:
        return to_json(current), False  # more history left: the task goes in a later step
    conn.execute("DELETE FROM tasks WHERE id = %s", [task_id])
    return to_json(current), True


def _rows_within(budget: int, sizes: list[int]) -> int:
    """How many of the first rows fit in the budget (always at least one: a row is bounded
    by the API's field limits, far below any budget used here)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > budget:
            return max(count, 1)
    return len(sizes)


def claim_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """Record the event as applied in this transaction; False if it already was."""
    if conn.execute("SELECT 1 FROM processed_events WHERE event_id = %s", [event_id]).fetchone():
        return False
    conn.execute("INSERT INTO processed_events (event_id, event_type) VALUES (%s, %s)", [event_id, event_type])
    return True
