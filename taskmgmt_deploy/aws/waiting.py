"""Polling until a resource reaches a state, on an injected clock.

botocore waiters are not used for DSQL and Lambda: the DSQL `cluster_active` waiter has no
failure acceptor and does not accept IDLE/INACTIVE as healthy, and waiters sleep on the
real clock, which tests cannot shrink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.errors import Interrupted, TaskmgmtError, WaitTimeout

T = TypeVar("T")


class WaitFailed(TaskmgmtError):
    """The resource reached a state it will not leave by itself (FAILED...)."""


def poll(
    describe: Callable[[], T],
    *,
    done: Callable[[T], bool],
    what: str,
    ctx: StepContext,
    timeout: float,
    interval: float = 5.0,
    failed: Callable[[T], str | None] = lambda _: None,
    state: Callable[[T], str] = lambda _: "",
    expect: str = "",
) -> T:
    """Call `describe` until `done`; raise on `failed`, on timeout, or when cancelled.
    `expect` says for about how long, in the operator's words ("usually a few minutes")."""
    start = ctx.clock.now()
    delay = min(1.0, interval)
    last_state = None
    while True:
        value = describe()
        if done(value):
            return value
        problem = failed(value)
        if problem:
            raise WaitFailed(f"{what}: {problem}")
        current = state(value)
        if current and current != last_state:
            ctx.progress(f"waiting for {what} ({current}{'; ' + expect if expect else ''})")
            last_state = current
        if ctx.cancel.is_set():
            raise Interrupted(f"interrupted while waiting for {what}")
        if ctx.clock.now() - start >= timeout:
            raise WaitTimeout(f"gave up waiting for {what} after {timeout:.0f}s (last state: {current or '?'})")
        ctx.clock.sleep(delay)
        delay = min(delay * 2, interval)
