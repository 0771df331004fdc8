"""Two regions as the board sees them, in this process: each region's site is `serve`'s bridge
(taskmgmt_deploy.usecases.serve) in front of the function's API code on the session's
PostgreSQL, and each region has a WebSocket endpoint. The function's notifications fan out to
every subscribed socket of both regions, the way the broadcast rule and the management API do.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

from task_processor import api, broadcast  # noqa: E402
from task_processor.app import TaskApp  # noqa: E402
from task_processor.contract import NOTIFICATION_DETAIL_TYPE, NOTIFICATION_SOURCE  # noqa: E402
from task_processor.db import Database, url_connect  # noqa: E402
from task_processor.notify import Notifier  # noqa: E402


@dataclass
class Hub:
    """Every socket of both regions, with what it subscribed to (subscriptions add up, as the
    function keeps them, until unsubscribed)."""

    sockets: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)  # notified when subscriptions change
    sent: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # what each connection asked for (its ?token=)
    messages: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # (connection, message), as received

    def serve(self, connection: Any) -> None:
        self.paths.append(connection.request.path)
        try:
            for raw in connection:
                message = json.loads(raw)
                with self.lock:
                    self.messages.append((connection, message))
                    self.lock.notify_all()
                topic = {k: message[k] for k in ("project", "assignee", "all") if k in message}
                if message.get("action") == "subscribe":
                    with self.lock:
                        topics = self.sockets.setdefault(connection, [])
                        topics += [] if topic in topics else [topic]
                        self.lock.notify_all()
                    connection.send(json.dumps({"type": "subscribed", **topic}))
                elif message.get("action") == "unsubscribe":
                    with self.lock:
                        self.sockets[connection] = [t for t in self.sockets.get(connection, []) if t != topic]
                        self.lock.notify_all()
                    connection.send(json.dumps({"type": "unsubscribed", **topic}))
                elif message.get("action") == "ping":
                    connection.send(json.dumps({"type": "pong"}))
        finally:
            with self.lock:
                self.sockets.pop(connection, None)

    def subscriptions_when(self, ready: Callable[[dict[Any, list[dict[str, Any]]]], bool]) -> dict[Any, list[Any]]:
        """Every socket's subscriptions, once `ready` holds for them (waits at most 10 s)."""
        with self.lock:
            assert self.lock.wait_for(lambda: ready(self.sockets), timeout=10), self.sockets
            return {connection: list(topics) for connection, topics in self.sockets.items()}

    def sent_by(self, connection: Any, count: int) -> list[dict[str, Any]]:
        """The messages a connection sent, but pings, once there are `count` (waits at most 10 s)."""

        def mine() -> list[dict[str, Any]]:
            return [m for c, m in self.messages if c is connection and m.get("action") != "ping"]

        with self.lock:
            assert self.lock.wait_for(lambda: len(mine()) >= count, timeout=10), mine()
            return mine()

    def broadcast(self, detail: dict[str, Any]) -> None:
        """The message the function's broadcast entry point makes of the notification."""
        event = {"source": NOTIFICATION_SOURCE, "detail-type": NOTIFICATION_DETAIL_TYPE, "detail": detail}
        message = json.loads(broadcast.message(event) or b"{}")
        task = detail["data"]
        with self.lock:
            targets = [c for c, topics in self.sockets.items() if any(_wants(t, task) for t in topics)]
            self.sent.append(message)
        for connection in targets:
            try:
                connection.send(json.dumps(message))
            except Exception:  # noqa: BLE001, S112 - a closed socket: the others still get it
                continue


def _wants(topic: dict[str, Any], task: dict[str, Any]) -> bool:
    if topic.get("all"):
        return True
    if "project" in topic:
        return str(task.get("project_id")) == str(topic["project"])
    return "assignee" in topic and task.get("assigned_to") == topic["assignee"]


class Bus:
    """The Notifier's events client: each notification goes to the hub at once."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        for entry in Entries:
            self.hub.broadcast(json.loads(entry["Detail"]))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


@dataclass
class Region:
    name: str
    url: str  # the board's site: http://127.0.0.1:P
    websocket_url: str


@contextmanager
def regions(
    app_url: str, names: tuple[str, ...] = ("us-east-1", "us-east-2"), token: str | None = None
) -> Iterator[tuple[Hub, list[Region]]]:
    """With a token, the regions are configured for API_AUTH=jwt (the caller sets the function's
    API_AUTH and JWT_LOGIN_URL): the task API answers 401, as the JWT authorizer does, unless the
    request carries that token."""
    from websockets.sync.server import serve as websocket_serve

    from taskmgmt_deploy.usecases.serve import make_server

    hub = Hub()
    servers: list[Any] = []
    made: list[Region] = []
    try:
        for name in names:
            sockets = websocket_serve(hub.serve, "127.0.0.1", 0)
            servers.append(sockets)
            threading.Thread(target=sockets.serve_forever, daemon=True).start()
            websocket_url = f"ws://127.0.0.1:{sockets.socket.getsockname()[1]}/live"
            app = TaskApp(Database(url_connect(app_url)), Notifier("task-bus", name, client=Bus(hub)))
            site = make_server(0, _invoke(app, name, websocket_url, token), lambda line: None)
            servers.append(site)
            threading.Thread(target=site.serve_forever, daemon=True).start()
            made.append(Region(name, f"http://127.0.0.1:{site.server_port}", websocket_url))
        yield hub, made
    finally:
        for server in servers:
            server.shutdown()


LOGIN_URL = "https://login.example.com/oauth2/authorize?client_id=board&response_type=token"
JSON = {"content-type": "application/json"}
UNAUTHORIZED = {"statusCode": 401, "headers": JSON, "body": '{"message":"Unauthorized"}'}
PUBLIC = {("GET", "/")} | {("GET", f"/board/{name}") for name in ("index.html", "board.js", "board.css", "config.json")}


def _invoke(app: TaskApp, region: str, websocket_url: str, token: str | None):
    """The function's API code with the stage variables the HTTP API's stage passes; with a token,
    the JWT authorizer's 401 on every route but the public board's."""
    lock = threading.Lock()  # one function instance handles one request at a time, as on Lambda

    def invoke(payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        event["stageVariables"] = {"websocketUrl": websocket_url, "region": region}
        route = (event["requestContext"]["http"]["method"], event["rawPath"])
        if token and route not in PUBLIC and event["headers"].get("authorization") != f"Bearer {token}":
            answer = UNAUTHORIZED
        else:
            with lock:
                answer = api.handle(event, app, event["requestContext"]["requestId"])
        return json.dumps(answer).encode(), None

    return invoke
