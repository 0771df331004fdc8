"""The live check: a task created through the primary region's HTTP API reaches a socket
connected to the secondary region's WebSocket API within 1 s (issue 14's promise), then the
task is deleted. `smoke --sandbox` runs it after the other checks.

A broadcast rule that was just put matches no event for a while (EventBridge's documented
propagation, which the emulator models): a change made then is never broadcast. So a change that
does not arrive is followed by another, for up to WAIT_FOR_RULE seconds, and the check passes
when one arrives within LIVE_WITHIN of being made; each attempt's task is deleted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlencode

from taskmgmt_deploy.aws.signing import Signer
from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.usecases.endpoints import Endpoints, RegionApis
from taskmgmt_deploy.usecases.forwarding import Upstream
from taskmgmt_deploy.usecases.smoke import Check

LIVE_WITHIN = 1.0
WAIT_FOR_RULE = 20.0
SUBSCRIBED_WITHIN = 10.0


class _Failed(Exception):
    def __init__(self, expected: str, observed: str):
        super().__init__(observed)
        self.expected, self.observed = expected, observed


class LiveCheck:
    def __init__(
        self,
        endpoints: Endpoints,
        regions: tuple[str, str],
        signer: Signer | None,
        clock: Clock,
        token: str | None = None,
        upstream: Callable[[RegionApis, Signer | None], Upstream] | None = None,
        within: float = LIVE_WITHIN,
        wait_for_rule: float = WAIT_FOR_RULE,
    ):
        self.endpoints, self.signer, self.clock, self.token = endpoints, signer, clock, token
        self.within, self.wait_for_rule = within, wait_for_rule
        self.primary, self.secondary = regions
        self.upstream = upstream or (
            lambda apis, signer: Upstream(apis.http_url or "", apis.websocket_url, apis.region, signer)
        )
        self.marker = f"live-{uuid.uuid4().hex[:12]}"
        self.created: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        within = f"{LIVE_WITHIN:.0f} s"
        return f"a task created in {self.primary} reaches a socket connected to {self.secondary} within {within}"

    def deployed(self) -> bool:
        """Whether both regions have both APIs (a stack deployed before them has none)."""
        return all(
            apis.http_url and apis.websocket_url for apis in map(self.endpoints.of, (self.primary, self.secondary))
        )

    def run(self) -> Check:
        started = self.clock.now()
        try:
            observed = self._run()
            return Check(self.name, True, observed=observed, seconds=self.clock.now() - started)
        except _Failed as failed:
            return Check(self.name, False, failed.expected, failed.observed, self.clock.now() - started)
        except Exception as exc:  # noqa: BLE001 - an API that cannot be reached fails the check, in one line
            return Check(
                self.name,
                False,
                "both regions' APIs answer",
                f"{type(exc).__name__}: {exc}"[:300],
                self.clock.now() - started,
            )
        finally:
            self._cleanup()

    def _run(self) -> str:
        writer = self.upstream(self.endpoints.of(self.primary), self.signer)
        reader = self.upstream(self.endpoints.of(self.secondary), self.signer)
        with reader.open_socket(urlencode({"token": self.token}) if self.token else "") as socket:
            socket.send(json.dumps({"action": "subscribe", "all": True}))
            self._wait(socket, lambda m: m.get("type") == "subscribed", SUBSCRIBED_WITHIN, "a subscribed reply")
            deadline = self.clock.now() + self.wait_for_rule
            attempt = 0
            while True:
                attempt += 1
                task_id, made = self._create(writer, attempt)
                arrived = self._wait(socket, lambda m, t=task_id: _is_created(m, t), self.within, None)
                if arrived is not None:
                    late = (
                        f" (attempt {attempt}: earlier changes came while the broadcast rule propagated)"
                        if attempt > 1
                        else ""
                    )
                    took = f"{arrived - made:.2f}s"
                    return f"task.created arrived on the {self.secondary} socket {took} after the change{late}"
                if self.clock.now() > deadline:
                    raise _Failed(
                        f"task.created on the {self.secondary} socket within {self.within:g}s",
                        f"none of {attempt} changes arrived within {self.within:g}s",
                    )

    def _create(self, writer: Upstream, attempt: int) -> tuple[str, float]:
        body = json.dumps({"title": f"{self.marker} #{attempt}", "created_by": "taskmgmt-smoke"}).encode()
        status, _headers, payload = writer.forward("POST", "/tasks", self._headers(), body)
        made = self.clock.now()
        if status != 201:
            raise _Failed(
                f"201 from POST /tasks in {self.primary}", f"{status} {payload[:200].decode(errors='replace')}"
            )
        answer = json.loads(payload)
        task = answer.get("task", answer)  # the API answers {"task": {...}}
        self.created.append({"writer": writer, "task": task})
        return str(task["id"]), made

    def _wait(
        self, socket: Any, wanted: Callable[[dict[str, Any]], bool], within: float, what: str | None
    ) -> float | None:
        """When a wanted message came (clock seconds); None (or _Failed, naming `what`) when none did in time."""
        deadline = self.clock.now() + within
        while (left := deadline - self.clock.now()) > 0:
            try:
                raw = socket.recv(timeout=left)
            except TimeoutError:
                break
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict) and wanted(message):
                return self.clock.now()
        if what is not None:
            raise _Failed(f"{what} on the {self.secondary} socket within {within:.0f}s", "nothing")
        return None

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _cleanup(self) -> None:
        for made in self.created:
            task = made["task"]
            headers = {**self._headers(), "if-match": str(task.get("version", ""))}
            with suppress(Exception):  # best effort: the check's verdict stands
                made["writer"].forward("DELETE", f"/tasks/{task['id']}", headers, b"")
        self.created = []


def _is_created(message: dict[str, Any], task_id: str) -> bool:
    task = message.get("task")
    return (
        message.get("type") == "task"
        and message.get("event") == "task.created"
        and isinstance(task, dict)
        and str(task.get("id")) == task_id
    )
