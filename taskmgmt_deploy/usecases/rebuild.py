"""status --rebuild: a new manifest made from the live resources, found by name and tags."""

from __future__ import annotations

from taskmgmt_deploy.core.interfaces import Reporter
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import Settings
from taskmgmt_deploy.usecases import factory
from taskmgmt_deploy.usecases.factory import (
    Runtime,
    aws_clients,
    caller_account,
    env_state,
    make_engine,
    take_lock,
)


def rebuild_manifest(settings: Settings, reporter: Reporter, runtime: Runtime | None = None) -> tuple[int, str | None]:
    """Replace the manifest with one made from the live resources; keep the old one aside
    (a local file is renamed, an S3 version stays in the bucket's history)."""
    runtime = runtime or factory.RUNTIME
    aws = aws_clients(settings, runtime)
    state = env_state(settings, aws, runtime)
    with take_lock(settings, "status --rebuild", reporter.phase, state):
        account = caller_account(aws)
        manifest = Manifest(store=state.manifest, env=settings.stack.env, account_id=account, config=settings.stack)
        engine = make_engine(settings, aws, manifest, reporter, runtime)
        moved = state.manifest.set_aside()
        found = engine.rebuild(blueprint.build(settings.stack))
        manifest.flush()
        return found, moved
