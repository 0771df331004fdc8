"""Semantic retries: conditions that resolve with time but that botocore cannot know.

Each condition is a named predicate with its own schedule. Throttling is deliberately not
here: botocore's standard retry mode handles it on every client.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from taskmgmt_deploy.aws.errors import error_code, error_message
from taskmgmt_deploy.core.clock import Clock

T = TypeVar("T")

_IAM_NOT_READY = re.compile(
    r"cannot be assumed|role defined for the function|does not have permissions|not authorized to perform",
    re.IGNORECASE,
)
_LAMBDA_BUSY = re.compile(r"update is in progress|cannot be performed at this time|pending", re.IGNORECASE)


def is_iam_propagation(exc: BaseException) -> bool:
    """A role or policy created moments ago is not yet visible to the calling service."""
    return error_code(exc) in ("InvalidParameterValueException", "AccessDeniedException") and bool(
        _IAM_NOT_READY.search(error_message(exc))
    )


def is_lambda_busy(exc: BaseException) -> bool:
    """The function is still Pending, or a previous update is in progress."""
    return error_code(exc) == "ResourceConflictException" and bool(_LAMBDA_BUSY.search(error_message(exc)))


def is_queue_deleted_recently(exc: BaseException) -> bool:
    """SQS refuses a queue name for 60 seconds after a queue of that name was deleted."""
    return error_code(exc) in ("AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently")


def is_conditional_request_conflict(exc: BaseException) -> bool:
    """S3 refused a conditional write because another write to the object was in flight; the
    object's ETag is unchanged (it was checked), so the same write is tried again."""
    return error_code(exc) == "ConditionalRequestConflict"


def is_dsql_conflict(exc: BaseException) -> bool:
    """DSQL refuses a change while the cluster is mid-transition."""
    return error_code(exc) == "ConflictException"


class _Backoff:
    """initial, 2x initial, ... up to maximum, plus up to `initial` of jitter."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum

    def __call__(self, state: RetryCallState) -> float:
        return min(self.maximum, self.initial * 2 ** (state.attempt_number - 1)) + random.uniform(0, self.initial)


class _StopAfter:
    """Stop once `seconds` of the injected clock have passed (tenacity's own uses real time)."""

    def __init__(self, clock: Clock, seconds: float):
        self.clock, self.seconds, self.start = clock, seconds, clock.now()

    def __call__(self, state: RetryCallState) -> bool:
        return self.clock.now() - self.start >= self.seconds


# name -> (initial wait, max wait, deadline in seconds)
SCHEDULES = {
    # Dense and long: propagation usually takes seconds, occasionally minutes.
    "iam_propagation": (0.25, 2.0, 300.0),
    "lambda_busy": (0.5, 5.0, 300.0),
    "queue_deleted_recently": (5.0, 10.0, 90.0),
    "dsql_conflict": (2.0, 15.0, 600.0),
    # DSQL optimistic concurrency (SQLSTATE 40001): retry the whole transaction, quickly.
    "occ_conflict": (0.05, 2.0, 120.0),
    # Another write to the same S3 object was in flight: retried at once, briefly.
    "s3_conditional_conflict": (0.1, 1.0, 30.0),
    # A cluster that just became ACTIVE may refuse connections for a moment (DNS, warm-up).
    "database_connect": (1.0, 10.0, 300.0),
}


# name -> what a retry of that schedule waits for, as the operator reads it
WAITS = {
    "iam_propagation": "IAM to make the new role visible (usually seconds, at most 5 min)",
    "lambda_busy": "the function to finish its previous update (usually seconds)",
    "queue_deleted_recently": "SQS to free the queue name, reusable 60 s after its queue was deleted",
    "dsql_conflict": "the DSQL cluster to finish its current change (usually a minute or two)",
    "occ_conflict": "a conflicting transaction to commit (retried at once)",
    "database_connect": "the new cluster to accept connections (usually seconds)",
    "s3_conditional_conflict": "another write to the state object to finish (retried at once)",
}


def wait_message(schedule: str) -> str:
    """Said once, when a retry first waits: what for, and for about how long."""
    text = f"waiting for {WAITS[schedule]}"
    if schedule == "queue_deleted_recently":  # the wall clock: the operator compares it with theirs
        text += f"; until about {datetime.now() + timedelta(seconds=60):%H:%M:%S} at the latest"
    return text


def retrying(
    predicate: Callable[[BaseException], bool],
    schedule: str,
    clock: Clock,
    on_retry: Callable[[str], None] | None = None,
) -> Retrying:
    initial, maximum, deadline = SCHEDULES[schedule]

    def before_sleep(state: RetryCallState) -> None:
        if on_retry and state.attempt_number == 1:
            on_retry(wait_message(schedule))

    return Retrying(
        retry=retry_if_exception(predicate),
        wait=_Backoff(initial, maximum),
        stop=_StopAfter(clock, deadline),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def call_with_retry(
    fn: Callable[[], T],
    predicate: Callable[[BaseException], bool],
    schedule: str,
    clock: Clock,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    return retrying(predicate, schedule, clock, on_retry)(fn)
