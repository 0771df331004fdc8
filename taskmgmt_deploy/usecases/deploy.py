"""Deploy: record the configuration being deployed, walk the blueprint, save the manifest."""

from __future__ import annotations

from taskmgmt_deploy.core.engine import Confirm
from taskmgmt_deploy.core.models import Change, Resource
from taskmgmt_deploy.usecases.factory import Stack


def deploy(stack: Stack, confirm: Confirm | None = None) -> list[tuple[Resource, Change]]:
    """Bring the live stack to the configuration given now; the manifest records it with the
    first change, so that status, destroy and the other commands read what was deployed."""
    stack.manifest.config = stack.settings.stack
    changes = stack.engine.deploy(stack.resources, confirm=confirm)
    stack.manifest.save()
    return changes
