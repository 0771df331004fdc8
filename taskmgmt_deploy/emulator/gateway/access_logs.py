"""An HTTP API stage's access logs: one line a request, its `$context` variables substituted into
the stage's format, put in the log group the stage names (API Gateway writes to a group that
exists and creates none: the deploy creates it, W12). Variables the emulator does not know
are `-`, as API Gateway writes a value it does not have."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:logs:([a-z0-9-]+):(\d{12}):log-group:([^:*]+)(:\*)?$")


class AccessLogs:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # requests are answered at once; moto's backends are not thread-safe

    def write(self, stage: Any, api_id: str, context: dict[str, Any]) -> bool:
        """True when a line was written."""
        from moto.logs.models import logs_backends

        settings = stage.access_log_settings or {}
        destination = settings.get("destinationArn") or settings.get("DestinationArn")
        form = settings.get("format") or settings.get("Format")
        match = GROUP_ARN.match(str(destination or ""))
        if not match or not form:
            return False
        region, account, group_name = match.group(1), match.group(2), match.group(3)
        line = VARIABLE.sub(lambda m: _value(context.get(m.group(1))), form)
        stream = f"{api_id}_{stage.name}"
        backend = logs_backends[account][region]
        with self._lock:
            group = backend.groups.get(group_name)
            if group is None:
                return False
            if stream not in group.streams:
                group.create_log_stream(stream)
            backend.put_log_events(group_name, stream, [{"timestamp": int(time.time() * 1000), "message": line}])
        return True


def _value(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)
