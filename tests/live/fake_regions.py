"""Two regions as the board sees them, in this process: each region's site is `serve`'s bridge
(taskmgmt_deploy.usecases.serve) in front of the function's API code on the session's
PostgreSQL, and each region has a WebSocket endpoint. The function's notifications fan out to
every subscribed socket of both regions, the way the broadcast rule and the management API do.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
BOARD_DIR = LAMBDA_DIR / "task_processor" / "board"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

from task_processor import api  # noqa: E402
from task_processor.app import TaskApp  # noqa: E402
from task_processor.db import Database, url_connect  # noqa: E402
from task_processor.notify import Notifier  # noqa: E402


@dataclass
class Hub:
    """Every socket of both regions, with what it subscribed to."""

    sockets: dict[Any, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # what each connection asked for (its ?token=)

    def serve(self, connection: Any) -> None:
        self.paths.append(connection.request.path)
        try:
            for raw in connection:
                message = json.loads(raw)
                if message.get("action") == "subscribe":
                    topic = {k: message[k] for k in ("project", "assignee", "all") if k in message}
                    with self.lock:
                        self.sockets[connection] = topic
                    connection.send(json.dumps({"type": "subscribed", **topic}))
                elif message.get("action") == "ping":
                    connection.send(json.dumps({"type": "pong"}))
        finally:
            with self.lock:
                self.sockets.pop(connection, None)

    def broadcast(self, detail: dict[str, Any]) -> None:
        task = detail["data"]
        message = {"type": "task", "event": detail["eventType"], "task": task, "region": detail["region"]}
        with self.lock:
            targets = [c for c, topic in self.sockets.items() if _wants(topic, task)]
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


def static(path: str) -> dict[str, Any] | None:
    """GET / and GET /board/{file}, as the function serves them."""
    name = "index.html" if path == "/" else path.removeprefix("/board/")
    if path != "/" and (not path.startswith("/board/") or "/" in name):
        return None
    file = BOARD_DIR / name
    if not file.is_file():
        return {"statusCode": 404, "headers": {"content-type": "application/json"}, "body": '{"error":"not_found"}'}
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return {"statusCode": 200, "headers": {"content-type": f"{kind}; charset=utf-8"}, "body": file.read_text()}


@contextmanager
def regions(
    app_url: str, names: tuple[str, ...] = ("us-east-1", "us-east-2"), token: str | None = None
) -> Iterator[tuple[Hub, list[Region]]]:
    """With a token, the regions are configured for API_AUTH=jwt: the task API answers 401, as
    the JWT authorizer does, unless the request carries that token."""
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
UNAUTHORIZED = {
    "statusCode": 401,
    "headers": {"content-type": "application/json"},
    "body": '{"message":"Unauthorized"}',
}


def _invoke(app: TaskApp, region: str, websocket_url: str, token: str | None):
    lock = threading.Lock()  # one function instance handles one request at a time, as on Lambda

    def invoke(payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        path = event["rawPath"]
        if path == "/board/config.json":
            config = {
                "websocketUrl": websocket_url,
                "region": region,
                "auth": "jwt" if token else "iam",
                "loginUrl": LOGIN_URL if token else None,
            }
            answer = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(config)}
        else:
            answer = static(path) if event["requestContext"]["http"]["method"] == "GET" else None
            if answer is None and token and event["headers"].get("authorization") != f"Bearer {token}":
                answer = UNAUTHORIZED
            if answer is None:
                with lock:
                    answer = api.handle(event, app, event["requestContext"]["requestId"])
        return json.dumps(answer).encode(), None

    return invoke
