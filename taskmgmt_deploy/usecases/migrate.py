"""migrate: apply sql/ now, to TASKMGMT_DATABASE_URL or else to the deployed primary cluster."""

from __future__ import annotations

from collections.abc import Callable

from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import Settings
from taskmgmt_deploy.usecases import factory
from taskmgmt_deploy.usecases.factory import (
    Runtime,
    aws_clients,
    caller_account,
    recorded_config,
    require_manifest,
    schema_target,
    take_lock,
)


def run_migrations(settings: Settings, progress: Callable[[str], None], runtime: Runtime | None = None) -> list[str]:
    """Apply sql/ now: to TASKMGMT_DATABASE_URL, else to the deployed primary cluster."""
    runtime = runtime or factory.RUNTIME
    with take_lock(settings, "migrate", progress):
        target = schema_target(settings, aws=None)
        if target.database_url:
            return target.migrator(None, settings.stack.primary_region, None, runtime.clock, progress).apply()
        if target.skip_reason:
            raise UserError(f"cannot migrate: {target.skip_reason}")
        manifest = require_manifest(settings)
        stack = recorded_config(manifest)
        cluster = manifest.get(blueprint.cluster_key(stack, stack.primary_region))
        role = manifest.get(blueprint.ROLE)
        if cluster is None or role is None or not cluster.outputs.get("endpoint"):
            raise UserError(
                f"environment '{stack.env}' has no deployed primary cluster and role yet: run `taskmgmt deploy` first"
            )
        aws = aws_clients(settings, runtime)
        caller_account(aws)
        target = schema_target(settings, aws)
        return target.migrator(
            cluster.outputs["endpoint"], stack.primary_region, role.outputs.get("arn"), runtime.clock, progress
        ).apply()
