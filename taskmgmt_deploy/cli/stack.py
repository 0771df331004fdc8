"""Commands on a deployed stack: deploy, status, destroy, outputs, migrate, unlock."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from taskmgmt_deploy.cli.common import (
    REPAIR_PANEL,
    STACK_PANEL,
    app,
    ask,
    confirm_changes,
    console,
    elapsed_since,
    errors_exit_2,
    interruptible,
    settings_from,
    summary,
    with_settings,
)
from taskmgmt_deploy.cli.documents import deploy_document, destroy_document, done_summary, plan_document
from taskmgmt_deploy.cli.progress import RunDisplay
from taskmgmt_deploy.core.lock import UNREADABLE
from taskmgmt_deploy.core.models import Health
from taskmgmt_deploy.errors import TaskmgmtError, UserError, one_line
from taskmgmt_deploy.stack.config import Settings


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def deploy(
    plan: Annotated[bool, typer.Option("--plan", help="Only show what would change; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking for confirmation.")] = False,
    skip_preflight: Annotated[
        bool, typer.Option("--skip-preflight", help="Deploy without running `taskmgmt preflight` first.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan, or the result, as one JSON document on stdout.")
    ] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="With --plan: exit 0 when nothing would change, 1 when changes are pending, 2 on error.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show unchanged resources in the plan too.")] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="Plain lines, one per finished step, even on a terminal.")
    ] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Create or update the whole stack in both regions, then print its outputs.

    On AWS it runs `taskmgmt preflight` first and stops, creating nothing, if a check fails.
    Idempotent: an up-to-date stack makes no change. An interrupted deploy resumes where it
    stopped. Without --yes it shows the plan and asks. Example: taskmgmt deploy --env dev --yes
    """
    from taskmgmt_deploy.cli.ci import show_checks
    from taskmgmt_deploy.usecases.deploy import deploy as deploy_stack
    from taskmgmt_deploy.usecases.deploy import preflight_applies
    from taskmgmt_deploy.usecases.factory import open_stack
    from taskmgmt_deploy.usecases.outputs import stack_outputs

    if detailed_exitcode and not plan:
        raise UserError("--detailed-exitcode needs --plan: it reports whether changes are pending")
    settings = settings_from(flags, start_sandbox=not plan)
    if plan:
        _plan(settings, as_json=as_json, detailed_exitcode=detailed_exitcode, verbose=verbose)
        return
    started = elapsed_since()
    with (
        interruptible() as cancel,
        RunDisplay(console, live=False if no_progress else None) as display,
        open_stack(settings, display, command="deploy", lock=True, existing=False, cancel=cancel) as stack,
    ):
        # Before a deploy the checks are progress: stderr, so that stdout holds only the result.
        checks = partial(show_checks, stream="err") if preflight_applies(settings) and not skip_preflight else None
        confirm = None if yes else partial(confirm_changes, verbose=verbose)
        changes = deploy_stack(stack, confirm=confirm, checks=checks)
        outputs = stack_outputs(stack.manifest, settings.endpoint_url)
    elapsed = started()
    console.success(f"deployed {settings.stack.stack_name}: {done_summary(changes, elapsed)}")
    if as_json:
        console.json(deploy_document(settings.stack, changes, display.seconds, elapsed, outputs))
    else:
        console.key_values(outputs)
    if settings.sandbox:  # the sandbox proves itself after every deploy
        from taskmgmt_deploy.cli.local import run_smoke

        if not run_smoke(settings):
            raise typer.Exit(1)


def _plan(settings: Settings, *, as_json: bool, detailed_exitcode: bool, verbose: bool) -> None:
    from taskmgmt_deploy.usecases.factory import open_stack

    with (
        errors_exit_2(detailed_exitcode),
        open_stack(settings, console, command="plan", lock=False, existing=False) as stack,
    ):
        changes = stack.engine.plan(stack.resources)
    if as_json:
        console.json(plan_document(settings.stack, changes))
    else:
        console.plan(changes, verbose=verbose)
        console.info(f"plan for {settings.stack.stack_name}: {summary(changes)}; nothing was changed")
    if detailed_exitcode and any(c.mutates for _, c in changes):
        raise typer.Exit(1)


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="Rebuild a lost or damaged manifest from the live resources found by name and tags."
        ),
    ] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Check every deployed resource against AWS: present, as configured, healthy.

    Exit 0 when all is well, 1 when something is missing or drifted, 2 on error.
    Example: taskmgmt status --json
    """
    from taskmgmt_deploy.usecases.factory import open_stack

    settings = settings_from(flags)
    if rebuild:
        _rebuild(settings)
    with errors_exit_2(True), open_stack(settings, console, command="status", lock=False, existing=True) as stack:
        statuses = stack.engine.status(stack.resources)
    bad = sum(1 for s in statuses if s.health not in (Health.OK, Health.SKIPPED))
    healthy = bad == 0
    if as_json:
        console.json(
            {
                "env": settings.stack.env,
                "healthy": healthy,
                "resources": [
                    {
                        "key": s.key,
                        "kind": s.kind,
                        "region": s.region,
                        "id": s.id,
                        "state": s.state,
                        "health": s.health.value,
                        "problems": list(s.problems),
                    }
                    for s in statuses
                ],
            }
        )
    else:
        console.status_table(statuses, settings.stack.stack_name)
        console.info(
            f"{settings.stack.stack_name}: all {len(statuses)} resources as deployed"
            if healthy
            else f"{settings.stack.stack_name}: {bad} of {len(statuses)} resources missing or drifted"
        )
    if not healthy:
        raise typer.Exit(1)


def _rebuild(settings: Settings) -> None:
    from taskmgmt_deploy.usecases.rebuild import rebuild_manifest

    found, moved = rebuild_manifest(settings, console)
    if moved:
        console.warn(f"the unreadable manifest was kept as {moved}")
    console.info(f"rebuilt the manifest from {found} live resources")


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Turn DSQL deletion protection off, then delete.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="Plain lines, one per finished step, even on a terminal.")
    ] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Delete every resource of the environment, in reverse order, then sweep by tags.

    Without a manifest it still finds the environment's resources by name and tags, and
    exits 0 with "nothing to destroy" when none exists.

    Refuses while DSQL deletion protection is on, unless --force. Example: taskmgmt destroy --yes
    """
    from taskmgmt_deploy.usecases.factory import open_stack

    settings = settings_from(flags)
    if not yes:
        question = (
            f"Delete every resource of {settings.stack.stack_name}, databases included, "
            f"in {settings.stack.primary_region} and {settings.stack.secondary_region}?"
        )
        if not ask(question, "destroy needs confirmation and there is no terminal to ask: pass --yes"):
            raise UserError("destroy cancelled; nothing was changed")
    started = elapsed_since()
    with (
        interruptible() as cancel,
        RunDisplay(console, live=False if no_progress else None) as display,
        open_stack(
            settings, display, command="destroy", lock=True, existing=True, cancel=cancel, unrecorded_ok=True
        ) as stack,
    ):
        report = stack.engine.destroy(stack.resources, force=force)
    elapsed = started()
    if as_json:
        console.json(destroy_document(settings.stack, report.deleted, report.left, display.seconds, elapsed))
    if not report.deleted and not report.left:
        from taskmgmt_deploy.usecases.factory import sandbox_hint

        console.success(
            f"nothing to destroy: no resource of {settings.stack.stack_name} exists{sandbox_hint(settings)}"
        )
        return
    for what, why in report.left:
        console.warn(f"left behind: {what}: {why}")
    if report.left:
        console.error(
            f"{settings.stack.stack_name}: deleted {len(report.deleted)} in {elapsed:.1f} s, but "
            f"{len(report.left)} resources remain; the manifest was kept"
        )
        raise typer.Exit(1)
    console.success(
        f"destroyed {settings.stack.stack_name}: deleted {len(report.deleted)} in {elapsed:.1f} s, nothing left"
    )


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def outputs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Print cluster ARNs and endpoints, buses, functions, queues and the dashboard, per region."""
    from taskmgmt_deploy.usecases.factory import require_manifest
    from taskmgmt_deploy.usecases.outputs import stack_outputs

    settings = settings_from(flags)
    data = stack_outputs(require_manifest(settings), settings.endpoint_url)
    console.json(data) if as_json else console.key_values(data)


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def migrate(*, flags: dict[str, str | None]) -> None:
    """Apply the schema in sql/ and the function's role and grants. Idempotent.

    With TASKMGMT_DATABASE_URL it applies to that PostgreSQL; otherwise to the deployed
    primary DSQL cluster, as admin with an IAM token. Deploy runs this step too.
    Example: TASKMGMT_DATABASE_URL=postgresql://localhost/tasks taskmgmt migrate
    """
    import psycopg

    from taskmgmt_deploy.usecases.migrate import run_migrations

    try:
        done = run_migrations(settings_from(flags), console.info)
    except psycopg.Error as exc:
        raise TaskmgmtError(f"cannot migrate: {one_line(exc)}") from None
    for action in done:
        console.info(f"  {action}")
    console.success("the database schema is up to date" + ("" if done else "; nothing to do"))


@app.command(rich_help_panel=STACK_PANEL)
@with_settings
def logs(
    region: Annotated[str | None, typer.Option("--region", help="Only this region. \\[default: both]")] = None,
    since: Annotated[
        str, typer.Option("--since", help="From this long ago (30s, 10m, 1h, 2d) or this time (ISO 8601, UTC).")
    ] = "10m",
    filter_text: Annotated[str | None, typer.Option("--filter", help="Only lines that contain this text.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, for scripts.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Print the function's log lines of both regions, merged by time.

    JSON lines are shown as time, region, level, request id, message and fields, with an
    exception's traceback indented. Example: taskmgmt logs --since 1h --filter "not served" --follow
    """
    from datetime import UTC, datetime

    from taskmgmt_deploy.usecases.factory import RUNTIME, open_stack
    from taskmgmt_deploy.usecases.logs import LogEvent, LogReader, function_log_groups, parse_since

    start = parse_since(since, datetime.now(UTC))
    settings = settings_from(flags)

    def show(event: LogEvent) -> None:
        if as_json:
            console.json_line(
                {
                    "timestamp": event.timestamp,
                    "region": event.region,
                    "log_group": event.group,
                    "log_stream": event.stream,
                    "event_id": event.event_id,
                    "message": event.message,
                }
            )
        else:
            console.log_line(event.timestamp, event.region, event.message)

    with open_stack(settings, console, command="logs", lock=False, existing=True) as stack:
        reader = LogReader(stack.aws, function_log_groups(stack.manifest, region), filter_text)
        if not follow:
            for event in reader.read(start):
                show(event)
            return
        try:
            reader.follow(start, show, RUNTIME.clock)
        except KeyboardInterrupt:
            return  # Ctrl-C is how a follow ends


@app.command(rich_help_panel=REPAIR_PANEL)
@with_settings
def unlock(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clear it even if its holder still runs.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Clear a lock that cannot be checked from here: one taken on another host or a network filesystem.

    On the machine that ran it, a run that died is never in the way: the next deploy or
    destroy takes over its lock and resumes.
    """
    from taskmgmt_deploy.usecases.factory import env_lock

    settings = settings_from(flags)
    lock = env_lock(settings)
    holder = lock.read()
    alive = lock.holder_alive()
    if holder is None and not alive:
        console.info(f"environment '{settings.stack.env}' is not locked")
        return
    holder = holder or UNREADABLE
    if alive and not force:
        raise UserError(
            f"the lock is held by {holder.describe()}, which is still running; "
            "wait for it, or pass --force if you are sure it is not"
        )
    if not yes:
        question = f"Clear the lock held by {holder.describe()}?"
        if not ask(question, "unlock needs confirmation and there is no terminal to ask: pass --yes"):
            raise UserError("unlock cancelled")
    lock.break_lock()
    console.success(f"cleared the lock of environment '{settings.stack.env}' held by {holder.describe()}")
