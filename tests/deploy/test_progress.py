"""The progress of a deploy or destroy: live on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import re
import sys

from rich.console import Console as RichConsole

from taskmgmt_deploy.cli.console import Console
from taskmgmt_deploy.cli.progress import RunDisplay
from tests.deploy.killing import run_cli_and_exit
from tests.deploy.kinds import default_stack_size

ALL = default_stack_size()  # every resource of a default dev stack

CONTROL = re.compile(r"\x1b\[|\r")


def on_terminal(width: int = 120) -> tuple[Console, io.StringIO]:
    console = Console(width=width)
    screen = io.StringIO()
    console.err = RichConsole(file=screen, force_terminal=True, markup=False, highlight=False, width=width)
    return console, screen


def test_on_a_terminal_the_count_and_each_step_in_flight_are_live():
    console, screen = on_terminal()
    with RunDisplay(console) as display:
        assert display.live
        display.begin("deploy", 3)
        display.started("sqs_queue:events-dlq@us-east-1", "create")
        display.started("dsql_peering:clusters@global", "create")
        display.progress("dsql_peering:clusters@global", "waiting for both DSQL clusters to become ACTIVE")
        display._progress.refresh()
        frame = screen.getvalue()
        assert "deploy [0/3]" in frame
        assert "create sqs_queue:events-dlq@us-east-1" in frame
        assert "create dsql_peering:clusters@global: waiting for both DSQL clusters to become ACTIVE" in frame
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame)
        assert re.search(r"create sqs_queue:events-dlq@us-east-1\s+0:00:0\d", plain)  # its elapsed time
        display.finished("sqs_queue:events-dlq@us-east-1", "create", 1.25)
        display._progress.refresh()
        assert "[1/3] created sqs_queue:events-dlq@us-east-1 (1.2s)" in screen.getvalue()
        assert "deploy [1/3]" in screen.getvalue()
    assert display.seconds == {"sqs_queue:events-dlq@us-east-1": 1.25}


def test_without_a_terminal_one_plain_line_per_finished_step():
    console = Console(width=120)
    screen = io.StringIO()
    console.err = RichConsole(file=screen, markup=False, highlight=False, width=120)
    with RunDisplay(console) as display:
        assert not display.live
        display.begin("destroy", 2)
        display.started("event_bus:task-events@us-east-1", "delete")
        display.progress("event_bus:task-events@us-east-1", "waiting for rules to go")
        display.finished("event_bus:task-events@us-east-1", "delete", 0.5)
        display.started("dsql_cluster:primary@us-east-1", "delete")
        display.finished("dsql_cluster:primary@us-east-1", "delete", 90.0)
    assert screen.getvalue().splitlines() == [
        "  event_bus:task-events@us-east-1: waiting for rules to go",
        "[1/2] deleted event_bus:task-events@us-east-1 (0.5s)",
        "[2/2] deleted dsql_cluster:primary@us-east-1 (90.0s)",
    ]


def run_on_pty(args: list[str]) -> tuple[int, str]:
    """`taskmgmt ARGS` in a child whose stdin, stdout and stderr are a pseudo-terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns into pytest

        def on_the_terminal() -> None:  # not pytest's capture
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)

        run_cli_and_exit(args, on_the_terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status), b"".join(chunks).decode(errors="replace")


def test_a_deploy_on_a_pseudo_terminal_is_live_and_with_no_progress_plain(aws, runtime, cli):
    code, screen = run_on_pty(["deploy", "--yes"])
    assert code == 0, screen
    assert CONTROL.search(screen)  # rich's live display drew and redrew
    assert f"[{ALL}/{ALL}] created" in screen and f"deployed task-mgmt-dev: created {ALL}" in screen

    code, screen = run_on_pty(["deploy", "--yes", "--no-progress"])  # each child deploys to its own moto
    assert code == 0, screen
    assert not CONTROL.search(screen.replace("\r\n", "\n"))  # the terminal's own line ends aside
    assert re.search(r"^\[(\d+)/\1\] created ", screen, re.MULTILINE)  # the package and schema exist already


def test_plain_output_has_no_control_characters(aws, runtime, cli):
    result = cli("deploy", "--yes")
    assert result.code == 0
    assert not CONTROL.search(result.err + result.out)
    finished = [line for line in result.err.splitlines() if re.match(rf"\[\d+/{ALL}\] created ", line)]
    assert len(finished) == ALL


def test_a_redeploy_right_after_destroy_says_what_it_waits_for_and_until_when(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    assert cli("destroy", "--yes").code == 0
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    waits = [line for line in again.err.splitlines() if "waiting for SQS" in line]
    assert waits  # once per queue, not once per retry
    assert len(waits) == len({line.split(": waiting")[0] for line in waits})
    assert re.search(
        r"waiting for SQS to free the queue name, reusable 60 s after its queue was deleted; "
        r"until about \d\d:\d\d:\d\d at the latest",
        waits[0],
    )
