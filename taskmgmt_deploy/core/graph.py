"""The dependency graph of resources: their order, and resources rebuilt from manifest records."""

from __future__ import annotations

from dataclasses import replace

from taskmgmt_deploy.core.models import Record, Resource


def topo_order(resources: list[Resource]) -> list[str]:
    """Dependencies first, otherwise in the given order. Raises on unknown deps or cycles."""
    keys = [r.key for r in resources]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate resource keys in blueprint")
    by_key = {r.key: r for r in resources}
    for res in resources:
        missing = [dep for dep in res.depends_on if dep not in by_key]
        if missing:
            raise ValueError(f"{res.key} depends on unknown {', '.join(missing)}")
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(resources):
        batch = [r.key for r in resources if r.key not in placed and all(d in placed for d in r.depends_on)]
        if not batch:
            raise ValueError("dependency cycle among " + ", ".join(k for k in keys if k not in placed))
        order += batch
        placed.update(batch)
    return order


def resource_of(record: Record) -> Resource:
    """A Resource good enough to read and delete what a record describes."""
    logical = record.key.split(":", 1)[1].rsplit("@", 1)[0]
    return Resource(
        kind=record.kind, logical=logical, region=record.region, name=record.name, after=tuple(record.depends_on)
    )


def in_topo_order(items: list[tuple[Resource, Record | None]]) -> list[tuple[Resource, Record | None]]:
    resources = [res for res, _ in items]
    keys = {r.key for r in resources}
    trimmed = [replace(r, spec={}, after=tuple(d for d in r.depends_on if d in keys)) for r in resources]
    position = {key: index for index, key in enumerate(topo_order(trimmed))}
    return sorted(items, key=lambda item: position[item[0].key])
