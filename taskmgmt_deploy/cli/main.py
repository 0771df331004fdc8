"""The entry point: run the command, turn every failure into one line and an exit code."""

from __future__ import annotations

import os
import sys

import typer

from taskmgmt_deploy.cli import (
    local,  # noqa: F401
    stack,  # noqa: F401 - registers the commands, in this order
)

# isort: split
from taskmgmt_deploy.cli import ci  # noqa: F401 - policy and preflight: after the stack's commands
from taskmgmt_deploy.cli.common import app, console
from taskmgmt_deploy.errors import TaskmgmtError, one_line


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="taskmgmt", standalone_mode=False)
        # Without standalone mode, click returns typer.Exit's code instead of raising it.
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        console.error("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        console.error(one_line(exc.format_message()) + " (see --help)")
        sys.exit(exc.exit_code)
    except TaskmgmtError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("TASKMGMT_DEBUG"):
            raise
        console.error(f"unexpected {type(exc).__name__}: {one_line(exc)} (set TASKMGMT_DEBUG=1 for a traceback)")
        sys.exit(1)
