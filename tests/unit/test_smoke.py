"""The smoke test against an EventBridge that loses or delays the first events after a deploy."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from taskmgmt_deploy.usecases.smoke import RESEND_EVENT, Smoke


class FreshBus:
    """Events as a rule just put treats them: the first `lost` match nothing and are dropped;
    the others become tasks, each after its delay (the last delay for any further event)."""

    def __init__(self, clock, lost: int, delays: list[float]):
        self.clock, self.lost, self.delays = clock, lost, delays
        self.sent = 0
        self.coming: list[tuple[float, dict[str, Any]]] = []
        self.tasks: dict[str, dict[str, Any]] = {}

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent += 1
        if self.sent > self.lost:
            delay = self.delays[min(self.sent - self.lost, len(self.delays)) - 1]
            self.coming.append((self.clock.now() + delay, json.loads(Entries[0]["Detail"])["taskData"]))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"event-{self.sent}"}]}

    def arrived(self) -> None:
        for due, task in [c for c in self.coming if c[0] <= self.clock.now()]:
            self.coming.remove((due, task))
            task_id = f"task-{len(self.tasks) + 1}"
            self.tasks[task_id] = {**task, "id": task_id, "version": 1}


class Functions:
    """What the smoke test calls, answering the list and delete requests from the bus's tasks."""

    regions = ("us-east-1", "us-west-2")

    def __init__(self, bus: FreshBus):
        self.bus = bus
        self.manifest = SimpleNamespace(get=lambda key: SimpleNamespace(name="bus"))
        self.aws = SimpleNamespace(get=lambda service, region: bus)

    def request(self, region: str, method: str, path: str, body: Any = None, query: Any = None) -> tuple[int, Any]:
        self.bus.arrived()
        if (method, path) == ("GET", "/tasks"):
            wanted = (query or {}).get("assigned_to")
            return 200, {"tasks": [t for t in self.bus.tasks.values() if t["assigned_to"] == wanted]}
        if method == "DELETE":
            return (204, None) if self.bus.tasks.pop(path.rsplit("/", 1)[-1], None) else (404, {"error": "not found"})
        raise AssertionError(f"unexpected request {method} {path}")


def first_steps(bus: FreshBus, clock) -> list[str]:
    smoke = Smoke(Functions(bus), clock, report=lambda check: None)
    return [smoke._put_event(), smoke._read_primary(), smoke._cleanup()]


def test_a_lost_event_is_sent_again_until_the_task_appears(clock):
    """Row E2 of docs/pessimistic-emulation.md."""
    bus = FreshBus(clock, lost=2, delays=[0.5])
    _, read, cleaned = first_steps(bus, clock)
    assert bus.sent == 3 and "after sending the event 3 times" in read
    assert cleaned == "deleted 1" and bus.tasks == {}


def test_every_task_the_events_made_is_removed(clock):
    bus = FreshBus(clock, lost=0, delays=[RESEND_EVENT + 0.6, 0.5])  # the first was only late
    _, read, cleaned = first_steps(bus, clock)
    assert bus.sent == 2 and "after sending the event 2 times" in read
    assert cleaned == "deleted 2" and bus.tasks == {}


def test_an_event_that_arrives_in_time_is_sent_once(clock):
    bus = FreshBus(clock, lost=0, delays=[RESEND_EVENT - 1])
    _, read, cleaned = first_steps(bus, clock)
    assert bus.sent == 1 and "after sending" not in read and cleaned == "deleted 1"
