"""Time as a dependency: production sleeps for real, tests advance a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wall(self) -> float:
        """Seconds since the epoch: the time another machine reads a lease in."""


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def timed(clock: Clock, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """fn's result and how many seconds of this clock it took."""
    start = clock.now()
    result = fn(*args)
    return result, clock.now() - start
