"""A tap on the tool's AWS clients: every successful mutating call it makes, and a kill right
after the one a test names (the call returned; nothing after it runs, nothing more is recorded)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tests.conftest import READ_PREFIXES

KILLED = 137  # the exit status a shell reports for a SIGKILLed process


def run_cli_and_exit(args: list[str], prepare: Callable[[], None] = lambda: None) -> NoReturn:
    """In a forked child: `prepare()`, run `taskmgmt ARGS`, and end the process with its exit
    code (never returning into pytest, whatever happens)."""
    code = 1
    try:
        prepare()
        from taskmgmt_deploy.cli import main

        try:
            main(args)
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# What names the resource a call acts on (its other parameters say how).
NAME_PARAMETERS = (
    "RoleName",
    "PolicyName",
    "QueueName",
    "QueueUrl",
    "Name",
    "EventBusName",
    "Rule",
    "Ids",
    "logGroupName",
    "FunctionName",
    "StatementId",
    "AlarmName",
    "AlarmNames",
    "DashboardName",
    "DashboardNames",
    "identifier",
    "Resource",
    "ResourceArn",
    "TopicArn",
    "AttributeName",
    "SubscriptionArn",
    "ApiId",
    "RouteKey",
    "StageName",
    "IntegrationUri",
)


class Killed(SystemExit):
    """The process dies here: raised in the thread that made the call, it unwinds the run
    without recording anything (nothing in the engine catches a SystemExit)."""

    def __init__(self) -> None:
        super().__init__(KILLED)


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    region: str | None
    params: Mapping[str, Any]

    @property
    def target(self) -> tuple[Any, ...]:
        """The operation, and what it acts on."""
        named = tuple((k, repr(self.params[k])) for k in NAME_PARAMETERS if k in self.params)
        return (self.operation, self.region, named)


@dataclass
class CallTap:
    """Install with `runtime`; `kill_after(predicate)` arms it for the next matching call."""

    calls: list[Call] = field(default_factory=list)
    fired: Call | None = None
    kill: Callable[[], None] = field(default=lambda: _raise(Killed()))
    _predicate: Callable[[Call], bool] | None = None

    def install(self, runtime: Any, monkeypatch: Any | None = None) -> CallTap:
        original = runtime.session_factory

        def session(settings: Any) -> Any:
            made = original(settings)
            made.events.register("before-parameter-build", self._params)
            made.events.register("after-call", self._answered)
            return made

        if monkeypatch is None:  # a forked child: it never returns to the test
            runtime.session_factory = session
        else:
            monkeypatch.setattr(runtime, "session_factory", session)
        return self

    def kill_after(self, predicate: Callable[[Call], bool] | None) -> None:
        self._predicate, self.fired = predicate, None

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    @staticmethod
    def _params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["tap.params"] = dict(params)

    def _answered(self, http_response: Any, model: Any, context: dict[str, Any], event_name: str, **_: Any) -> None:
        if http_response.status_code >= 300 or model.name.startswith(READ_PREFIXES):
            return
        call = Call(event_name.split(".")[1], model.name, context.get("client_region"), context.get("tap.params", {}))
        self.calls.append(call)
        if self._predicate is not None and self._predicate(call):
            self._predicate, self.fired = None, call
            self.kill()


def _raise(error: BaseException) -> None:
    raise error
