"""status --rebuild: a new manifest made from the live resources, found by name and tags."""

from __future__ import annotations

from pathlib import Path

from taskmgmt_deploy.core.interfaces import Reporter
from taskmgmt_deploy.core.manifest import Manifest, manifest_path, utc_now
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import Settings
from taskmgmt_deploy.usecases import factory
from taskmgmt_deploy.usecases.factory import Runtime, aws_clients, caller_account, make_engine, take_lock


def rebuild_manifest(settings: Settings, reporter: Reporter, runtime: Runtime | None = None) -> tuple[int, Path | None]:
    """Replace the manifest with one made from the live resources; keep the old file aside."""
    runtime = runtime or factory.RUNTIME
    path = manifest_path(settings.state_dir, settings.stack.env)
    with take_lock(settings, "status --rebuild", reporter.phase):
        aws = aws_clients(settings, runtime)
        account = caller_account(aws)
        manifest = Manifest(path=path, env=settings.stack.env, account_id=account, config=settings.stack)
        engine = make_engine(settings, aws, manifest, reporter, runtime)
        moved = None
        if path.exists():
            moved = path.with_name(f"{path.name}.replaced-{utc_now().replace(':', '')}")
            path.rename(moved)
        return engine.rebuild(blueprint.build(settings.stack)), moved
