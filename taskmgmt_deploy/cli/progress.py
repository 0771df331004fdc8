"""What a deploy or destroy shows while it runs; it is the engine's Reporter for that run.

On a terminal: rich's live display (the overall count, one line per step in flight with its
elapsed time and what it waits for). Elsewhere, or with --no-progress: plain lines, one per
finished step, and the waits as they start; no control characters. Either way it records
how long each step took, for the result.
"""

from __future__ import annotations

import threading

from taskmgmt_deploy.cli.console import Console
from taskmgmt_deploy.core.models import Change, Resource
from taskmgmt_deploy.errors import one_line


def past(verb: str) -> str:
    return verb + "d" if verb.endswith("e") else verb + "ed"


class RunDisplay:
    def __init__(self, console: Console):
        self.console = console
        self.seconds: dict[str, float] = {}
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    # -- the engine's Reporter -----------------------------------------------------------
    def phase(self, text: str) -> None:
        self.console.phase(text)

    def begin(self, verb: str, total: int) -> None:
        with self._lock:
            self.total += total

    def planned(self, res: Resource, change: Change) -> None:
        pass

    def started(self, key: str, verb: str) -> None:
        pass

    def progress(self, key: str, message: str) -> None:
        self.console.progress(key, message)

    def finished(self, key: str, verb: str, seconds: float) -> None:
        with self._lock:
            self.seconds[key] = seconds
            self.done += 1
            count = f"[{self.done}/{max(self.total, self.done)}]"
        self.console.success(f"{count} {past(verb)} {key} ({seconds:.1f}s)")

    def failed(self, key: str, error: BaseException) -> None:
        self.console.error(f"{key} failed: {one_line(error)}")
