"""Structured JSON logs carrying the request id, and counts as CloudWatch embedded metrics."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from task_processor.contract import ENV_STACK, METRICS_NAMESPACE

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_counts: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar("counts", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "request_id": _request_id.get(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is now (the runtime's, or a test's capture)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def get_logger() -> logging.Logger:
    logger = logging.getLogger("task_processor")
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper())
        logger.propagate = False  # the Lambda runtime's root handler would print it twice
    return logger


log = get_logger()


def log_fields(level: int, message: str, **fields: Any) -> None:
    log.log(level, message, extra={"fields": fields})


def count(metric: str, value: int = 1) -> None:
    counts = _counts.get()
    if counts is not None:
        counts[metric] += value


@contextmanager
def invocation(request_id: str) -> Iterator[None]:
    """Bind the request id to every log line and flush the counts as one EMF record."""
    token_id = _request_id.set(request_id)
    token_counts = _counts.set(Counter())
    try:
        yield
    finally:
        counts = _counts.get()
        if counts:
            emit_metrics(dict(counts))
        _counts.reset(token_counts)
        _request_id.reset(token_id)


def emit_metrics(counts: dict[str, int]) -> None:
    stack = os.environ.get(ENV_STACK, "local")
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [["Stack"]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in sorted(counts)],
                }
            ],
        },
        "Stack": stack,
        "request_id": _request_id.get(),
        **counts,
    }
    sys.stdout.write(json.dumps(record) + "\n")
