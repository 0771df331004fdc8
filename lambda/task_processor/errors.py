"""Typed errors of the task processor; api.py maps them to status codes in one place."""

from __future__ import annotations

from typing import Any


class TaskError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(TaskError):
    status = 400
    code = "invalid_request"


class Unauthorized(TaskError):
    """A WebSocket $connect without a valid token (API_AUTH=jwt): the connection is refused."""

    status = 401
    code = "unauthorized"


class PayloadTooLarge(TaskError):
    status = 413
    code = "payload_too_large"


class NotFound(TaskError):
    status = 404
    code = "not_found"


class MethodNotAllowed(TaskError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]):
        super().__init__(message)
        self.allowed = allowed


class VersionConflict(TaskError):
    status = 409
    code = "version_conflict"

    def __init__(self, task: dict[str, Any]):
        super().__init__(f"task {task['id']} is at version {task['version']}")
        self.task = task


class Unavailable(TaskError):
    """The database could not be reached or kept conflicting: worth retrying later."""

    status = 503
    code = "unavailable"


class LimitExceeded(TaskError):
    """The database refused the transaction for one of its limits (SQLSTATE 54000: rows, bytes or
    age per transaction). The code keeps within them by construction, so this is a defect, and
    sending the same request again would fail the same way."""

    status = 500
    code = "limit_exceeded"
