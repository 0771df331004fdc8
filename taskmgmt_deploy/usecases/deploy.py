"""Deploy: check what would fail late, record the configuration being deployed, walk the
blueprint, save the manifest."""

from __future__ import annotations

from collections.abc import Callable

from taskmgmt_deploy.core.engine import Confirm
from taskmgmt_deploy.core.models import Change, Resource
from taskmgmt_deploy.errors import TaskmgmtError
from taskmgmt_deploy.stack.config import Settings
from taskmgmt_deploy.usecases.factory import Stack
from taskmgmt_deploy.usecases.preflight import Check, preflight


class PreflightFailed(TaskmgmtError):
    """A preflight check failed: nothing was created."""


def preflight_applies(settings: Settings) -> bool:
    """On AWS: an emulator (the sandbox's or one at --endpoint-url) may not model what it reads."""
    return not settings.sandbox and settings.endpoint_url is None


def deploy(
    stack: Stack, confirm: Confirm | None = None, checks: Callable[[list[Check]], None] | None = None
) -> list[tuple[Resource, Change]]:
    """Bring the live stack to the configuration given now; the manifest records it with the
    first change, so that status, destroy and the other commands read what was deployed.
    With `checks`, the preflight runs first and hands them its results; one failure stops
    the deploy before anything is created."""
    if checks is not None:
        results = preflight(stack.settings.stack, stack.aws)
        checks(results)
        failed = [c for c in results if not c.ok]
        if failed:
            raise PreflightFailed(
                f"preflight failed ({', '.join(c.name for c in failed)}): nothing was created; "
                "fix it, or pass --skip-preflight to deploy anyway"
            )
    stack.manifest.config = stack.settings.stack
    changes = stack.engine.deploy(stack.resources, confirm=confirm)
    stack.manifest.save()
    return changes
