"""logs: the function's log lines from its log group in each region, merged by time.

FilterLogEvents pages through one group; the events of several groups (and of a group's
streams) are merged here by timestamp, since AWS promises no order across streams. Following
polls with a moving start time; an event seen at the start time's millisecond is not shown
twice (de-duplicated by event id).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.errors import UserError

POLL_SECONDS = 2.0
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # milliseconds since the epoch
    region: str
    group: str
    stream: str
    event_id: str
    message: str


def parse_since(text: str, now: datetime) -> int:
    """`10m`, `1h`, `2d` before now, or an ISO 8601 time (UTC unless it says otherwise); in epoch ms."""
    duration = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if duration:
        moment = now - timedelta(**{_UNITS[duration[2]]: int(duration[1])})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"--since {text!r} is invalid: give a duration such as 10m, 1h or 2d, "
                "or a time such as 2026-12-01T09:30:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def function_log_groups(manifest: Manifest, region: str | None) -> dict[str, str]:
    """region -> the function's log group, from the manifest; only `region` when given."""
    groups = {rec.region: rec.name for rec in manifest if rec.kind == "log_group" and rec.region}
    if region is not None:
        if region not in groups:
            raise UserError(f"--region {region!r} is invalid: the stack's regions are {', '.join(groups)}")
        return {region: groups[region]}
    if not groups:
        raise UserError("the function's log groups are not deployed yet: run `taskmgmt deploy`")
    return groups


class LogReader:
    def __init__(self, aws: AwsClients, groups: Mapping[str, str], text: str | None = None):
        self.aws, self.groups = aws, dict(groups)
        # A quoted term: the text as typed, spaces and all (CloudWatch Logs filter pattern syntax).
        self.pattern = '"' + text.replace('"', "") + '"' if text else None

    def read(self, start: int) -> list[LogEvent]:
        """Every event from `start` (epoch ms) on, of every group, in time order."""
        events = [event for region, group in self.groups.items() for event in self._group_events(region, group, start)]
        return sorted(events, key=lambda e: (e.timestamp, e.region, e.stream, e.event_id))

    def follow(self, start: int, emit: Callable[[LogEvent], None], clock: Clock, polls: int | None = None) -> None:
        """Emit events as they arrive until interrupted (or after `polls` polls, for tests)."""
        seen: dict[str, int] = {}  # event id -> timestamp, of the events at or after `start`
        count = 0
        while polls is None or count < polls:
            for event in self.read(start):
                if event.event_id not in seen:
                    seen[event.event_id] = event.timestamp
                    emit(event)
                    start = max(start, event.timestamp)
            seen = {ident: stamp for ident, stamp in seen.items() if stamp >= start}
            count += 1
            clock.sleep(POLL_SECONDS)

    def _group_events(self, region: str, group: str, start: int) -> Iterator[LogEvent]:
        logs = self.aws.get("logs", region)
        kwargs: dict[str, object] = {"logGroupName": group, "startTime": start}
        if self.pattern:
            kwargs["filterPattern"] = self.pattern
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                yield LogEvent(
                    int(event["timestamp"]),
                    region,
                    group,
                    event.get("logStreamName", ""),
                    event.get("eventId") or f"{event.get('logStreamName')}/{event['timestamp']}/{event['message']}",
                    event.get("message", ""),
                )
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return
            kwargs["nextToken"] = token
