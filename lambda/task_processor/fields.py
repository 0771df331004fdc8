"""Parse and validate what callers send, at the edge. Past this module nothing reads raw input.

Every problem is collected per field and reported together as a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

from task_processor.errors import BadRequest

STATUSES = ("pending", "in-progress", "completed", "cancelled")
PRIORITIES = ("low", "medium", "high", "urgent")
UPDATABLE = ("title", "description", "status", "priority", "assigned_to", "project_id", "due_date")
MAX_PROJECT_ID = 2**63 - 1
NAME_LIMIT = 100  # assigned_to, created_by, updated_by, completed_by
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 100
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


class Problems:
    """Collects per-field problems and raises them as one BadRequest."""

    def __init__(self) -> None:
        self.details: dict[str, str] = {}

    def add(self, field: str, problem: str) -> None:
        self.details.setdefault(field, problem)

    def raise_if_any(self, message: str = "invalid request") -> None:
        if self.details:
            raise BadRequest(message, self.details)


def _text(problems: Problems, field: str, value: Any, low: int, high: int, multiline: bool = False) -> str | None:
    if not isinstance(value, str):
        problems.add(field, "must be a string")
        return None
    if not low <= len(value) <= high:
        problems.add(field, f"must be {low}-{high} characters long")
        return None
    if "\x00" in value:
        problems.add(field, "must not contain NUL characters")
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.add(field, "must be valid Unicode (no unpaired surrogates)")
        return None
    allowed = {"\n", "\r", "\t"} if multiline else set()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        problems.add(field, "must not contain control characters")
        return None
    if low > 0 and not value.strip():
        problems.add(field, "must not be blank")
        return None
    return value


def _choice(problems: Problems, field: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or value not in choices:
        problems.add(field, "must be one of " + ", ".join(choices))
        return None
    return value


def _project_id(problems: Problems, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROJECT_ID:
        problems.add("project_id", "must be a positive integer (64-bit)")
        return None
    return value


def _timestamp(problems: Problems, field: str, value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        problems.add(field, "must be an ISO 8601 date or date-time string")
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems.add(field, "must be an ISO 8601 date or date-time string")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _field(problems: Problems, field: str, value: Any) -> Any:
    """One updatable field's value; None clears the optional ones."""
    if value is None and field in ("description", "assigned_to", "project_id", "due_date"):
        return None
    if field == "title":
        return _text(problems, field, value, 1, 255)
    if field == "description":
        return _text(problems, field, value, 0, 10_000, multiline=True)
    if field == "status":
        return _choice(problems, field, value, STATUSES)
    if field == "priority":
        return _choice(problems, field, value, PRIORITIES)
    if field == "assigned_to":
        return _text(problems, field, value, 1, NAME_LIMIT)
    if field == "project_id":
        return _project_id(problems, value)
    if field == "due_date":
        return _timestamp(problems, field, value)
    raise AssertionError(field)


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object", {"body": "expected an object"})
    return body


def _unknown(problems: Problems, body: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in body:
        if key not in known:
            problems.add(str(key)[:64], "unknown field")


def _version(problems: Problems, value: Any, field: str = "version") -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        problems.add(field, "must be a positive integer")
        return None
    return value


def new_task(body: Any) -> dict[str, Any]:
    body = _object(body, "a task")
    problems = Problems()
    _unknown(problems, body, (*UPDATABLE, "created_by"))
    for required in ("title", "created_by"):
        if required not in body:
            problems.add(required, "is required")
    task: dict[str, Any] = {"status": "pending", "priority": "medium"}
    for field in UPDATABLE:
        if field in body:
            task[field] = _field(problems, field, body[field])
    if "created_by" in body:
        task["created_by"] = _text(problems, "created_by", body["created_by"], 1, NAME_LIMIT)
    problems.raise_if_any("invalid task")
    return task


def task_update(body: Any, if_match: str | None = None) -> tuple[dict[str, Any], str, int | None]:
    """(changes, updated_by, expected version) of a PUT/PATCH or a task.updated event."""
    body = _object(body, "an update")
    problems = Problems()
    _unknown(problems, body, (*UPDATABLE, "updated_by", "version"))
    changes = {field: _field(problems, field, body[field]) for field in UPDATABLE if field in body}
    updated_by = _actor(problems, body, "updated_by")
    version = _expected_version(problems, body, if_match)
    if not changes and not problems.details:
        problems.add("body", "names no field to update: " + ", ".join(UPDATABLE))
    problems.raise_if_any("invalid update")
    return changes, updated_by or "", version


def completion(body: Any, if_match: str | None = None) -> tuple[str, int | None]:
    body = _object(body, "a completion")
    problems = Problems()
    _unknown(problems, body, ("completed_by", "version"))
    completed_by = _actor(problems, body, "completed_by")
    version = _expected_version(problems, body, if_match)
    problems.raise_if_any("invalid completion")
    return completed_by or "", version


def _actor(problems: Problems, body: dict[str, Any], field: str) -> str | None:
    if field not in body:
        problems.add(field, "is required")
        return None
    return _text(problems, field, body[field], 1, NAME_LIMIT)


def _expected_version(problems: Problems, body: dict[str, Any], if_match: str | None) -> int | None:
    version = _version(problems, body["version"]) if "version" in body else None
    if if_match is not None:
        matched = _IF_MATCH.match(if_match)
        header_version = int(matched.group(1)) if matched else None
        if header_version is None or header_version < 1:
            problems.add("If-Match", 'must be a task version, e.g. "3"')
        elif version is not None and version != header_version:
            problems.add("version", "differs from the If-Match header")
        else:
            version = header_version
    return version


def if_match_version(if_match: str | None) -> int | None:
    problems = Problems()
    version = _expected_version(problems, {}, if_match)
    problems.raise_if_any("invalid request")
    return version


def task_id(text: str) -> str:
    try:
        parsed = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise BadRequest("invalid task id", {"id": "must be a UUID"}) from None
    if str(parsed) != text.lower() and parsed.hex != text.lower():
        raise BadRequest("invalid task id", {"id": "must be a UUID"})
    return str(parsed)


def list_query(query: dict[str, str]) -> tuple[dict[str, Any], int, tuple[datetime, str] | None]:
    problems = Problems()
    _unknown(problems, query, ("status", "assigned_to", "project_id", "limit", "cursor"))
    filters: dict[str, Any] = {}
    if "status" in query:
        filters["status"] = _choice(problems, "status", query["status"], STATUSES)
    if "assigned_to" in query:
        filters["assigned_to"] = _text(problems, "assigned_to", query["assigned_to"], 1, NAME_LIMIT)
    if "project_id" in query:
        raw = query["project_id"]
        filters["project_id"] = _project_id(problems, int(raw) if raw.isdigit() and len(raw) < 20 else None)
    limit = LIST_LIMIT_DEFAULT
    if "limit" in query:
        raw = query["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_LIMIT_MAX:
            problems.add("limit", f"must be an integer from 1 to {LIST_LIMIT_MAX}")
        else:
            limit = int(raw)
    cursor = decode_cursor(problems, query["cursor"]) if "cursor" in query else None
    problems.raise_if_any("invalid query")
    return filters, limit, cursor


def encode_cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(problems: Problems, text: str) -> tuple[datetime, str] | None:
    try:
        if len(text) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created_at, ident = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        return parsed, str(uuid.UUID(ident))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        problems.add("cursor", "is not a cursor this API returned")
        return None
