"""Lambda entry point: task_processor.handler.lambda_handler. It only delegates.

The database connection, the notifier and the management API clients live at module level,
so warm invocations reuse them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from task_processor import api, broadcast, events, live, observability
from task_processor.app import TaskApp
from task_processor.db import from_environment
from task_processor.errors import BadRequest
from task_processor.notify import Notifier

_app: TaskApp | None = None
_live: live.LiveApp | None = None
_broadcaster: broadcast.Broadcaster | None = None


def app() -> TaskApp:
    global _app  # noqa: PLW0603 - built once per execution environment, reused by warm invocations
    if _app is None:
        _app = TaskApp(from_environment(), Notifier.from_environment())
    return _app


def live_app() -> live.LiveApp:
    global _live  # noqa: PLW0603 - as app(): one per execution environment, sharing its database
    if _live is None:
        _live = live.LiveApp.from_environment(app().db)
    return _live


def broadcaster() -> broadcast.Broadcaster:
    global _broadcaster  # noqa: PLW0603 - as app(): its pool and clients serve every warm invocation
    if _broadcaster is None:
        _broadcaster = broadcast.Broadcaster(app().db, live_app().poster)
    return _broadcaster


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    with observability.invocation(request_id):
        if broadcast.is_notification(event):  # the broadcast rule: fan the change out to the sockets
            return broadcaster().handle(event)  # raises on database failures: Lambda retries
        if events.is_event(event):
            return events.handle(event, app())  # raises on transient failures: Lambda retries
        if live.is_websocket(event):
            return live_app().handle(event)
        if api.is_http(event):
            return api.handle(event, app(), request_id)
        observability.log_fields(
            logging.WARNING,
            "unrecognised invocation",
            keys=sorted(event)[:20] if isinstance(event, dict) else type(event).__name__,
        )
        return api.error_response(
            BadRequest("unrecognised invocation: expected an HTTP request or a task event"), request_id
        )
