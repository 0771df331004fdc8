"""The dependency walk that deploy and destroy share: a bounded pool of workers, and the
coordinating thread that decides what starts next.

A key starts once every key it waits for has succeeded, and only when a worker is free, so
nothing is started (or recorded as started) that then waits in a queue. After the first failure,
or once cancelled, nothing new starts; what is running finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from taskmgmt_deploy.core.clock import Clock, timed
from taskmgmt_deploy.errors import Interrupted, StepError, step_error

READ_FACTOR = 2  # reads change nothing and describe APIs allow far more than changes: twice the workers


def read_workers(max_workers: int) -> int:
    """How many reads run at once when `max_workers` changes may."""
    return max_workers * READ_FACTOR


class Work(Protocol):
    """What a walk does with each key. Only the callable `start` returns runs on a worker."""

    def plan(self, key: str) -> bool:
        """The key's dependencies are done: True when it has work to run, False when it is done
        already. Raising fails the key."""

    def start(self, key: str) -> Callable[[], Any]:
        """A worker is free for the key: record and report the start; return the work itself."""

    def finished(self, key: str, result: Any, seconds: float) -> None: ...

    def failed(self, key: str, error: BaseException) -> None: ...


class Scheduler:
    def __init__(self, max_workers: int, clock: Clock, cancel: threading.Event, name: str):
        self.max_workers, self.clock, self.cancel, self.name = max_workers, clock, cancel, name

    def walk(self, keys: Sequence[str], waits_for: Mapping[str, Iterable[str]], work: Work) -> list[StepError]:
        """Run every key once the keys it waits for are done; when several are ready, in the
        order of `keys`. Returns the failures (a key that was interrupted is neither done nor failed)."""
        known = set(keys)
        blockers = {key: {k for k in waits_for.get(key, ()) if k in known and k != key} for key in keys}
        waiting, done, queued = list(keys), set[str](), list[str]()
        running: dict[Future[tuple[Any, float]], str] = {}
        failures: list[StepError] = []
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name) as pool:
            while True:
                if not failures and not self.cancel.is_set():
                    for key in _ready(waiting, blockers, done):
                        try:
                            if work.plan(key):
                                queued.append(key)
                            else:
                                done.add(key)
                        except Exception as exc:  # noqa: BLE001 - a key that cannot be planned fails alone
                            failures.append(step_error(key, exc))
                            work.failed(key, exc)
                    while queued and len(running) < self.max_workers:
                        key = queued.pop(0)
                        running[pool.submit(timed, self.clock, work.start(key))] = key
                if not running:
                    return failures
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    try:
                        result, seconds = future.result()
                    except Interrupted:
                        continue
                    except Exception as exc:  # noqa: BLE001 - recorded per key, raised together by the caller
                        failures.append(step_error(key, exc))
                        work.failed(key, exc)
                        continue
                    done.add(key)
                    work.finished(key, result, seconds)


def _ready(waiting: list[str], blockers: Mapping[str, set[str]], done: set[str]) -> Iterator[str]:
    """Yield waiting keys whose blockers are done, re-checking as keys get done meanwhile."""
    progressed = True
    while progressed:
        progressed = False
        for key in list(waiting):
            if blockers[key] <= done:
                waiting.remove(key)
                progressed = True
                yield key
