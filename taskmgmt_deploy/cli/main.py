"""The entry point: run the command, turn every failure into one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import typer

from taskmgmt_deploy.cli import (  # importing registers the commands; common.py orders them for --help
    local,  # noqa: F401
    psql,  # noqa: F401
    stack,  # noqa: F401
    state,  # noqa: F401
)

# isort: split
from taskmgmt_deploy.cli import ci  # noqa: F401 - policy and preflight: after the stack's commands
from taskmgmt_deploy.cli.common import app, console
from taskmgmt_deploy.errors import TaskmgmtError, one_line


def main(argv: list[str] | None = None) -> None:
    command = _command()
    args = sys.argv[1:] if argv is None else argv
    try:
        code = command.main(args=args or ["--help"], prog_name="taskmgmt", standalone_mode=False)
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


@functools.cache
def _command() -> Any:
    """The click command tree, built once per process: typer builds it by reading every
    command's signature, a tenth of a short command's time (serve and the tests run many)."""
    command = typer.main.get_command(app)
    _hide_flag_types(command)
    return command


def _hide_flag_types(command: Any, parent: typer.Context | None = None) -> None:
    """A switch takes no value, so --help shows no type for it (typer would show `<bool>`)."""
    ctx = typer.Context(command, parent=parent, info_name=command.name, **command.context_settings)
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _hide_flag_types(sub, ctx)
