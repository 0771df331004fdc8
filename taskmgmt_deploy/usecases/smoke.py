"""The end-to-end check after a deploy: events reach the function, one database serves both
regions, each region's HTTP API answers over HTTP only to a caller with credentials (SigV4, or a
token with API_AUTH=jwt), versions protect updates, history is kept. It cleans up its test task."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.core.models import resource_key
from taskmgmt_deploy.usecases.forwarding import Upstream
from taskmgmt_deploy.usecases.functions import Functions

WAIT_FOR_EVENT = 90.0
# EventBridge may match no event for a short while after a rule is put or enabled, and drops
# what it does not match (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html):
# a fresh deploy's first event can be lost, so it is sent again until the task appears.
RESEND_EVENT = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    expected: str = ""
    observed: str = ""
    seconds: float = 0.0


class _Failed(Exception):
    def __init__(self, expected: str, observed: Any):
        self.expected, self.observed = expected, observed if isinstance(observed, str) else json.dumps(observed)[:300]


@dataclass(frozen=True)
class HttpApis:
    """Each region's HTTP API: `signed` calls it as the operator (SigV4 with API_AUTH=iam),
    `anonymous` without credentials; `token` goes in Authorization with API_AUTH=jwt."""

    signed: Mapping[str, Upstream]
    anonymous: Mapping[str, Upstream]
    token: str | None = None

    def get(self, region: str, path: str, credentials: bool = True) -> tuple[int, Any]:
        upstream = (self.signed if credentials else self.anonymous)[region]
        headers = {"authorization": f"Bearer {self.token}"} if credentials and self.token else {}
        status, _, body = upstream.forward("GET", path, headers, b"")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body.decode(errors="replace")[:200]


class Smoke:
    def __init__(
        self, functions: Functions, clock: Clock, report: Callable[[Check], None], apis: HttpApis | None = None
    ):
        self.functions, self.clock, self.report, self.apis = functions, clock, report, apis
        self.primary, self.secondary = functions.regions
        self.marker = f"smoke-{uuid.uuid4().hex[:12]}"
        self.checks: list[Check] = []
        self.task: dict[str, Any] = {}

    def run(self) -> list[Check]:
        steps = [
            (f"a Task Created event on the {self.primary} bus is accepted", self._put_event),
            (f"the task appears through the function in {self.primary}", self._read_primary),
            (f"the same task is read through the function in {self.secondary}", self._read_secondary),
            *self._http_steps(),
            (f"an update with its version succeeds ({self.secondary})", self._update),
            ("an update with the stale version is refused with 409", self._stale_update),
            (f"completing it succeeds ({self.primary})", self._complete),
            ("its history has one row per changed field", self._history),
        ]
        for name, step in steps:
            if not self._check(name, step):
                break
        if self.task.get("id"):
            self._check("the test task is removed", self._cleanup)
        return self.checks

    def _check(self, name: str, step: Callable[[], str]) -> bool:
        start = self.clock.now()
        try:
            observed = step()
            result = Check(name, True, observed=observed, seconds=self.clock.now() - start)
        except _Failed as exc:
            result = Check(name, False, exc.expected, exc.observed, self.clock.now() - start)
        except Exception as exc:  # noqa: BLE001 - a failed check names what happened
            result = Check(name, False, "no error", f"{type(exc).__name__}: {exc}", self.clock.now() - start)
        self.checks.append(result)
        self.report(result)
        return result.ok

    def _put_event(self) -> str:
        bus = self.functions.manifest.get(resource_key("event_bus", "task-events", self.primary))
        if bus is None:
            raise _Failed("the primary event bus in the manifest", "none")
        detail = {
            "eventType": "task.created",
            "taskData": {"title": "taskmgmt smoke test", "created_by": "taskmgmt-smoke", "assigned_to": self.marker},
        }
        answer = self.functions.aws.get("events", self.primary).put_events(
            Entries=[
                {
                    "Source": "task.management",
                    "DetailType": "Task Created",
                    "Detail": json.dumps(detail),
                    "EventBusName": bus.name,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise _Failed("FailedEntryCount 0", answer.get("Entries"))
        return f"event {answer['Entries'][0].get('EventId')}"

    def _read_primary(self) -> str:
        deadline = self.clock.now() + WAIT_FOR_EVENT
        resend_at, sent = self.clock.now() + RESEND_EVENT, 1
        while True:
            status, body = self.functions.request(self.primary, "GET", "/tasks", query={"assigned_to": self.marker})
            tasks = (body or {}).get("tasks", []) if status == 200 else []
            if tasks:
                self.task = tasks[0]
                again = f", after sending the event {sent} times" if sent > 1 else ""
                return f"task {self.task['id']} (version {self.task['version']}{again})"
            if self.clock.now() > deadline:
                raise _Failed(f"the task within {WAIT_FOR_EVENT:.0f}s", f"status {status}, {body}")
            if self.clock.now() >= resend_at:
                self._put_event()
                resend_at, sent = self.clock.now() + RESEND_EVENT, sent + 1
            self.clock.sleep(1.0)

    def _read_secondary(self) -> str:
        status, body = self.functions.request(self.secondary, "GET", f"/tasks/{self.task['id']}")
        if status != 200 or body["task"]["id"] != self.task["id"]:
            raise _Failed(f"200 with task {self.task['id']}", f"{status} {body}")
        return f"version {body['task']['version']}"

    def _http_steps(self) -> list[tuple[str, Callable[[], str]]]:
        if self.apis is None:
            return []
        steps: list[tuple[str, Callable[[], str]]] = []
        for region in (self.primary, self.secondary):
            steps += [
                (f"the HTTP API in {region} refuses a call without credentials", lambda r=region: self._refused(r)),
                (f"the task is read over HTTP through the HTTP API in {region}", lambda r=region: self._read_http(r)),
            ]
        return steps

    def _refused(self, region: str) -> str:
        assert self.apis is not None
        status, body = self.apis.get(region, f"/tasks/{self.task['id']}", credentials=False)
        if status not in (401, 403):
            raise _Failed("401 or 403", f"{status} {body}")
        return f"{status}"

    def _read_http(self, region: str) -> str:
        assert self.apis is not None
        status, body = self.apis.get(region, f"/tasks/{self.task['id']}")
        if status != 200 or not isinstance(body, dict) or body.get("task", {}).get("id") != self.task["id"]:
            raise _Failed(f"200 with task {self.task['id']}", f"{status} {body}")
        return f"200, version {body['task']['version']}"

    def _update(self) -> str:
        version = self.task["version"]
        status, body = self.functions.request(
            self.secondary,
            "PATCH",
            f"/tasks/{self.task['id']}",
            {"priority": "high", "updated_by": "taskmgmt-smoke", "version": version},
        )
        if status != 200 or body["task"]["version"] != version + 1:
            raise _Failed(f"200 with version {version + 1}", f"{status} {body}")
        self.task = body["task"]
        return f"version {version} -> {self.task['version']}"

    def _stale_update(self) -> str:
        stale = self.task["version"] - 1
        status, body = self.functions.request(
            self.primary,
            "PATCH",
            f"/tasks/{self.task['id']}",
            {"priority": "low", "updated_by": "taskmgmt-smoke", "version": stale},
        )
        if status != 409 or body.get("current_version") != self.task["version"]:
            raise _Failed(f"409 with current_version {self.task['version']}", f"{status} {body}")
        return f"409, current version {body['current_version']}"

    def _complete(self) -> str:
        status, body = self.functions.request(
            self.primary,
            "POST",
            f"/tasks/{self.task['id']}/complete",
            {"completed_by": "taskmgmt-smoke", "version": self.task["version"]},
        )
        if status != 200 or body["task"]["status"] != "completed" or not body["task"]["completed_at"]:
            raise _Failed("200, status completed with completed_at", f"{status} {body}")
        self.task = body["task"]
        return f"completed at {self.task['completed_at']}"

    def _history(self) -> str:
        status, body = self.functions.request(self.secondary, "GET", f"/tasks/{self.task['id']}")
        rows = sorted((h["field_name"], h["old_value"], h["new_value"]) for h in (body or {}).get("history", []))
        wanted = [("priority", "medium", "high"), ("status", "pending", "completed")]
        if status != 200 or rows != wanted:
            raise _Failed(str(wanted), f"{status} {rows}")
        return f"{len(rows)} rows"

    def _cleanup(self) -> str:
        """Every task the smoke test made: an event sent again may have made a second one."""
        status, body = self.functions.request(self.primary, "GET", "/tasks", query={"assigned_to": self.marker})
        found = {task["id"] for task in (body or {}).get("tasks", [])} if status == 200 else set()
        ids = sorted(found | {self.task["id"]})
        for task_id in ids:
            status, body = self.functions.request(self.primary, "DELETE", f"/tasks/{task_id}")
            if status != 204:
                raise _Failed("204", f"{status} {body}")
        return f"deleted {len(ids)}"
