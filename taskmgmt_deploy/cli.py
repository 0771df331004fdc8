"""The `taskmgmt` command line. It parses, calls the core, and renders through Console.

Exit codes: 0 done, 1 failed (or drift, for status), 2 the user asked for something
invalid and nothing was changed, 130 interrupted.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer

from taskmgmt_deploy.config import Settings, load_settings
from taskmgmt_deploy.console import Console
from taskmgmt_deploy.errors import TaskmgmtError, UserError, one_line
from taskmgmt_deploy.models import Action, Change, Health, Resource

try:  # recent typer vendors click and raises its own copies of click's exceptions
    from typer._click.exceptions import ClickException as _VendoredClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _VendoredClickException = click.ClickException
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_USAGE = (click.ClickException, _VendoredClickException)

app = typer.Typer(
    name="taskmgmt",
    help="Provision, check and remove the two-region Aurora DSQL task-management backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()

# parameter name -> (configuration key, option declarations, help)
_OPTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "env": ("ENVIRONMENT", ("--env",), "Environment name: 1-16 lowercase letters, digits, dashes. \\[default: dev]"),
    "primary_region": ("PRIMARY_REGION", ("--primary-region",), "Region of the first DSQL cluster. \\[default: us-east-1]"),
    "secondary_region": ("SECONDARY_REGION", ("--secondary-region",),
                         "Region of the peer cluster, in the same DSQL region set. \\[default: us-west-2]"),
    "witness_region": ("WITNESS_REGION", ("--witness-region",),
                       "Witness region of the pair. \\[default: the set's remaining region]"),
    "prefix": ("CLUSTER_NAME_PREFIX", ("--prefix",), "Prefix of every resource name. \\[default: task-mgmt]"),
    "log_retention_days": ("LOG_RETENTION_DAYS", ("--log-retention-days",), "Log retention in days. \\[default: 7]"),
    "lambda_memory": ("LAMBDA_MEMORY_SIZE", ("--lambda-memory",), "Function memory in MB, 128-10240. \\[default: 512]"),
    "lambda_timeout": ("LAMBDA_TIMEOUT", ("--lambda-timeout",), "Function timeout in seconds, 1-900. \\[default: 60]"),
    "profile": ("AWS_PROFILE", ("--profile",), "AWS profile, as with the AWS CLI."),
    "endpoint_url": ("AWS_ENDPOINT_URL", ("--endpoint-url",), "Send every AWS call here (an emulator)."),
    "state_dir": ("TASKMGMT_STATE_DIR", ("--state-dir",), "Where manifests and locks live. \\[default: ./.taskmgmt]"),
    "max_workers": ("TASKMGMT_MAX_WORKERS", ("--max-workers",), "Concurrent AWS calls, 1-64. \\[default: 8]"),
}


def _common_parameters() -> list[inspect.Parameter]:
    params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[str], typer.Option(*decls, help=text, show_default=False, metavar="TEXT",
                                        rich_help_panel="Configuration (flag > environment > .env > default)")])
        for name, (_, decls, text) in _OPTIONS.items()
    ]
    params.append(inspect.Parameter("deletion_protection", inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=Annotated[Optional[bool], typer.Option(
                                        "--deletion-protection/--no-deletion-protection", show_default=False,
                                        help="DSQL deletion protection. \\[default: on for prod and staging]",
                                        rich_help_panel="Configuration (flag > environment > .env > default)")]))
    return params


def with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the configuration options to a command and hand it a `flags` mapping instead."""
    common = _common_parameters()
    signature = inspect.signature(fn, eval_str=True)  # a preset __signature__ is not evaluated later
    own = [p for p in signature.parameters.values() if p.name != "flags"]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags: dict[str, str | None] = {key: kwargs.pop(name) for name, (key, _, _) in _OPTIONS.items()}
        protection = kwargs.pop("deletion_protection")
        flags["DELETION_PROTECTION"] = None if protection is None else str(protection).lower()
        return fn(flags=flags, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + common)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{p.name: p.annotation for p in common}}
    return wrapper


def settings_from(flags: dict[str, str | None]) -> Settings:
    return load_settings(flags, os.environ, Path.cwd())


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    """First Ctrl-C: finish the calls in flight, save the manifest, exit 130. Second: stop now."""
    cancel = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        console.warn("interrupted: finishing the calls in flight and saving the manifest "
                     "(press Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _summary(changes: list[tuple[Resource, Change]]) -> str:
    counts = {action: sum(1 for _, c in changes if c.action is action) for action in Action}
    return ", ".join(f"{counts[a]} to {a.value}" if a in (Action.CREATE, Action.UPDATE) else f"{counts[a]} {a.value}"
                     for a in (Action.CREATE, Action.UPDATE, Action.NOOP, Action.SKIP) if counts[a])


def _confirm_changes(preview: list[tuple[Resource, Change]]) -> bool:
    changes = [(r, c) for r, c in preview if c.mutates]
    console.plan_table(changes, stream="err")
    if not sys.stdin.isatty():
        raise UserError(f"deploy would change {len(changes)} resources and there is no terminal to ask: "
                        "pass --yes to apply, or --plan to only look")
    return console.confirm(f"Apply these {len(changes)} changes?")


# -- commands ------------------------------------------------------------------------------

@app.command()
@with_settings
def deploy(
    plan: Annotated[bool, typer.Option("--plan", help="Only show what would change; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking for confirmation.")] = False,
    *, flags: dict[str, str | None],
) -> None:
    """Create or update the whole stack in both regions, then print its outputs.

    Idempotent: an up-to-date stack makes no change. An interrupted deploy resumes where it
    stopped. Example: taskmgmt deploy --env dev --yes
    """
    from taskmgmt_deploy.factory import open_stack
    from taskmgmt_deploy.outputs import stack_outputs

    settings = settings_from(flags)
    if plan:
        with open_stack(settings, console, command="plan", lock=False, existing=False) as stack:
            changes = stack.engine.plan(stack.resources)
        console.plan_table(changes)
        console.info(f"plan for {settings.stack.stack}: {_summary(changes)}")
        return
    with interruptible() as cancel, open_stack(settings, console, command="deploy", lock=True,
                                               existing=False, cancel=cancel) as stack:
        stack.manifest.config = settings.stack.to_dict()  # written with the first recorded change
        changes = stack.engine.deploy(stack.resources, confirm=None if yes else _confirm_changes)
        stack.manifest.save()
        console.success(f"deployed {settings.stack.stack}: {_summary(changes)}")
        console.key_values(stack_outputs(stack.manifest))


@app.command()
@with_settings
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild a lost or damaged manifest from the "
                                                            "live resources found by name and tags.")] = False,
    *, flags: dict[str, str | None],
) -> None:
    """Check every deployed resource against AWS: present, as configured, healthy.

    Exit 0 when all is well, 1 when something is missing or drifted, 2 on error.
    Example: taskmgmt status --json
    """
    from taskmgmt_deploy.factory import open_stack

    settings = settings_from(flags)
    if rebuild:
        _rebuild(settings)
    with open_stack(settings, console, command="status", lock=False, existing=True) as stack:
        statuses = stack.engine.status(stack.resources)
    healthy = all(s.health in (Health.OK, Health.SKIPPED) for s in statuses)
    if as_json:
        console.json({"env": settings.stack.env, "healthy": healthy, "resources": [
            {"key": s.key, "kind": s.kind, "region": s.region, "id": s.id, "state": s.state,
             "health": s.health.value, "problems": list(s.problems)} for s in statuses]})
    else:
        console.status_table(statuses)
        bad = sum(1 for s in statuses if s.health not in (Health.OK, Health.SKIPPED))
        console.info(f"{settings.stack.stack}: all {len(statuses)} resources as deployed" if healthy
                     else f"{settings.stack.stack}: {bad} of {len(statuses)} resources missing or drifted")
    if not healthy:
        raise typer.Exit(1)


def _rebuild(settings: Settings) -> None:
    from taskmgmt_deploy.factory import rebuild_manifest

    found, moved = rebuild_manifest(settings, console)
    if moved:
        console.warn(f"the unreadable manifest was kept as {moved}")
    console.info(f"rebuilt the manifest from {found} live resources")


@app.command()
@with_settings
def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Turn DSQL deletion protection off, then delete.")] = False,
    *, flags: dict[str, str | None],
) -> None:
    """Delete every resource of the environment, in reverse order, then sweep by tags.

    Refuses while DSQL deletion protection is on, unless --force. Example: taskmgmt destroy --yes
    """
    from taskmgmt_deploy.factory import open_stack

    settings = settings_from(flags)
    if not yes:
        question = (f"Delete every resource of {settings.stack.stack}, databases included, "
                    f"in {settings.stack.primary_region} and {settings.stack.secondary_region}?")
        if not sys.stdin.isatty():
            raise UserError("destroy needs confirmation and there is no terminal to ask: pass --yes")
        if not console.confirm(question):
            raise UserError("destroy cancelled; nothing was changed")
    with interruptible() as cancel, open_stack(settings, console, command="destroy", lock=True,
                                               existing=True, cancel=cancel) as stack:
        report = stack.engine.destroy(stack.resources, force=force)
    for what, why in report.left:
        console.warn(f"left behind: {what}: {why}")
    if report.left:
        console.error(f"{len(report.left)} resources of {settings.stack.stack} remain; the manifest was kept")
        raise typer.Exit(1)
    console.success(f"destroyed {settings.stack.stack}: {len(report.deleted)} resources deleted, nothing left")


@app.command()
@with_settings
def outputs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *, flags: dict[str, str | None],
) -> None:
    """Print cluster ARNs and endpoints, buses, functions, queues and the dashboard, per region."""
    from taskmgmt_deploy.factory import require_manifest
    from taskmgmt_deploy.outputs import stack_outputs

    data = stack_outputs(require_manifest(settings_from(flags)))
    console.json(data) if as_json else console.key_values(data)


@app.command()
@with_settings
def migrate(*, flags: dict[str, str | None]) -> None:
    """Apply the schema in sql/ and the function's role and grants. Idempotent.

    With TASKMGMT_DATABASE_URL it applies to that PostgreSQL; otherwise to the deployed
    primary DSQL cluster, as admin with an IAM token. Deploy runs this step too.
    Example: TASKMGMT_DATABASE_URL=postgresql://localhost/tasks taskmgmt migrate
    """
    import psycopg

    from taskmgmt_deploy.factory import run_migrations

    try:
        done = run_migrations(settings_from(flags), console.info)
    except psycopg.Error as exc:
        raise TaskmgmtError(f"cannot migrate: {one_line(exc)}") from None
    for action in done:
        console.info(f"  {action}")
    console.success("the database schema is up to date" + ("" if done else "; nothing to do"))


@app.command()
@with_settings
def unlock(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clear it even if its holder still runs.")] = False,
    *, flags: dict[str, str | None],
) -> None:
    """Clear the lock a crashed deploy or destroy left behind."""
    from taskmgmt_deploy.lock import EnvLock, lock_path

    settings = settings_from(flags)
    lock = EnvLock(lock_path(settings.state_dir, settings.stack.env), settings.stack.env)
    holder = lock.read()
    if holder is None:
        console.info(f"environment '{settings.stack.env}' is not locked")
        return
    if not holder.is_dead() and not force:
        raise UserError(f"the lock is held by {holder.describe()}, which may still be running; "
                        "wait for it, or pass --force if you are sure it is not")
    if not yes:
        if not sys.stdin.isatty():
            raise UserError("unlock needs confirmation and there is no terminal to ask: pass --yes")
        if not console.confirm(f"Clear the lock held by {holder.describe()}?"):
            raise UserError("unlock cancelled")
    lock.break_lock()
    console.success(f"cleared the lock of environment '{settings.stack.env}' held by {holder.describe()}")


# -- entry point ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="taskmgmt", standalone_mode=False)
        # Without standalone mode, click returns typer.Exit's code instead of raising it.
        sys.exit(code if isinstance(code, int) else 0)
    except _EXIT as done:
        sys.exit(done.exit_code)
    except _ABORT:
        console.error("aborted")
        sys.exit(130)
    except _USAGE as exc:
        console.error(one_line(exc.format_message()) + " (see --help)")
        sys.exit(exc.exit_code)
    except TaskmgmtError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless asked for the traceback
        if os.environ.get("TASKMGMT_DEBUG"):
            raise
        console.error(f"unexpected {type(exc).__name__}: {one_line(exc)} (set TASKMGMT_DEBUG=1 for a traceback)")
        sys.exit(1)
