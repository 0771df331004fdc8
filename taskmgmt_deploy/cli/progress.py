"""What a deploy or destroy shows while it runs; it is the engine's Reporter for that run.

On a terminal: rich's live display - the overall count (done/total) with the elapsed time,
and one line per step in flight with its own elapsed time and what it waits for; finished
steps scroll above it. Elsewhere, or with --no-progress: plain lines, one per finished step
and one per wait as it starts; no control characters. Either way it records how long each
step took, for the result.
"""

from __future__ import annotations

import threading

from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from taskmgmt_deploy.cli.console import Console
from taskmgmt_deploy.core.models import Change, Resource
from taskmgmt_deploy.errors import one_line


def past(verb: str) -> str:
    return verb + "d" if verb.endswith("e") else verb + "ed"


class RunDisplay:
    def __init__(self, console: Console, live: bool | None = None):
        self.console = console
        self.live = (console.err.is_terminal and not console.quiet) if live is None else live
        self.seconds: dict[str, float] = {}
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._steps: dict[str, tuple[TaskID, str]] = {}  # key -> (live line, "create KEY")
        self._verb = ""

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- the engine's Reporter -----------------------------------------------------------
    def phase(self, text: str) -> None:
        self.console.phase(text)

    def begin(self, verb: str, total: int) -> None:
        with self._lock:
            self.total += total
            self._verb = verb
            if self.live and self._progress is None and total:
                self._progress = Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}"),
                    TimeElapsedColumn(),
                    console=self.console.err,
                    transient=True,  # the finished lines and the summary stay; the live part goes
                )
                self._overall = self._progress.add_task(self._overall_line())
                self._progress.start()
            elif self._progress is not None and self._overall is not None:
                self._progress.update(self._overall, description=self._overall_line())

    def planned(self, res: Resource, change: Change) -> None:
        pass

    def started(self, key: str, verb: str) -> None:
        with self._lock:
            if self._progress is not None:
                label = f"{verb} {key}"
                self._steps[key] = (self._progress.add_task(f"  {label}"), label)

    def progress(self, key: str, message: str) -> None:
        with self._lock:
            step = self._steps.get(key)
            if self._progress is not None and step is not None:
                task, label = step
                self._progress.update(task, description=f"  {label}: {message}")
                return
        self.console.progress(key, message)

    def finished(self, key: str, verb: str, seconds: float) -> None:
        with self._lock:
            self.seconds[key] = seconds
            self.done += 1
            line = f"{self._count()} {past(verb)} {key} ({seconds:.1f}s)"
            self._end_step(key)
        self.console.success(line)

    def failed(self, key: str, error: BaseException) -> None:
        with self._lock:
            self._end_step(key)
        self.console.error(f"{key} failed: {one_line(error)}")

    # -- helpers ---------------------------------------------------------------------------
    def _count(self) -> str:
        return f"[{self.done}/{max(self.total, self.done)}]"

    def _overall_line(self) -> str:
        return f"{self._verb} {self._count()}"

    def _end_step(self, key: str) -> None:
        if self._progress is None:
            return
        step = self._steps.pop(key, None)
        if step is not None:
            self._progress.remove_task(step[0])
        if self._overall is not None:
            self._progress.update(self._overall, description=self._overall_line())
