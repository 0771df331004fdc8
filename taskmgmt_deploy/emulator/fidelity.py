"""Install and remove every fidelity patch, with one clock and one lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from taskmgmt_deploy.core.clock import Clock, SystemClock
from taskmgmt_deploy.emulator.awslambda import Invocation, Invoker, LambdaFidelity
from taskmgmt_deploy.emulator.dsql import DsqlFidelity
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.services import (
    CloudWatchFidelity,
    Delivery,
    EventsFidelity,
    LogsFidelity,
    SqsFidelity,
)


@dataclass(frozen=True)
class FidelitySettings:
    """How long AWS's eventual states last, in seconds of the fidelity clock."""

    iam_propagation: float = 10.0
    lambda_settle: float = 2.0
    dsql_activation: float = 60.0
    dsql_deletion: float = 30.0
    dsql_update: float = 5.0
    event_rule_propagation: float = 5.0  # a rule just put or enabled matches no event yet
    asynchronous_events: bool = False  # deliver EventBridge->Lambda in the background, as AWS does


class Fidelity:
    def __init__(
        self, clock: Clock | None = None, settings: FidelitySettings | None = None, invoker: Invoker | None = None
    ):
        self.clock = clock or SystemClock()
        self.settings = settings or FidelitySettings()
        lock = threading.RLock()
        s = self.settings
        self.dsql = DsqlFidelity(self.clock, s.dsql_activation, s.dsql_deletion, s.dsql_update, lock)
        self.awslambda = LambdaFidelity(self.clock, s.iam_propagation, s.lambda_settle, lock, invoker)
        self.events = EventsFidelity(self.clock, s.event_rule_propagation, lock, invoker, s.asynchronous_events)
        self._parts = [
            self.dsql,
            self.awslambda,
            self.events,
            CloudWatchFidelity(),
            LogsFidelity(),
            SqsFidelity(self.clock, lock),
        ]
        self._patches = Patches()

    @property
    def deliveries(self) -> list[Delivery]:
        return self.events.deliveries

    def reset(self) -> None:
        """Forget everything, as moto's own reset does for its backends."""
        for part in self._parts:
            for value in vars(part).values():
                if isinstance(value, (dict, list)):
                    value.clear()

    def install(self) -> Fidelity:
        for part in self._parts:
            part.install(self._patches)
        return self

    def uninstall(self) -> None:
        self.events.close()
        self._patches.undo()

    def __enter__(self) -> Fidelity:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


__all__ = ["Delivery", "Fidelity", "FidelitySettings", "Invocation", "Invoker"]
