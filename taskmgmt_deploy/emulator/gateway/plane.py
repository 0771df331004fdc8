"""The gateway's event loop, listeners and patches: GatewayFidelity, the part fidelity.py installs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.gateway import integration as lambda_proxy
from taskmgmt_deploy.emulator.gateway.auth import KeySets
from taskmgmt_deploy.emulator.gateway.http_api import HttpApi
from taskmgmt_deploy.emulator.gateway.issuer import PATH as ISSUER_PATH
from taskmgmt_deploy.emulator.gateway.issuer import Issuer
from taskmgmt_deploy.emulator.gateway.websocket_api import WebSocketApis
from taskmgmt_deploy.emulator.gateway.wire import BadRequest, Response, read_request
from taskmgmt_deploy.emulator.patching import Patches

SANDBOX_CREDENTIALS = {"sandbox": "sandbox"}  # what the sandbox's CLI and functions sign with
SWEEP_SECONDS = 5.0
RECORDS_KEPT = 1000  # a sandbox runs for days: what it remembers is bounded
log = logging.getLogger(__name__)


class GatewayFidelity:
    def __init__(self, clock: Clock, lock: threading.RLock, credentials: dict[str, str] | None = None):
        self.clock = clock
        self.lock = lock
        self.credentials = dict(SANDBOX_CREDENTIALS if credentials is None else credentials)
        self.issuer = Issuer()
        self.key_sets = KeySets()
        self.records: deque[dict[str, Any]] = deque(maxlen=RECORDS_KEPT)  # what happened, for tests
        self.http = HttpApi(clock.now, self._wall, self.secret_for, self.key_sets, self._record)
        self.websocket = WebSocketApis(clock.now, self._wall, self.secret_for, self._record, self._call)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._servers: dict[str, tuple[asyncio.AbstractServer, Any]] = {}  # api id -> (server, api)

    # -- clock, credentials, records ---------------------------------------------------------
    @staticmethod
    def _wall() -> float:
        """Signatures and tokens carry the real time, whatever clock the emulator runs on."""
        return time.time()

    def secret_for(self, access_key: str) -> str | None:
        """The secret of an access key AWS would know: the sandbox's, this process's, moto IAM's."""
        if access_key in self.credentials:
            return self.credentials[access_key]
        if os.environ.get("AWS_ACCESS_KEY_ID") == access_key:
            return os.environ.get("AWS_SECRET_ACCESS_KEY")
        from moto.iam.models import iam_backends

        for account in list(iam_backends.values()):
            for backend in list(account.values()):
                for user in list(backend.users.values()):
                    for key in user.access_keys:
                        if key.access_key_id == access_key and key.status == "Active":
                            return str(key.secret_access_key)
        return None

    def _record(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records.append(record)

    def reset(self) -> None:
        for api_id in list(self._servers):
            self._stop(api_id)
        with self.lock:
            self.records.clear()
        self.key_sets.clear()

    # -- the event loop ----------------------------------------------------------------------
    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._pool = ThreadPoolExecutor(32, thread_name_prefix="apigateway")
                self._thread = threading.Thread(target=loop.run_forever, name="apigateway", daemon=True)
                self._thread.start()
                self._loop = loop
                asyncio.run_coroutine_threadsafe(self._sweeper(), loop)
            return self._loop

    def run(self, coroutine: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the gateway's loop from another thread (tests, the control plane)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._running_loop()).result(timeout)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.websocket.sweep()

    def sweep(self) -> None:
        """Apply the connection time limits now (tests move the clock, then call this)."""

        async def sweep() -> None:
            self.websocket.sweep()
            await asyncio.sleep(0)

        self.run(sweep())

    async def _call(
        self, integration: Any, source_arn: str, payload: bytes, timeout: float
    ) -> tuple[bytes, str | None]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, lambda_proxy.invoke, integration, source_arn, payload)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise lambda_proxy.IntegrationFailed("timeout", f"no answer within {timeout:.0f} s") from None

    # -- listeners ---------------------------------------------------------------------------
    def _listen(self, api: Any) -> str:
        """Serve the API on a new loopback port; returns its ApiEndpoint."""
        loop = self._running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        port = sock.getsockname()[1]

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(lambda r, w: self._serve(api, r, w), sock=sock, limit=64 * 1024)

        server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        self._servers[api.api_id] = (server, api)
        scheme = "ws" if api.protocol_type == "WEBSOCKET" else "http"
        return f"{scheme}://127.0.0.1:{port}"

    def _stop(self, api_id: str) -> None:
        entry = self._servers.pop(api_id, None)
        if entry is None or self._loop is None:
            return
        server, _api = entry

        async def stop() -> None:
            self.websocket.close_api(api_id)
            server.close()
            await asyncio.sleep(0)

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)

    async def _serve(self, api: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("127.0.0.1", 0))[0]
        host = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
        try:
            while True:
                try:
                    request = await read_request(reader, peer)
                except BadRequest as bad:
                    writer.write(Response.message(bad.status, str(bad)).encode(close=True))
                    return
                if request is None:
                    return
                if api.protocol_type == "WEBSOCKET" and request.is_upgrade:
                    try:
                        await self.websocket.session(api, request, reader, writer, host)
                    except (ConnectionError, OSError, asyncio.CancelledError):
                        raise
                    except Exception as exc:  # a fault of the emulator: the socket is dropped, and said why
                        log.exception("API Gateway emulation failed on a socket: %s", exc)
                    return
                response = await self._answer(api, request, host)
                writer.write(response.encode(head_only=request.method == "HEAD", close=not request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    return
        except (ConnectionError, OSError, asyncio.CancelledError):  # cancelled: the emulator is stopping
            return
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(self, api: Any, request: Any, host: str) -> Response:
        try:
            if api.protocol_type == "WEBSOCKET":
                return await self.websocket.manage(api, request, host)
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._http, api, request, host)
        except Exception as exc:
            log.exception("API Gateway emulation failed: %s", exc)
            return Response.message(500, "Internal Server Error")

    def _http(self, api: Any, request: Any, host: str) -> Response:
        def invoke(integration: Any, source_arn: str, payload: bytes) -> tuple[bytes, str | None]:
            return lambda_proxy.invoke(integration, source_arn, payload)

        return self.http.handle(api, request, host, invoke)

    # -- patches -----------------------------------------------------------------------------
    def create_api(self, original: Any, backend: Any, *args: Any, **kwargs: Any) -> Any:
        api = original(backend, *args, **kwargs)
        api.api_endpoint = self._listen(api)  # W1
        return api

    def delete_api(self, original: Any, backend: Any, api_id: str) -> None:
        original(backend, api_id)
        self._stop(api_id)

    def issuer_app(self, original: Any, dispatcher: Any, environ: dict[str, Any]) -> Any:
        if environ.get("PATH_INFO", "").startswith(ISSUER_PATH):
            return self.issuer
        return original(dispatcher, environ)

    def install(self, patches: Patches) -> None:
        from moto.apigatewayv2.models import ApiGatewayV2Backend
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        patches.around(ApiGatewayV2Backend, "create_api", self.create_api)
        patches.around(ApiGatewayV2Backend, "delete_api", self.delete_api)
        patches.around(DomainDispatcherApplication, "get_application", self.issuer_app)

    def close(self) -> None:
        self.reset()
        if self._loop is not None:

            async def cancel_everything() -> None:
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)

            with suppress(Exception):
                self.run(cancel_everything())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop.close()
            self._loop = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def apis(self) -> Iterator[Any]:
        return iter(api for _server, api in list(self._servers.values()))
