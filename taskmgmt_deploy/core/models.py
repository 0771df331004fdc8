"""Plain data shared by the blueprint, the engine, the steps and the manifest. Stdlib only."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ref:
    """A value another resource produces: `field` of the outputs recorded for `key`."""

    key: str
    field: str


@dataclass(frozen=True)
class Template:
    """A string built from other resources' outputs: Template("x-{0}", (Ref(...),))."""

    text: str
    refs: tuple[Ref, ...]


class _Unknown:
    """A Ref whose resource has not been created yet (only seen while planning)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"


UNKNOWN = _Unknown()


def refs_in(value: Any) -> list[Ref]:
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, Template):
        return list(value.refs)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in refs_in(v)]
    return []


def resolve_refs(value: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace every Ref with the recorded output, or UNKNOWN when it does not exist yet."""
    if isinstance(value, Ref):
        return outputs.get(value.key, {}).get(value.field, UNKNOWN)
    if isinstance(value, Template):
        parts = [resolve_refs(ref, outputs) for ref in value.refs]
        return UNKNOWN if any(p is UNKNOWN for p in parts) else value.text.format(*parts)
    if isinstance(value, Mapping):
        return {k: resolve_refs(v, outputs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_refs(v, outputs) for v in value)
    return value


def contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


@dataclass(frozen=True)
class Resource:
    """One desired resource. Dependencies are the Refs in `spec` plus `after`."""

    kind: str
    logical: str
    region: str | None
    name: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.logical, self.region)

    @property
    def depends_on(self) -> tuple[str, ...]:
        keys = [r.key for r in refs_in(self.spec)] + list(self.after)
        return tuple(dict.fromkeys(k for k in keys if k != self.key))


def resource_key(kind: str, logical: str, region: str | None) -> str:
    return f"{kind}:{logical}@{region or 'global'}"


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    NOOP = "unchanged"
    SKIP = "skip"
    DELETE = "delete"  # recorded, but no longer in the configuration


@dataclass(frozen=True)
class Change:
    action: Action
    reasons: tuple[str, ...] = ()
    diff: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def mutates(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.DELETE)


@dataclass(frozen=True)
class Observed:
    """What a read found: outputs to record, live settings to compare, a live state."""

    outputs: Mapping[str, Any]
    live: Mapping[str, Any] = field(default_factory=dict)
    state: str = ""


@dataclass(frozen=True)
class Record:
    """One manifest entry."""

    key: str
    kind: str
    region: str | None
    name: str
    position: int  # in the deploy order (1 = first); the manifest file calls it "step"
    state: str  # "creating" | "updating" | "ready" | "deleting"
    outputs: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    token: str | None = None  # idempotency token of an in-flight create

    @property
    def id(self) -> Any:
        return self.outputs.get("id")

    @property
    def arn(self) -> Any:
        return self.outputs.get("arn")


def record_of(res: Resource, position: int, state: str, outputs: Mapping[str, Any], token: str | None = None) -> Record:
    return Record(
        key=res.key,
        kind=res.kind,
        region=res.region,
        name=res.name,
        position=position,
        state=state,
        outputs=dict(outputs),
        depends_on=res.depends_on,
        token=token,
    )


class Health(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    DRIFTED = "drifted"
    UNHEALTHY = "unhealthy"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Status:
    key: str
    kind: str
    region: str | None
    id: str
    state: str
    health: Health
    problems: tuple[str, ...] = ()
