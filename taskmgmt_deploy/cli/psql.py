"""psql: a database shell on the deployed stack, with a fresh IAM token."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from typing import Annotated

import typer

from taskmgmt_deploy.cli.common import TRY_PANEL, app, console, settings_from, with_settings
from taskmgmt_deploy.errors import TaskmgmtError

INSTALL_HINT = (
    "psql is not installed: install the PostgreSQL client (apt install postgresql-client, "
    "brew install libpq), or pass --print-env to use another client"
)


@app.command(rich_help_panel=TRY_PANEL)
@with_settings
def psql(
    region: Annotated[
        str | None, typer.Option("--region", help="Which region's cluster. \\[default: the primary]")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Connect as admin, not as the function's role.")] = False,
    command: Annotated[str | None, typer.Option("--command", "-c", help="Run this SQL and exit.")] = None,
    print_env: Annotated[
        bool, typer.Option("--print-env", help="Print the PG* variables (for another client) instead.")
    ] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Open psql on the region's DSQL cluster with a fresh IAM token and TLS.

    As the function's database role (its IAM role is assumed), or admin with --admin. In the
    sandbox, or with TASKMGMT_DATABASE_URL, it opens that database.
    Example: taskmgmt psql -c "SELECT version();"  or  eval "$(taskmgmt psql --print-env --admin)"
    """
    from taskmgmt_deploy.usecases.factory import open_stack, require_manifest
    from taskmgmt_deploy.usecases.psql import dsql_environment, url_environment

    settings = settings_from(flags)
    if settings.database_url:
        require_manifest(settings)
        pg = url_environment(settings.database_url)
    else:
        with open_stack(settings, console, command="psql", lock=False, existing=True) as stack:
            pg = dsql_environment(stack.aws, stack.manifest, region, admin)
    pg["PGAPPNAME"] = "taskmgmt-psql"
    if print_env:
        for name, value in pg.items():
            typer.echo(f"export {name}={shlex.quote(value)}")
        return
    program = shutil.which("psql")
    if program is None:
        raise TaskmgmtError(INSTALL_HINT)
    args = [program, *(["--command", command] if command else [])]
    done = subprocess.run(args, env={**os.environ, **pg}, check=False)
    if done.returncode:
        raise typer.Exit(done.returncode)
