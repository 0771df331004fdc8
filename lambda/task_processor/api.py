"""REST-style requests: API Gateway REST (v1), HTTP API / function URL (v2), and the recipe's
direct-invoke payloads. Parse at the edge, route, and map errors to status codes in one place."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from task_processor import board, fields, observability
from task_processor.app import TaskApp
from task_processor.errors import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, TaskError, VersionConflict

MAX_BODY_BYTES = 64 * 1024
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    stage_variables: dict[str, str] = field(default_factory=dict)


def is_http(event: Any) -> bool:
    return isinstance(event, dict) and ("httpMethod" in event or "http" in (event.get("requestContext") or {}))


def parse(event: dict[str, Any]) -> Request:
    context = event.get("requestContext") or {}
    if "http" in context:  # HTTP API (v2) and function URLs
        method, path = context["http"].get("method", ""), event.get("rawPath") or context["http"].get("path", "/")
        stage = context.get("stage")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
    else:
        method, path = event.get("httpMethod", ""), event.get("path") or "/"
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    stage_variables = {str(k): str(v) for k, v in (event.get("stageVariables") or {}).items()}
    body = _body(event.get("body"), bool(event.get("isBase64Encoded")))
    return Request(str(method).upper(), str(path), query, headers, body, stage_variables)


def _body(raw: Any, base64_encoded: bool) -> Any:
    if raw is None or raw == "":
        return None
    if isinstance(raw, (dict, list)):  # a direct invoke may pass the body as an object
        return raw
    if not isinstance(raw, str):
        raise BadRequest("malformed JSON body", {"body": "must be a JSON string"})
    if base64_encoded:
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("malformed body", {"body": "is not valid base64 UTF-8"}) from None
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("malformed JSON body", {"body": str(exc)[:200]}) from None


Handler = Callable[..., dict[str, Any]]  # (app, request, **the route's parameters)


def _health(app: TaskApp, req: Request) -> dict[str, Any]:
    return _json(200, {"status": "ok"})


def _list(app: TaskApp, req: Request) -> dict[str, Any]:
    filters, limit, cursor = fields.list_query(req.query)
    tasks, next_cursor = app.list(filters, limit, cursor)
    return _json(200, {"tasks": tasks, "next_cursor": next_cursor})


def _create(app: TaskApp, req: Request) -> dict[str, Any]:
    return _json(201, {"task": app.create(fields.new_task(req.body))})


def _get(app: TaskApp, req: Request, task_id: str) -> dict[str, Any]:
    task, history = app.get(fields.task_id(task_id))
    return _json(200, {"task": task, "history": history})


def _update(app: TaskApp, req: Request, task_id: str) -> dict[str, Any]:
    ident = fields.task_id(task_id)
    changes, updated_by, version = fields.task_update(req.body, req.headers.get("if-match"))
    return _json(200, {"task": app.update(ident, changes, updated_by, version)})


def _complete(app: TaskApp, req: Request, task_id: str) -> dict[str, Any]:
    ident = fields.task_id(task_id)
    completed_by, version = fields.completion(req.body, req.headers.get("if-match"))
    return _json(200, {"task": app.complete(ident, completed_by, version)})


def _delete(app: TaskApp, req: Request, task_id: str) -> dict[str, Any]:
    app.delete(fields.task_id(task_id), fields.if_match_version(req.headers.get("if-match")))
    return {"statusCode": 204, "headers": dict(JSON_HEADERS), "body": ""}


def _board_index(app: TaskApp, req: Request) -> dict[str, Any]:
    return board.BOARD.response(board.INDEX, req.headers.get("if-none-match"))


def _board_file(app: TaskApp, req: Request, file: str) -> dict[str, Any]:
    if file == board.CONFIG:  # what the page needs to go live: made here, not a file
        return board.config_response(req.stage_variables)
    return board.BOARD.response(file, req.headers.get("if-none-match"))


# path shape -> method -> handler; "{name}" matches one path segment and is passed as `name`
ROUTES: dict[tuple[str, ...], dict[str, Handler]] = {
    (): {"GET": _board_index},
    ("board", "{file}"): {"GET": _board_file},
    ("health",): {"GET": _health},
    ("tasks",): {"GET": _list, "POST": _create},
    ("tasks", "{task_id}"): {"GET": _get, "PUT": _update, "PATCH": _update, "DELETE": _delete},
    ("tasks", "{task_id}", "complete"): {"POST": _complete},
}


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler of a request, and the parameters its path carries."""
    parts = tuple(p for p in path.split("/") if p)
    for shape, methods in ROUTES.items():
        if len(shape) == len(parts) and all(s.startswith("{") or s == p for s, p in zip(shape, parts, strict=False)):
            if method not in methods:
                raise MethodNotAllowed(f"{method} is not allowed on {path}", sorted(methods))
            return methods[method], {s[1:-1]: p for s, p in zip(shape, parts, strict=True) if s.startswith("{")}
    raise NotFound(f"no route for {path}")


def handle(event: dict[str, Any], app: TaskApp, request_id: str) -> dict[str, Any]:
    try:
        req = parse(event)
        handler, parameters = route(req.method, req.path)
        return handler(app, req, **parameters)
    except TaskError as exc:
        return error_response(exc, request_id)
    except Exception:  # noqa: BLE001 - a bug or an unexpected database error: 500 without details
        observability.log.exception("request failed")
        observability.count("Errors")
        return _json(500, {"error": "internal_error", "message": "internal error", "request_id": request_id})


def error_response(exc: TaskError, request_id: str) -> dict[str, Any]:
    """The one place where errors become status codes."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, VersionConflict):
        body.update(current_version=exc.task["version"], task=exc.task)
    elif exc.details:
        body["details"] = exc.details
    if exc.status >= 500:
        observability.log_fields(logging.WARNING, "request not served", error=exc.code, reason=exc.message)
        body["request_id"] = request_id
    response = _json(exc.status, body)
    if isinstance(exc, MethodNotAllowed):
        response["headers"]["allow"] = ", ".join(exc.allowed)
    return response


def _json(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": dict(JSON_HEADERS), "body": json.dumps(body)}
