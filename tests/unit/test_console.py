"""How status reads on a terminal of 80 columns, and the hint when only the sandbox has the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmgmt_deploy.cli.console import Console
from taskmgmt_deploy.core.models import Health, Status
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import load_settings


@pytest.fixture
def database_url() -> str:
    return "postgresql:///never-used"


def statuses(tmp_path: Path) -> list[Status]:
    stack = load_settings({}, {}, tmp_path).stack
    rows = []
    for index, res in enumerate(blueprint.build(stack)):
        ident = f"arn:aws:lambda:{res.region}:123456789012:function:{res.name}" if "lambda" in res.kind else res.name
        drifted = index % 9 == 4
        problems = ("memory: 512 -> 1024", "timeout: 60 -> 30") if drifted else ()
        rows.append(
            Status(
                res.key,
                res.kind,
                res.region,
                ident,
                "PENDING_SETUP",
                Health.DRIFTED if drifted else Health.OK,
                problems,
            )
        )
    return rows


def test_status_on_80_columns_never_wraps_a_resource_name_and_groups_by_region(tmp_path, capsys):
    rows = statuses(tmp_path)
    Console(width=80).status_table(rows, "task-mgmt-dev")
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert [line for line in lines if not line.startswith(" ")] == ["global", "us-east-1", "us-west-2"]
    for status in rows:
        name = status.key.rsplit("@", 1)[0]
        assert any(line.startswith(f"  {name} ") for line in lines), name  # whole, on one line
    assert "      memory: 512 -> 1024" in lines and "      timeout: 60 -> 30" in lines
    region_of_row = {}
    region = None
    for line in lines[1:]:
        if not line.startswith(" "):
            region = line
        elif not line.startswith("      "):
            region_of_row.setdefault(region, []).append(line.split()[0])
    assert region_of_row["us-east-1"][0] == "dsql_cluster:primary"  # dependency order within a region
    assert "metric_alarm:function-errors" in region_of_row["us-west-2"]


def test_a_stack_command_suggests_sandbox_when_only_the_sandbox_has_the_environment(cli, tmp_path):
    sandboxed = tmp_path / ".taskmgmt" / "sandbox" / "dev.json"
    sandboxed.parent.mkdir(parents=True)
    sandboxed.write_text("{}")
    for args in (("status",), ("outputs",)):
        result = cli(*args)
        assert result.code == 2
        assert "environment 'dev' is deployed in the sandbox: add --sandbox" in result.err
    other = cli("status", "--env", "qa")
    assert "--sandbox" not in other.err


STACK_TRACE = ['  File "/var/task/task_processor/handler.py", line 53, in lambda_handler\n', "    raise KeyError(x)\n"]


@pytest.mark.parametrize(
    "message",
    [
        # the runtime's text-format report (and the sandbox's)
        {"errorMessage": "'x'", "errorType": "KeyError", "requestId": "r-1", "stackTrace": STACK_TRACE},
        # with JSON logging: the report is the message of a record
        {
            "timestamp": "2026-12-01T10:00:00Z",
            "level": "ERROR",
            "message": {"errorMessage": "'x'", "errorType": "KeyError", "stackTrace": STACK_TRACE},
            "requestId": "r-1",
        },
    ],
)
def test_an_unhandled_error_reads_as_one_line_and_its_traceback_indented(capsys, message):
    import json

    Console(width=120).log_line(1764583200000, "us-east-1", json.dumps(message))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("us-east-1  ERROR    r-1  unhandled KeyError: 'x'")
    assert lines[1:] == [
        '      File "/var/task/task_processor/handler.py", line 53, in lambda_handler',
        "        raise KeyError(x)",
    ]
