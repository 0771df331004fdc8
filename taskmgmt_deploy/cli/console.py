"""The one place that prints. Progress and diagnostics go to stderr, data to stdout.

Markup is off, so names and error messages from AWS are printed as they are. It also
implements the engine's Reporter; workers may call `progress` from any thread.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console as RichConsole

from taskmgmt_deploy.core.models import UNKNOWN, Action, Change, Health, Resource, Status
from taskmgmt_deploy.core.step import short
from taskmgmt_deploy.errors import one_line

_SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.NOOP: " ", Action.SKIP: " "}
_ACTION_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.NOOP: "dim",
    Action.SKIP: "dim",
    Action.DELETE: "red",
}
_CHECK_STYLE = {"ok": "green", "skip": "dim", "FAIL": "red"}
_HEALTH_STYLE = {
    Health.OK: "green",
    Health.MISSING: "red",
    Health.DRIFTED: "yellow",
    Health.UNHEALTHY: "red",
    Health.SKIPPED: "dim",
}


class Console:
    def __init__(self, quiet: bool = False, width: int | None = None):
        # Off a terminal nothing is wrapped at 80 columns: scripts read these lines.
        self.out = RichConsole(markup=False, highlight=False, emoji=False, soft_wrap=True, width=width)
        self.err = RichConsole(stderr=True, markup=False, highlight=False, emoji=False, soft_wrap=True, width=width)
        for target in (self.out, self.err):
            if not target.is_terminal and width is None:
                target.width = 200
        self.quiet = quiet
        self._lock = threading.RLock()  # reentrant: the Ctrl-C handler may print while the main thread prints

    # -- diagnostics (stderr) -----------------------------------------------------
    def _say(self, text: str, style: str | None = None) -> None:
        if not self.quiet:
            with self._lock:
                self.err.print(text, style=style)

    def info(self, text: str) -> None:
        self._say(text)

    def success(self, text: str) -> None:
        self._say(text, "green")

    def warn(self, text: str) -> None:
        self._say(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        with self._lock:
            self.err.print(f"error: {text}", style="red")

    def confirm(self, question: str) -> bool:
        if not sys.stdin.isatty():
            return False
        with self._lock:
            answer = self.err.input(f"{question} [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    # -- the engine's Reporter ------------------------------------------------------
    def phase(self, text: str) -> None:
        self._say(f"- {text}", "dim")

    def begin(self, verb: str, total: int) -> None:
        pass

    def planned(self, res: Resource, change: Change) -> None:
        pass  # the plan is shown as a table; per-step lines come from started/finished

    def started(self, key: str, verb: str) -> None:
        self._say(f"  {verb:<9} {key} ...")

    def progress(self, key: str, message: str) -> None:
        self._say(f"  {key}: {message}", "dim")

    def finished(self, key: str, verb: str, seconds: float) -> None:
        self._say(f"  {verb + 'd' if verb.endswith('e') else verb + 'ed':<9} {key} ({seconds:.1f}s)", "green")

    def failed(self, key: str, error: BaseException) -> None:
        self._say(f"  failed    {key}: {one_line(error)}", "red")

    # -- data (stdout) ----------------------------------------------------------------
    def check(self, outcome: str, text: str, stream: str = "out") -> None:
        """One line of a check list: ok, skip or FAIL."""
        with self._lock:
            (self.out if stream == "out" else self.err).print(
                f"{outcome:<5} {text}", style=_CHECK_STYLE.get(outcome, "red")
            )

    def json(self, data: Any) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line (a stream of them, as `logs --json` prints)."""
        with self._lock:
            sys.stdout.write(json.dumps(data, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()

    def plan(self, changes: Iterable[tuple[Resource, Change]], verbose: bool = False, stream: str = "out") -> None:
        """One line per change (+ create, ~ update, - delete), each update's fields as `field: old → new`;
        unchanged and skipped resources only when verbose."""
        target = self.out if stream == "out" else self.err
        with self._lock:
            for res, change in changes:
                if not (change.mutates or verbose):
                    continue
                why = "" if change.diff else "; ".join(change.reasons)
                if change.action is Action.SKIP:
                    why = f"skipped: {why}"
                target.print(
                    f"{_SYMBOL[change.action]} {res.key}" + (f"  ({why})" if why else ""),
                    style=_ACTION_STYLE[change.action],
                )
                for name, (old, new) in change.diff.items():
                    target.print(f"      {name}: {_value(old)} → {_value(new)}", style=_ACTION_STYLE[change.action])

    def status_table(self, statuses: Iterable[Status], stack_name: str = "") -> None:
        """Grouped by region (its name heads the group), rows in dependency order: resource,
        live state, health, id. A resource name never wraps; the id takes what width is left and
        is cut with an ellipsis; each problem is a line of its own under its resource."""
        by_region: dict[str, list[Status]] = {}
        for status in statuses:
            by_region.setdefault(status.region or "global", []).append(status)
        rows = [s for group in by_region.values() for s in group]
        name_width = max((len(_resource_name(s)) for s in rows), default=0)
        state_width = min(max((len(s.state) for s in rows), default=0), 13)
        id_width = max(self.out.width - (2 + name_width + 2 + state_width + 2 + 9 + 2), 8)
        with self._lock:
            self.out.print(f"  {'resource':<{name_width}}  {'state':<{state_width}}  {'health':<9}  id", style="dim")
            for region, group in by_region.items():
                self.out.print(region, style="bold")
                for status in group:
                    ident = _cut(_short_id(status.id, stack_name), id_width)
                    self.out.print(
                        f"  {_resource_name(status):<{name_width}}  {_cut(status.state, state_width):<{state_width}}"
                        f"  {status.health.value:<9}  {ident}".rstrip(),
                        style=_HEALTH_STYLE[status.health],
                    )
                    for problem in status.problems:
                        self.out.print(f"      {problem}", style=_HEALTH_STYLE[status.health])

    def log_line(self, timestamp: int, region: str, message: str) -> None:
        """One event of the function's log: time, region, level, request id, message and fields;
        a traceback indented below. A line that is not JSON is printed as it is."""
        when = datetime.fromtimestamp(timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        record = _json_object(message)
        record = _unhandled_error(record) or record
        if record is None:
            text, level, style, extra = message.rstrip(), "", None, ""
        elif "_aws" in record:  # CloudWatch embedded metrics
            counts = {k: v for k, v in record.items() if isinstance(v, int) and k != "_aws"}
            text, level, style = "metrics " + " ".join(f"{k}={v}" for k, v in counts.items()), "METRIC", "dim"
            extra = f"  {record.get('request_id', '-')}"
        else:
            level = str(record.get("level", ""))
            fields = {k: v for k, v in record.items() if k not in _LOG_KEYS}
            text = str(record.get("message", "")) + "".join(f"  {k}={v}" for k, v in fields.items())
            style, extra = _LEVEL_STYLE.get(level), f"  {record.get('request_id', '-')}"
        with self._lock:
            self.out.print(f"{when}  {region}  {level:<7}{extra}  {text}", style=style)
            trace = record.get("exception") if record else None
            for line in str(trace or "").splitlines():
                self.out.print(f"    {line}", style=style)

    def key_values(self, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._nested(data, 0)

    def _nested(self, data: Mapping[str, Any], indent: int) -> None:
        for key, value in data.items():
            if isinstance(value, Mapping):
                self.out.print(" " * indent + f"{key}:")
                self._nested(value, indent + 2)
            else:
                self.out.print(" " * indent + f"{key}: {'-' if value is None else value}")


def _short_id(ident: str, stack_name: str = "") -> str:
    """Queue URLs, ARNs and other path-like ids by their last part, without the stack's name
    that every name starts with."""
    last = ident.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("arn:"):
        last = last.rsplit(":", 1)[-1]
    return last[len(stack_name) + 1 :] if stack_name and last.startswith(stack_name + "-") else last


def _resource_name(status: Status) -> str:
    return status.key.rsplit("@", 1)[0]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_LOG_KEYS = ("timestamp", "level", "message", "logger", "request_id", "exception")


def _unhandled_error(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The runtime's report of an exception the handler did not catch, in the function's record
    shape. Lambda logs it as {"errorMessage", "errorType", "stackTrace": [lines]}, on its own or,
    with JSON logging, as the "message" of a record that carries "requestId"."""
    if not record:
        return None
    error = record.get("message") if isinstance(record.get("message"), Mapping) else record
    if not isinstance(error, Mapping) or "errorType" not in error:
        return None
    trace = error.get("stackTrace")
    return {
        "level": "ERROR",
        "message": f"unhandled {error['errorType']}: {error.get('errorMessage', '')}",
        "request_id": error.get("requestId") or record.get("requestId") or record.get("request_id") or "-",
        "exception": "".join(map(str, trace)) if isinstance(trace, list) else trace,
    }


_LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red", "DEBUG": "dim"}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _value(value: Any) -> str:
    return repr(value) if value is UNKNOWN else short(value)
