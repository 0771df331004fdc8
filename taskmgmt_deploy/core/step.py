"""The contract every resource kind implements, and the default (pure) planner."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import (
    UNKNOWN,
    Action,
    Change,
    Observed,
    Record,
    Resource,
    contains_unknown,
)
from taskmgmt_deploy.errors import TaskmgmtError


class Step(ABC):
    kind: ClassVar[str]
    # Local steps touch no AWS resource (package build, schema skipped): status never
    # reports them as drift, and destroy has nothing to delete for them.
    local: ClassVar[bool] = False
    # Kinds with nothing of their own to delete (the schema goes with its clusters): destroy
    # deletes them only when the manifest records them, never because a read found them.
    goes_with_others: ClassVar[bool] = False

    # Steps that can describe all of a region's resources of their kind in one call say so.
    reads_in_batches: ClassVar[bool] = False

    @abstractmethod
    def read(self, res: Resource, record: Record | None) -> Observed | None:
        """Describe only. None when the resource does not exist."""

    def read_many(self, items: list[tuple[Resource, Record | None]]) -> list[Observed | None]:
        return [self.read(res, record) for res, record in items]

    def read_phase(self) -> AbstractContextManager[None]:
        """Open while the engine reads everything, before any change: reads that several
        resources share may be made once in it."""
        return nullcontext()

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The live settings we want, in the shape `read` reports them. Pure."""
        return {}

    def plan(self, res: Resource, spec: Mapping[str, Any], observed: Observed | None) -> Change:
        if observed is None:
            return Change(Action.CREATE, ("does not exist",))
        return diff_change(self.desired(res, spec), observed.live)

    @abstractmethod
    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        """Make it so, idempotently; wait until usable; return the outputs to record."""

    @abstractmethod
    def delete(self, record: Record, ctx: StepContext) -> None:
        """Remove it; not-found is success; wait until it is gone."""

    def guard_delete(self, record: Record, observed: Observed | None) -> str | None:
        """Why destroy must not delete this without --force, or None."""
        return None

    def health(self, observed: Observed) -> str | None:
        """A problem with the live state that is not a config drift, or None."""
        return None


def diff_change(desired: Mapping[str, Any], live: Mapping[str, Any]) -> Change:
    diff: dict[str, tuple[Any, Any]] = {}
    reasons: list[str] = []
    for field_name, want in desired.items():
        if field_name not in live:
            continue  # the API did not report it (emulators drop some fields): nothing to compare
        have = live[field_name]
        if contains_unknown(want):
            diff[field_name] = (have, want)
            reasons.append(f"{field_name}: {UNKNOWN!r}")
        elif canonical(have) != canonical(want):
            diff[field_name] = (have, want)
            reasons.append(f"{field_name}: {short(have)} -> {short(want)}")
    if not diff:
        return Change(Action.NOOP)
    return Change(Action.UPDATE, tuple(reasons), diff)


def canonical(value: Any) -> str:
    """Order-insensitive for dict keys, so equal policies compare equal."""
    return json.dumps(value, sort_keys=True, default=str)


def short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_for(steps: Mapping[str, Step], kind: str) -> Step:
    try:
        return steps[kind]
    except KeyError:
        raise TaskmgmtError(f"no step handles resource kind {kind!r}") from None
