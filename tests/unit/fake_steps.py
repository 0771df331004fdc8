"""An in-memory cloud and a step kind over it, for engine tests without AWS."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.core.step import Step


class FakeCloud:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_on: set[str] = set()
        self.lock = threading.Lock()

    def log(self, verb: str, name: str) -> None:
        with self.lock:
            self.calls.append((verb, name))

    def mutations(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "read"]


class FakeStep(Step):
    kind = "thing"

    def __init__(self, cloud: FakeCloud, on_apply: Any = None):
        self.cloud = cloud
        self.on_apply = on_apply

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        self.cloud.log("read", res.name)
        item = self.cloud.items.get(res.name)
        if item is None:
            return None
        return Observed(
            outputs={"id": res.name, "arn": f"arn:{res.name}"},
            live={"size": item["size"], "peer": item.get("peer")},
            state="ok",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"size": spec["size"], "peer": spec.get("peer")}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        self.cloud.log(change.action.value, res.name)
        if self.on_apply:
            self.on_apply(res, ctx)
        if res.name in self.cloud.fail_on:
            raise RuntimeError(f"boom creating {res.name}")
        self.cloud.items[res.name] = {"size": spec["size"], "peer": spec.get("peer")}
        return {"id": res.name, "arn": f"arn:{res.name}"}

    def delete(self, record: Record, ctx: StepContext) -> None:
        self.cloud.log("delete", record.name)
        self.cloud.items.pop(record.name, None)


def thing(name: str, size: int = 1, peer: Any = None, after: tuple[str, ...] = ()) -> Resource:
    spec: dict[str, Any] = {"size": size}
    if peer is not None:
        spec["peer"] = peer
    return Resource(kind="thing", logical=name, region="r1", name=name, spec=spec, after=after)
