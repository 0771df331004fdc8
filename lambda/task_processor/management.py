"""Posting to WebSocket connections through their API's management endpoint (PostToConnection).

A connection is reached through the endpoint its row records, in its own region, whichever
region the poster runs in. One client per (endpoint, region), made once and shared by the
threads of one bounded pool; each post has short timeouts and few retries, so a slow or dead
connection holds one worker for a bounded time and never the others. GoneException (410):
the client has gone; the caller deletes its row.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlparse

from task_processor import observability

SENT, GONE, FAILED = "sent", "gone", "failed"
WORKERS = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")

ClientFactory = Callable[[str, str], Any]  # (endpoint URL, region) -> apigatewaymanagementapi client


def management_endpoint(domain_name: str, stage: str) -> str:
    """https://{domain}/{stage}; http only on loopback (the sandbox's data plane)."""
    host = urlparse(f"//{domain_name}").hostname or ""
    scheme = "http" if host in LOOPBACK else "https"
    return f"{scheme}://{domain_name}/{stage}"


def boto3_client(endpoint: str, region: str, workers: int = WORKERS) -> Any:
    import boto3  # the runtime's boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=1,
        read_timeout=2,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=workers,
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=region, config=config)


def error_code(exc: BaseException) -> str:
    """A botocore ClientError's code, without importing botocore."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return type(exc).__name__


class Poster:
    def __init__(self, client_factory: ClientFactory | None = None, workers: int = WORKERS):
        self._factory = client_factory or (lambda endpoint, region: boto3_client(endpoint, region, workers))
        self.workers = workers
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()  # boto3's default session is not thread-safe: clients are made under it
        self._pool: ThreadPoolExecutor | None = None

    def _client(self, endpoint: str, region: str) -> Any:
        with self._lock:
            client = self._clients.get((endpoint, region))
            if client is None:
                client = self._clients[(endpoint, region)] = self._factory(endpoint, region)
            return client

    def post(self, endpoint: str, region: str, connection_id: str, data: bytes) -> str:
        try:
            self._client(endpoint, region).post_to_connection(ConnectionId=connection_id, Data=data)
        except Exception as exc:  # noqa: BLE001 - one connection's failure is counted, never raised
            code = error_code(exc)
            if code in ("GoneException", "410"):
                return GONE
            observability.log_fields(
                logging.WARNING, "post to connection failed", connection_id=connection_id, endpoint=endpoint, error=code
            )
            return FAILED
        return SENT

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="post")
            return self._pool

    def post_all(self, targets: Iterable[tuple[str, str, str]], data: bytes) -> Iterator[tuple[str, str]]:
        """Post to every (endpoint, region, connection id) on the pool, as they come; yields
        (connection id, outcome) as each post finishes, in any order."""
        futures: dict[Future[str], str] = {
            self.pool().submit(self.post, endpoint, region, connection_id, data): connection_id
            for endpoint, region, connection_id in targets
        }
        for future in as_completed(futures):
            yield futures[future], future.result()
