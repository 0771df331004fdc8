"""`taskmgmt state`: the manifest and lock in S3, for a team or CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskmgmt_deploy.cli.common import REPAIR_PANEL, app, console, settings_from, with_settings
from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.stack.config import S3Url, Settings, parse_s3_url

state_app = typer.Typer(
    help="Shared state in S3: set up a bucket, move a local state there, look at its history.",
    no_args_is_help=True,
)
app.add_typer(state_app, name="state", rich_help_panel=REPAIR_PANEL)


def _url(raw: str | None, settings: Settings, flag: str) -> S3Url:
    """The s3:// URL given, or else the configured TASKMGMT_STATE."""
    if raw is None:
        if settings.state_url is None:
            raise UserError(f"no S3 state is configured: pass {flag} s3://BUCKET/PREFIX or set TASKMGMT_STATE")
        return settings.state_url
    url = parse_s3_url(raw)
    if url is None:
        raise UserError(f"{flag} {raw!r} is invalid: must be s3://BUCKET/PREFIX with a valid bucket name")
    return url


def _clients(settings: Settings):
    from taskmgmt_deploy.usecases.factory import RUNTIME, aws_clients, caller_account

    aws = aws_clients(settings, RUNTIME)
    caller_account(aws)
    return aws


@state_app.command("init")
@with_settings
def state_init(
    url: Annotated[str, typer.Argument(help="s3://BUCKET/PREFIX", show_default=False)],
    *,
    flags: dict[str, str | None],
) -> None:
    """Create the bucket if needed (in the primary region) with versioning, default encryption
    (the KMS key if configured), public access blocked and TLS required; print the IAM
    statements each team member needs. Idempotent. Then: export TASKMGMT_STATE=s3://BUCKET/PREFIX
    """
    from taskmgmt_deploy.usecases.state import init_bucket, member_statements

    settings = settings_from(flags)
    where = _url(url, settings, "URL")
    aws = _clients(settings)
    for line in init_bucket(settings, where, aws):
        console.info(line)
    console.success(f"the state can live at {where}: set TASKMGMT_STATE={where} (or pass --state {where})")
    console.info("each team member needs these IAM statements (`taskmgmt policy` includes them):")
    console.json({"Version": "2012-10-17", "Statement": member_statements(settings, where, aws)})


@state_app.command("push")
@with_settings
def state_push(
    to: Annotated[str | None, typer.Option("--to", help="s3://BUCKET/PREFIX \\[default: TASKMGMT_STATE]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a state that exists there.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Copy the local manifest of the environment to S3 (its lock taken meanwhile).

    Refuses to replace a state that exists there unless --force; a replaced state stays in the
    bucket's history. Example: taskmgmt state push --env prod --to s3://acme-taskmgmt/state
    """
    from taskmgmt_deploy.usecases.state import push

    settings = settings_from(flags)
    aws = _clients(settings)
    url = _url(to, settings, "--to")
    where = push(settings, url, aws, force)
    console.success(f"pushed the state of environment '{settings.stack.env}' to {where}")
    console.info(f"from now on, use it with TASKMGMT_STATE={url}")


@state_app.command("pull")
@with_settings
def state_pull(
    to: Annotated[Path | None, typer.Option("--to", help="The file to write. \\[default: ./ENV.pulled.json]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Write a local copy of the S3 state for inspection (the S3 state stays the truth)."""
    from taskmgmt_deploy.usecases.state import pull

    settings = settings_from(flags)
    aws = _clients(settings)
    text, manifest = pull(settings, _url(None, settings, "--state"), aws)
    target = to or Path(f"{settings.stack.env}.pulled.json")
    if target.exists() and not force:
        raise UserError(f"{target} exists; pass --force to overwrite it, or --to another file")
    target.write_text(text, encoding="utf-8")
    console.success(f"wrote {manifest.where} ({len(manifest.records)} resources) to {target}")


@state_app.command("history")
@with_settings
def state_history(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """List every version of the environment's S3 state, newest first (S3 versioning keeps them)."""
    from taskmgmt_deploy.usecases.state import history

    settings = settings_from(flags)
    aws = _clients(settings)
    versions = history(settings, _url(None, settings, "--state"), aws)
    if as_json:
        console.json([vars(v) for v in versions])
        return
    for v in versions:
        size = "deleted" if v.size is None else f"{v.size} bytes"
        console.out.print(f"{v.modified}  {v.version_id}  {size}{'  (current)' if v.latest else ''}")
    if not versions:
        console.info(f"no version of environment '{settings.stack.env}' is stored")
