"""A WebSocket API's data plane: `$connect` (authorised, then the function may refuse), messages
routed by the route selection expression, `$disconnect`, the quotas API Gateway enforces, and the
management API (`/{stage}/@connections/{id}`) that the function posts to.

The sockets speak through websockets' Sans-I/O protocol on the gateway's event loop: every
protocol object is touched only on that loop, so a post and a client's frame never interleave.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from websockets.frames import Opcode
from websockets.http11 import Response as WsResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

from taskmgmt_deploy.emulator.gateway import integration as lambda_proxy
from taskmgmt_deploy.emulator.gateway.auth import Denied, SecretFor, check_sigv4
from taskmgmt_deploy.emulator.gateway.wire import Request, Response

FRAME_LIMIT = 32 * 1024  # W7: a bigger frame closes the connection with 1009
MESSAGE_LIMIT = 128 * 1024  # W7: and so does a bigger message
POST_LIMIT = 128 * 1024  # PostToConnection: a bigger Data is refused with 413
IDLE_SECONDS = 600.0  # W8: no message from the client for 10 minutes closes the connection
LIFETIME_SECONDS = 7200.0  # W8: every connection is closed after 2 hours
INTEGRATION_TIMEOUT = 29.0
DRAIN_SECONDS = 5.0

Call = Callable[[Any, str, bytes, float], Awaitable[tuple[bytes, str | None]]]


def connection_id() -> str:
    """16 characters ending in '=', as AWS's are: callers must encode them in a URL path."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode()[:15] + "="


@dataclass
class Connection:
    id: str
    api_id: str
    region: str
    account: str
    stage: str
    domain: str
    peer: str
    user_agent: str
    protocol: ServerProtocol
    writer: asyncio.StreamWriter
    connected_at: float  # clock seconds
    connected_wall: float
    last_active: float
    last_active_wall: float
    state: str = "connecting"  # connecting, open, closed
    fragments: list[bytes] = field(default_factory=list)
    fragment_text: bool = True
    close_code: int | None = None
    close_reason: str = ""


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def selection_key(expression: str | None, body: bytes) -> str | None:
    """The route key `$request.body.a.b` selects from a JSON message; None when it selects none."""
    expression = expression or "$request.body.action"
    if not expression.startswith("$request.body."):
        return None
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for name in expression[len("$request.body.") :].split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value if isinstance(value, str) else None


class WebSocketApis:
    def __init__(
        self,
        now: Callable[[], float],
        wall: Callable[[], float],
        secret_for: SecretFor,
        record: Callable[[dict[str, Any]], None],
        call: Call,
    ):
        self.now, self.wall = now, wall
        self.secret_for = secret_for
        self.record = record
        self.call = call
        self.connections: dict[str, Connection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- the socket's life -------------------------------------------------------------------
    async def session(
        self, api: Any, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        stage = request.path.strip("/")
        protocol = ServerProtocol(max_size=FRAME_LIMIT)
        if stage not in api.stages:
            writer.write(Response.message(403, "Forbidden").encode(close=True))
            return
        protocol.receive_data(request.raw_head)
        events = protocol.events_received()
        if not events or protocol.handshake_exc is not None:
            await self._flush_raw(protocol, writer)
            return
        now, wall = self.now(), self.wall()
        conn = Connection(
            connection_id(),
            api.api_id,
            api.backend.region_name,
            api.backend.account_id,
            stage,
            host,
            request.peer,
            request.header("user-agent") or "",
            protocol,
            writer,
            now,
            wall,
            now,
            wall,
        )
        self.connections[conn.id] = conn
        try:
            refused = await self._connect(api, conn, request)
            if refused is not None:
                status, text = refused
                conn.state = "closed"
                protocol.send_response(protocol.reject(status, text))
                await self._flush_raw(protocol, writer)
                return
            response = protocol.accept(events[0])
            protocol.send_response(response)
            await self._flush_raw(protocol, writer)
            if response.status_code != 101:
                conn.state = "closed"
                return
            conn.state = "open"
            self.record({"api": api.api_id, "route": "$connect", "outcome": "connected", "connection": conn.id})
            await self._read(api, conn, reader)
        finally:
            was_open = conn.state != "closed" or conn.close_code is not None
            conn.state = "closed"
            self.connections.pop(conn.id, None)
            if was_open and protocol.state is not State.CONNECTING:
                self._spawn(self._disconnect(api, conn))

    async def _connect(self, api: Any, conn: Connection, request: Request) -> tuple[int, str] | None:
        """None to accept; (status, text) to refuse the handshake: no socket is opened (W9)."""
        route = _route(api, "$connect")
        if route is None:
            return None
        headers = request.lowered()
        caller = None
        if (route.authorization_type or "NONE").upper() == "AWS_IAM":
            try:
                caller = check_sigv4(
                    "GET",
                    f"http://{conn.domain}{request.target}",
                    headers,
                    b"",
                    conn.region,
                    self.wall(),
                    self.secret_for,
                )
            except Denied as denied:
                self.record({"api": api.api_id, "route": "$connect", "outcome": "denied", "why": str(denied)})
                return 403, "Forbidden"
        query: dict[str, list[str]] = {}
        for key, value in request.query_pairs():
            query.setdefault(key, []).append(value)
        multi: dict[str, list[str]] = {}
        for key, value in request.headers:
            multi.setdefault(key, []).append(value)
        event = {
            "headers": {k: ",".join(v) for k, v in multi.items()},
            "multiValueHeaders": multi,
            "requestContext": self._context(conn, "$connect", "CONNECT"),
            "isBase64Encoded": False,
        }
        if caller is not None:  # who signed, as API Gateway reports an IAM caller
            identity = {"accessKey": caller.access_key, "accountId": conn.account, "caller": caller.access_key}
            event["requestContext"]["identity"].update(identity)
        if query:
            event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
            event["multiValueQueryStringParameters"] = query
        self._stage_variables(api, conn, event)
        answer = await self._invoke(api, conn, route, event)
        if answer is None:
            return 500, "Internal Server Error"
        status, _body = answer
        if not 200 <= status < 300:
            self.record({"api": api.api_id, "route": "$connect", "outcome": "refused", "status": status})
            return status, "Forbidden" if status == 403 else "Unauthorized" if status == 401 else "Refused"
        return None

    async def _read(self, api: Any, conn: Connection, reader: asyncio.StreamReader) -> None:
        protocol = conn.protocol
        while protocol.state is not State.CLOSED:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for frame in protocol.events_received():
                self._frame(api, conn, frame)
            await self._flush(conn)
            if not data:
                break
        if protocol.close_code is not None and conn.close_code is None:
            conn.close_code, conn.close_reason = protocol.close_code, protocol.close_reason or ""

    def _frame(self, api: Any, conn: Connection, frame: Any) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            conn.fragments, conn.fragment_text = [frame.data], frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            conn.fragments.append(frame.data)
        else:
            return  # ping (answered by the protocol), pong, close: not activity (W8)
        if sum(len(part) for part in conn.fragments) > MESSAGE_LIMIT:
            conn.fragments = []
            self._fail(conn, 1009, "Message too big")
            return
        if not frame.fin:
            return
        message, conn.fragments = b"".join(conn.fragments), []
        conn.last_active, conn.last_active_wall = self.now(), self.wall()
        self._spawn(self._message(api, conn, message))

    async def _message(self, api: Any, conn: Connection, body: bytes) -> None:
        key = selection_key(api.route_selection_expression, body)
        route = (_route(api, key) if key else None) or _route(api, "$default")
        request_id = base64.b64encode(uuid.uuid4().bytes[:12]).decode()
        if route is None:
            await self.send(
                conn, json.dumps({"message": "Forbidden", "connectionId": conn.id, "requestId": request_id}).encode()
            )
            return
        context = self._context(conn, route.route_key, "MESSAGE", request_id)
        context["messageId"] = base64.b64encode(uuid.uuid4().bytes[:12]).decode()
        event = {"requestContext": context, "body": body.decode("utf-8", "replace"), "isBase64Encoded": False}
        self._stage_variables(api, conn, event)
        answer = await self._invoke(api, conn, route, event)
        if answer is None:
            message = {"message": "Internal server error", "connectionId": conn.id, "requestId": request_id}
            await self.send(conn, json.dumps(message).encode())
            return
        _status, reply = answer
        if reply is not None and _two_way(route):  # W10: the function's answer reaches the client only then
            await self.send(conn, reply)

    async def _disconnect(self, api: Any, conn: Connection) -> None:
        route = _route(api, "$disconnect")
        if route is None:
            return
        context = self._context(conn, "$disconnect", "DISCONNECT")
        context["disconnectStatusCode"] = conn.close_code or 1006
        context["disconnectReason"] = conn.close_reason
        event = {"headers": {}, "requestContext": context, "isBase64Encoded": False}
        self._stage_variables(api, conn, event)
        await self._invoke(api, conn, route, event)

    async def _invoke(
        self, api: Any, conn: Connection, route: Any, event: dict[str, Any]
    ) -> tuple[int, bytes | None] | None:
        """(status, body to send back or None); None when API Gateway got no answer."""
        source = f"arn:aws:execute-api:{conn.region}:{conn.account}:{api.api_id}/{conn.stage}/{route.route_key}"
        try:
            target = lambda_proxy.integration_of(api, route)
            raw, error = await self.call(target, source, json.dumps(event).encode(), INTEGRATION_TIMEOUT)
        except lambda_proxy.IntegrationFailed as failed:
            self.record({"api": api.api_id, "route": route.route_key, "outcome": failed.outcome, "why": str(failed)})
            return None
        self.record(
            {
                "api": api.api_id,
                "route": route.route_key,
                "outcome": "invoked" if not error else "function-error",
                "event": event,
            }
        )
        return None if error else _proxy_answer(raw)

    def _context(
        self, conn: Connection, route_key: str, event_type: str, request_id: str | None = None
    ) -> dict[str, Any]:
        request_id = request_id or base64.b64encode(uuid.uuid4().bytes[:12]).decode()
        wall = self.wall()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(wall, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": conn.stage,
            "connectedAt": int(conn.connected_wall * 1000),
            "requestTimeEpoch": int(wall * 1000),
            "identity": {"sourceIp": conn.peer, "userAgent": conn.user_agent},
            "requestId": request_id,
            "domainName": conn.domain,
            "connectionId": conn.id,
            "apiId": conn.api_id,
        }

    @staticmethod
    def _stage_variables(api: Any, conn: Connection, event: dict[str, Any]) -> None:
        stage = api.stages.get(conn.stage)
        if stage is not None and stage.stage_variables:
            event["stageVariables"] = dict(stage.stage_variables)

    # -- sending and closing -----------------------------------------------------------------
    async def send(self, conn: Connection, data: bytes) -> None:
        if conn.state != "open" or conn.protocol.state is not State.OPEN:
            return
        try:
            conn.protocol.send_text(data.decode("utf-8").encode())
        except UnicodeDecodeError:
            conn.protocol.send_binary(data)
        await self._flush(conn)

    def _fail(self, conn: Connection, code: int, reason: str) -> None:
        if conn.protocol.state is State.OPEN:
            conn.close_code, conn.close_reason = code, reason
            conn.protocol.fail(code, reason)

    def close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.protocol.state is State.OPEN:
            conn.close_code, conn.close_reason = code, reason
            conn.protocol.send_close(code, reason)
        self._spawn(self._flush(conn))
        self._spawn(self._abort_later(conn))

    async def _abort_later(self, conn: Connection, seconds: float = 2.0) -> None:
        """A client that never answers the close frame loses its TCP connection."""
        await asyncio.sleep(seconds)
        if not conn.writer.is_closing():
            conn.writer.close()

    async def _flush(self, conn: Connection) -> None:
        await self._flush_raw(conn.protocol, conn.writer)

    @staticmethod
    async def _flush_raw(protocol: ServerProtocol, writer: asyncio.StreamWriter) -> None:
        try:
            for chunk in protocol.data_to_send():
                if chunk:
                    writer.write(chunk)
                elif not writer.is_closing():
                    await asyncio.wait_for(writer.drain(), DRAIN_SECONDS)
                    writer.close()
                    return
            if not writer.is_closing():
                await asyncio.wait_for(writer.drain(), DRAIN_SECONDS)
        except (ConnectionError, OSError, TimeoutError):
            writer.close()

    def sweep(self) -> None:
        """Close the connections idle for 10 minutes or open for 2 hours (W8)."""
        now = self.now()
        for conn in list(self.connections.values()):
            if conn.state != "open":
                continue
            if now - conn.last_active >= IDLE_SECONDS or now - conn.connected_at >= LIFETIME_SECONDS:
                self.close(conn, 1001, "Going away")

    def close_api(self, api_id: str) -> None:
        for conn in list(self.connections.values()):
            if conn.api_id == api_id:
                self.close(conn, 1001, "Going away")

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the management API ------------------------------------------------------------------
    async def manage(self, api: Any, request: Request, host: str) -> Response:
        """POST, GET and DELETE /{stage}/@connections/{id}, SigV4-signed as AWS requires."""
        stage, marker, rest = request.path.lstrip("/").partition("/@connections/")
        if not marker or stage not in api.stages or not rest or "/" in rest:
            return Response.message(403, "Forbidden")
        try:
            check_sigv4(
                request.method,
                f"http://{host}{request.target}",
                request.lowered(),
                request.body,
                api.backend.region_name,
                self.wall(),
                self.secret_for,
            )
        except Denied as denied:
            return _error(403, "ForbiddenException", str(denied))
        conn = self.connections.get(unquote(rest))
        if conn is None or conn.api_id != api.api_id or conn.state != "open":  # W9: not yet, or no longer
            return _error(410, "GoneException", None)
        return await self._operate(conn, request)

    async def _operate(self, conn: Connection, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(conn, request.body)
        if request.method == "GET":
            body = {
                "connectedAt": _iso(conn.connected_wall),
                "identity": {"sourceIp": conn.peer, "userAgent": conn.user_agent},
                "lastActiveAt": _iso(conn.last_active_wall),
            }
            return Response(200, {"content-type": "application/json"}, json.dumps(body).encode())
        if request.method == "DELETE":
            self.close(conn, 1000, "")
            return Response(204, {}, b"")
        return Response.message(403, "Forbidden")

    async def _post(self, conn: Connection, data: bytes) -> Response:
        if len(data) > POST_LIMIT:
            return _error(413, "PayloadTooLargeException", "Message too long")
        if len(data) > FRAME_LIMIT:  # W7: one frame of more than 32 KB: the connection is closed
            self._fail(conn, 1009, "Message too big")
            await self._flush(conn)
        else:
            await self.send(conn, data)
        return Response(200, {"content-type": "application/json"}, b"")


def _proxy_answer(raw: bytes) -> tuple[int, bytes | None] | None:
    """A Lambda proxy answer as (status, body to send back or None); None for nonsense."""
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        return 200, raw
    if isinstance(answer, dict) and "statusCode" in answer:
        try:
            status = int(answer["statusCode"])
        except (TypeError, ValueError):
            return None
        body = answer.get("body")
        if body is None:
            return status, None
        return status, base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    return 200, None if answer is None else json.dumps(answer).encode()


def _error(status: int, code: str, message: str | None) -> Response:
    return Response(
        status,
        {"content-type": "application/json", "x-amzn-errortype": code},
        json.dumps({"message": message}).encode(),
    )


def _route(api: Any, key: str | None) -> Any:
    if key is None:
        return None
    return next((r for r in api.routes.values() if r.route_key == key), None)


def _two_way(route: Any) -> bool:
    return bool(route.route_response_selection_expression) and any(
        r.route_response_key == "$default" for r in route.route_responses.values()
    )


__all__ = ["Connection", "WebSocketApis", "WsResponse"]
