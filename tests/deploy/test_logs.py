"""taskmgmt logs: both regions' log groups, merged by time, rendered readably; following them."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime

import boto3
import pytest

from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.usecases.logs import parse_since

GROUP = "/aws/lambda/task-mgmt-dev-task-processor"
REQUEST = "6f1c7a52-1d0e-4c59-9d3e-5b2f0c8a7e11"


def put(region: str, minutes_ago: float, message: str | dict) -> None:
    logs = boto3.client("logs", region_name=region)
    stream = "2026/12/01/[$LATEST]abc"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    text = message if isinstance(message, str) else json.dumps(message)
    stamp = int((time.time() - minutes_ago * 60) * 1000)
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=[{"timestamp": stamp, "message": text}])


def record(message: str, level: str = "INFO", **fields) -> dict:
    return {
        "timestamp": "2026-12-01T10:00:00.000Z",
        "level": level,
        "message": message,
        "request_id": REQUEST,
        **fields,
    }


@pytest.fixture
def logged(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    put("us-east-1", 5, record("event applied", event_type="task.created"))
    put("us-west-2", 4, record("request not served", "WARNING", error="not_found"))
    put(
        "us-east-1",
        3,
        record("request failed", "ERROR", exception='Traceback (most recent call last):\n  File "api.py"\nKeyError: x'),
    )
    put("us-west-2", 2, "a line that is not JSON")


def test_logs_of_both_regions_are_merged_by_time_and_readable(logged, cli):
    result = cli("logs")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[2] for line in lines if not line.startswith("    ")] == [
        "us-east-1",
        "us-west-2",
        "us-east-1",
        "us-west-2",
    ]
    assert f"us-east-1  INFO     {REQUEST}  event applied  event_type=task.created" in lines[0]
    assert f"us-west-2  WARNING  {REQUEST}  request not served  error=not_found" in lines[1]
    assert lines[3:5] == ["    Traceback (most recent call last):", '      File "api.py"']
    assert lines[-1].endswith("us-west-2           a line that is not JSON")


def test_logs_of_one_region_since_a_time_with_a_filter(logged, cli):
    west = cli("logs", "--region", "us-west-2").out.splitlines()
    assert len(west) == 2 and all("us-west-2" in line for line in west)
    recent = cli("logs", "--since", "150s").out.splitlines()
    assert len(recent) == 1 and "not JSON" in recent[0]
    matching = cli("logs", "--filter", "not served").out.splitlines()
    assert len(matching) == 1 and "request not served" in matching[0]
    assert cli("logs", "--region", "eu-west-1").code == 2
    bad = cli("logs", "--since", "yesterday")
    assert bad.code == 2 and "--since 'yesterday' is invalid" in bad.err


def test_logs_as_json_lines(logged, cli):
    result = cli("logs", "--json")
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["region"] for e in events] == ["us-east-1", "us-west-2", "us-east-1", "us-west-2"]
    assert json.loads(events[0]["message"])["request_id"] == REQUEST
    assert {e["log_group"] for e in events} == {GROUP}
    assert events == sorted(events, key=lambda e: e["timestamp"])


def test_follow_prints_each_new_line_once_until_ctrl_c(logged, cli, clock, monkeypatch):
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            put("us-west-2", 0, record("event applied", event_type="task.updated"))
        if len(polls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", sleep)
    result = cli("logs", "--follow", "--since", "1h")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if not line.startswith("    ")]
    assert len(lines) == 5 and "task.updated" in lines[-1]
    assert polls == [2.0, 2.0, 2.0]


def test_since_reads_durations_and_times():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    hour = 3_600_000
    assert parse_since("1h", now) == int(now.timestamp() * 1000) - hour
    assert parse_since("90m", now) == int(now.timestamp() * 1000) - hour * 3 // 2
    assert parse_since("2026-12-01T11:00:00Z", now) == int(now.timestamp() * 1000) - hour
    assert parse_since("2026-12-01T11:00:00", now) == int(now.timestamp() * 1000) - hour
    with pytest.raises(UserError, match="--since '10 minutes' is invalid"):
        parse_since("10 minutes", now)


def test_the_sandbox_sends_a_functions_output_only_to_a_log_group_that_exists(aws):
    # docs/pessimistic-emulation.md row G2
    from types import SimpleNamespace

    from taskmgmt_deploy.emulator.logs import FunctionLogs

    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="/custom/group")
    invocation = SimpleNamespace(
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn", function_name="fn", region="us-east-1"
    )
    stamp = int(time.time() * 1000)
    FunctionLogs(lambda arn: "/custom/group")(invocation, [(stamp, "configured group")])
    FunctionLogs(lambda arn: None)(invocation, [(stamp, "default group")])
    events = logs.filter_log_events(logGroupName="/custom/group")["events"]
    assert [e["message"] for e in events] == ["configured group"]
    assert logs.describe_log_groups()["logGroups"][0]["logGroupName"] == "/custom/group"
    assert len(logs.describe_log_groups()["logGroups"]) == 1  # /aws/lambda/fn was not made for it
