"""The WebSocket API's routes: $connect, $disconnect, subscribe, ping and $default.

$connect records the connection, its region and the management endpoint that reaches it;
with API_AUTH=jwt it first checks the `?token=` (WebSocket APIs have no JWT authorizer) and
answers 401 to refuse the connection. $disconnect deletes the row and its subscriptions.

Replies (`subscribed`, `pong`, `error`) are posted to the connection through the management
API, like every other message the client gets, so they do not depend on the route having a
route response; the function's own answer carries no body.

Client messages: {"action":"subscribe","project":42} / {"action":"subscribe","assignee":"ana"}
/ {"action":"subscribe","all":true}; {"action":"ping"}.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from task_processor import fields, observability, subscriptions
from task_processor.contract import SOCKET_ACTIONS
from task_processor.db import Database
from task_processor.errors import BadRequest, TaskError
from task_processor.management import Poster, management_endpoint
from task_processor.tokens import Verifier

MAX_MESSAGE_BYTES = 32 * 1024  # a client message is one frame


@dataclass
class Socket:
    route: str
    connection_id: str
    endpoint: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    caller: str | None = None


def is_websocket(event: Any) -> bool:
    context = event.get("requestContext") if isinstance(event, dict) else None
    return isinstance(context, dict) and "connectionId" in context and "routeKey" in context and "http" not in context


def parse(event: dict[str, Any]) -> Socket:
    context = event["requestContext"]
    endpoint = management_endpoint(str(context.get("domainName", "")), str(context.get("stage", "")))
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    identity = context.get("identity") or {}
    caller = (identity.get("userArn") or identity.get("caller")) if isinstance(identity, dict) else None
    return Socket(str(context["routeKey"]), str(context["connectionId"]), endpoint, query, event.get("body"), caller)


def message_of(raw: Any, base64_encoded: bool) -> dict[str, Any]:
    if not isinstance(raw, str) or not raw:
        raise BadRequest("a message is a JSON object with an action")
    if base64_encoded:
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("a message is UTF-8 JSON") from None
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise BadRequest(f"a message has at most {MAX_MESSAGE_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("a message is a JSON object with an action") from None
    if not isinstance(body, dict):
        raise BadRequest("a message is a JSON object with an action")
    return body


def topic_of(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The topic a subscribe or unsubscribe message names, and how the reply echoes it:
    exactly one of project (a project id), assignee (a name) or all (true)."""
    given = [key for key in ("project", "assignee", "all") if key in body]
    if len(given) != 1:
        verb = "unsubscribe from" if body.get("action") == "unsubscribe" else "subscribe to"
        raise BadRequest(f"{verb} one of: project, assignee, or all")
    key, value = given[0], body[given[0]]
    if key == "all":
        if value is not True:
            raise BadRequest("all must be true")
        return "all", {"all": True}
    if key == "project":
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= fields.MAX_PROJECT_ID:
            raise BadRequest("project must be a project id (an integer)")
        return f"project:{value}", {"project": value}
    if not isinstance(value, str) or not 1 <= len(value) <= fields.NAME_LIMIT:
        raise BadRequest(f"assignee must be a name of 1-{fields.NAME_LIMIT} characters")
    return f"assignee:{value}", {"assignee": value}


class LiveApp:
    def __init__(self, db: Database, poster: Poster, verifier: Verifier | None, region: str):
        self.db, self.poster, self.verifier, self.region = db, poster, verifier, region

    @classmethod
    def from_environment(cls, db: Database) -> LiveApp:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(db, Poster(), Verifier.from_environment(), region)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        socket = parse(event)
        try:
            if socket.route == "$connect":
                return self._connect(socket)
            if socket.route == "$disconnect":
                self.db.transaction(lambda conn: subscriptions.remove_connections(conn, [socket.connection_id]))
                observability.count("Disconnects")
                return {"statusCode": 200}
            body = message_of(event.get("body"), bool(event.get("isBase64Encoded")))
            action = body.get("action")
            if action == "subscribe":
                self._subscribe(socket, body)
            elif action == "unsubscribe":
                self._unsubscribe(socket, body)
            elif action == "ping":
                self.reply(socket, {"type": "pong"})
            else:
                raise BadRequest(f"unknown action {str(action)[:40]!r}: use {', '.join(SOCKET_ACTIONS)}")
            return {"statusCode": 200}
        except TaskError as exc:
            return self._refuse(socket, exc)
        except Exception:  # noqa: BLE001 - a bug or an unexpected database error: refused without details
            observability.log.exception("websocket request failed", extra={"fields": {"route": socket.route}})
            observability.count("Errors")
            return {"statusCode": 500}

    def _connect(self, socket: Socket) -> dict[str, Any]:
        principal = socket.caller
        if self.verifier is not None:
            claims = self.verifier.verify(socket.query.get("token"))
            principal = str(claims.get("sub") or claims.get("username") or "")[:255] or None
        self.db.transaction(
            lambda conn: subscriptions.add_connection(
                conn, socket.connection_id, self.region, socket.endpoint, principal
            )
        )
        observability.count("Connects")
        return {"statusCode": 200}

    def _subscribe(self, socket: Socket, body: dict[str, Any]) -> None:
        topic, echo = topic_of(body)
        self.db.transaction(lambda conn: subscriptions.subscribe(conn, socket.connection_id, topic))
        self.reply(socket, {"type": "subscribed", **echo})

    def _unsubscribe(self, socket: Socket, body: dict[str, Any]) -> None:
        """Idempotent: a topic the connection did not have is answered the same way."""
        topic, echo = topic_of(body)
        self.db.transaction(lambda conn: subscriptions.unsubscribe(conn, socket.connection_id, topic))
        self.reply(socket, {"type": "unsubscribed", **echo})

    def reply(self, socket: Socket, message: dict[str, Any]) -> str:
        data = json.dumps(message, separators=(",", ":")).encode()
        return self.poster.post(socket.endpoint, self.region, socket.connection_id, data)

    def _refuse(self, socket: Socket, exc: TaskError) -> dict[str, Any]:
        """The one place where a socket's errors become answers: $connect is refused with the
        status; a message gets an error message back."""
        level = logging.WARNING if exc.status >= 500 else logging.INFO
        observability.log_fields(
            level, "websocket request refused", route=socket.route, error=exc.code, reason=exc.message
        )
        if socket.route not in ("$connect", "$disconnect"):
            self.reply(socket, {"type": "error", "error": exc.code, "message": exc.message})
        return {"statusCode": exc.status}
