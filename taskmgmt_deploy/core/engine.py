"""The provisioning engine: read, plan, apply, check and destroy a set of resources.

It knows nothing of boto3, rich or typer. Steps do the AWS work in a bounded worker
pool; this module's coordinating thread is the only one that plans, writes the manifest
and talks to the reporter, so the manifest has one writer and is saved after every change.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskmgmt_deploy.core.clock import Clock, SystemClock, timed
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.graph import in_topo_order, resource_of, topo_order
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import (
    Action,
    Change,
    Health,
    Observed,
    Record,
    Resource,
    Status,
    record_of,
    resolve_refs,
)
from taskmgmt_deploy.core.teardown import DestroyReport, Teardown
from taskmgmt_deploy.errors import DeployFailed, Interrupted, StepError, UserError, step_error
from taskmgmt_deploy.steps.base import Step, step_for


class Reporter(Protocol):
    def phase(self, text: str) -> None: ...
    def planned(self, res: Resource, change: Change) -> None: ...
    def started(self, key: str, verb: str) -> None: ...
    def progress(self, key: str, message: str) -> None: ...
    def finished(self, key: str, verb: str, seconds: float) -> None: ...
    def failed(self, key: str, error: BaseException) -> None: ...


class NullReporter:
    def phase(self, text: str) -> None: ...
    def planned(self, res: Resource, change: Change) -> None: ...
    def started(self, key: str, verb: str) -> None: ...
    def progress(self, key: str, message: str) -> None: ...
    def finished(self, key: str, verb: str, seconds: float) -> None: ...
    def failed(self, key: str, error: BaseException) -> None: ...


class Finder(Protocol):
    """Finds live resources tagged as this stack's, whatever the manifest says."""

    def find(self) -> list[Record]: ...


class Executor(Protocol):
    records: bool

    def apply(
        self,
        step: Step,
        res: Resource,
        spec: Mapping[str, Any],
        change: Change,
        observed: Observed | None,
        ctx: StepContext,
    ) -> Mapping[str, Any]: ...


class ApplyExecutor:
    records = True

    def apply(
        self,
        step: Step,
        res: Resource,
        spec: Mapping[str, Any],
        change: Change,
        observed: Observed | None,
        ctx: StepContext,
    ) -> Mapping[str, Any]:
        return step.apply(res, spec, change, observed, ctx)


class PlanOnlyExecutor:
    """The dry run: what exists keeps its outputs, what would be created has none yet."""

    records = False

    def apply(
        self,
        step: Step,
        res: Resource,
        spec: Mapping[str, Any],
        change: Change,
        observed: Observed | None,
        ctx: StepContext,
    ) -> Mapping[str, Any]:
        return dict(observed.outputs) if observed else {}


Confirm = Callable[[list[tuple[Resource, Change]]], bool]
READ_FACTOR = 2  # reads run up to READ_FACTOR x max_workers at once


class Aborted(UserError):
    exit_code = 1


class Engine:
    def __init__(
        self,
        steps: Mapping[str, Step],
        manifest: Manifest,
        *,
        reporter: Reporter | None = None,
        max_workers: int = 8,
        clock: Clock | None = None,
        cancel: threading.Event | None = None,
        finder: Finder | None = None,
    ):
        self.steps = steps
        self.manifest = manifest
        self.reporter = reporter or NullReporter()
        self.max_workers = max_workers
        self.clock = clock or SystemClock()
        self.cancel = cancel or threading.Event()
        self.finder = finder

    # -- public operations ------------------------------------------------------
    def plan(self, resources: list[Resource]) -> list[tuple[Resource, Change]]:
        observed = self._read_all([(r, self.manifest.get(r.key)) for r in resources])
        return self._walk(resources, observed, PlanOnlyExecutor())

    def deploy(self, resources: list[Resource], confirm: Confirm | None = None) -> list[tuple[Resource, Change]]:
        observed = self._read_all([(r, self.manifest.get(r.key)) for r in resources])
        preview = self._walk(resources, observed, PlanOnlyExecutor(), report=False)
        if confirm and any(c.mutates for _, c in preview) and not confirm(preview):
            raise Aborted("deploy cancelled; nothing was changed")
        return self._walk(resources, observed, ApplyExecutor())

    def status(self, resources: list[Resource]) -> list[Status]:
        items = self._known_items(resources)
        observed = self._read_all(items)
        outputs = {
            res.key: (observed[res.key].outputs if observed.get(res.key) else (rec.outputs if rec else {}))
            for res, rec in items
        }
        return [self._status_of(res, rec, observed.get(res.key), outputs) for res, rec in in_topo_order(items)]

    def destroy(self, resources: list[Resource], force: bool = False) -> DestroyReport:
        items = self._known_items(resources)
        teardown = Teardown(
            self.steps,
            self.manifest,
            self.reporter,
            max_workers=self.max_workers,
            clock=self.clock,
            cancel=self.cancel,
            finder=self.finder,
        )
        return teardown.run(items, self._read_all(items), force)

    def rebuild(self, resources: list[Resource]) -> int:
        """Record every blueprint resource found live by name or tag; return how many."""
        observed = self._read_all([(r, None) for r in resources])
        order = topo_order(resources)
        by_key = {r.key: r for r in resources}
        found = 0
        for index, key in enumerate(order):
            if observed.get(key) is not None:
                self.manifest.put(record_of(by_key[key], index + 1, "ready", observed[key].outputs))
                found += 1
        self.manifest.save()
        return found

    # -- reading ----------------------------------------------------------------
    def _read_all(self, items: list[tuple[Resource, Record | None]]) -> dict[str, Observed | None]:
        """Every read at once (reads depend on nothing); kinds that can read many in one call do."""
        self.reporter.phase(f"reading {len(items)} resources")
        results: dict[str, Observed | None] = {}
        failures: list[StepError] = []
        # Reads change nothing and describe APIs allow far more than changes do: twice the pool.
        with ThreadPoolExecutor(self.max_workers * READ_FACTOR, thread_name_prefix="read") as pool:
            futures = {
                pool.submit(self._step(group[0][0].kind).read_many, group): group
                for group in _read_groups(items, self.steps)
            }
            for future, group in futures.items():
                try:
                    results.update(zip((res.key for res, _ in group), future.result(), strict=True))
                except Exception as exc:  # noqa: BLE001 - every failure is reported by key
                    failures += [step_error(res.key, exc) for res, _ in group]
        if failures:
            raise DeployFailed("reading", failures)
        return results

    def _known_items(self, resources: list[Resource]) -> list[tuple[Resource, Record | None]]:
        """Blueprint resources plus manifest records the blueprint no longer has."""
        wanted = {r.key: r for r in resources}
        items = [(res, self.manifest.get(key)) for key, res in wanted.items()]
        items += [(resource_of(rec), rec) for rec in self.manifest if rec.key not in wanted]
        return items

    # -- the deploy walk ----------------------------------------------------------
    def _walk(
        self,
        resources: list[Resource],
        observed: Mapping[str, Observed | None],
        executor: Executor,
        report: bool = True,
    ) -> list[tuple[Resource, Change]]:
        order = topo_order(resources)
        by_key = {r.key: r for r in resources}
        step_no = {key: index + 1 for index, key in enumerate(order)}
        walk = _Walk(list(order))
        reporter = self.reporter if report else NullReporter()
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="apply") as pool:
            while True:
                if not walk.failures and not self.cancel.is_set():
                    for res in walk.ready(by_key):
                        self._plan_one(res, observed.get(res.key), walk, reporter)
                    while walk.queued and len(walk.running) < self.max_workers:
                        res, spec = walk.queued.pop(0)
                        self._start_one(
                            res, spec, step_no[res.key], observed.get(res.key), walk, executor, pool, reporter
                        )
                if not walk.running:
                    break
                finished, _ = wait(list(walk.running), return_when=FIRST_COMPLETED)
                for future in finished:
                    self._finish_one(future, by_key, step_no, walk, executor, reporter)
        if executor.records:
            for key in walk.unchanged:
                if observed.get(key) is not None:
                    self._adopt(by_key[key], step_no[key], observed[key])  # type: ignore[arg-type]
        if walk.failures:
            raise DeployFailed("deploy", walk.failures)
        if self.cancel.is_set():
            raise Interrupted(
                "interrupted: in-flight calls finished and the manifest was saved; run deploy again to resume"
            )
        return [(by_key[key], walk.changes[key]) for key in order if key in walk.changes]

    def _plan_one(self, res: Resource, observed: Observed | None, walk: _Walk, reporter: Reporter) -> None:
        step = self._step(res.kind)
        spec = resolve_refs(res.spec, walk.outputs)
        try:
            change = step.plan(res, spec, observed)
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be made fails its resource
            walk.failures.append(step_error(res.key, exc))
            reporter.failed(res.key, exc)
            return
        walk.changes[res.key] = change
        reporter.planned(res, change)
        if change.mutates:
            walk.queued.append((res, spec))
        else:
            walk.outputs[res.key] = dict(observed.outputs) if observed else {}
            walk.done.add(res.key)
            walk.unchanged.append(res.key)

    def _start_one(
        self,
        res: Resource,
        spec: Mapping[str, Any],
        step_no: int,
        observed: Observed | None,
        walk: _Walk,
        executor: Executor,
        pool: ThreadPoolExecutor,
        reporter: Reporter,
    ) -> None:
        """Record the intent, then hand the change to a worker (a free one: nothing queues)."""
        change = walk.changes[res.key]
        token = self._record_intent(res, step_no, change, observed) if executor.records else None
        ctx = StepContext(
            clock=self.clock,
            cancel=self.cancel,
            token=token,
            progress=lambda message, key=res.key: reporter.progress(key, message),
        )
        reporter.started(res.key, change.action.value)
        future = pool.submit(timed, self.clock, executor.apply, self._step(res.kind), res, spec, change, observed, ctx)
        walk.running[future] = res.key

    def _finish_one(
        self,
        future: Future[tuple[Mapping[str, Any], float]],
        by_key: Mapping[str, Resource],
        step_no: Mapping[str, int],
        walk: _Walk,
        executor: Executor,
        reporter: Reporter,
    ) -> None:
        key = walk.running.pop(future)
        res = by_key[key]
        try:
            outputs, seconds = future.result()
        except Interrupted:
            return
        except Exception as exc:  # noqa: BLE001 - recorded per resource, raised together
            error = step_error(key, exc)
            walk.failures.append(error)
            reporter.failed(key, error.cause)
            return
        walk.outputs[key] = dict(outputs)
        walk.done.add(key)
        if executor.records:
            self._record(res, step_no[key], "ready", outputs)
        reporter.finished(key, walk.changes[key].action.value, seconds)

    # -- manifest bookkeeping ----------------------------------------------------
    def _record_intent(self, res: Resource, step_no: int, change: Change, observed: Observed | None) -> str | None:
        previous = self.manifest.get(res.key)
        token = None
        if change.action is Action.CREATE:
            reusable = previous and previous.state == "creating" and previous.token
            token = previous.token if reusable else uuid.uuid4().hex
        state = "creating" if change.action is Action.CREATE else "updating"
        outputs = observed.outputs if observed else (previous.outputs if previous else {})
        self._record(res, step_no, state, outputs, token)
        return token

    def _adopt(self, res: Resource, step_no: int, observed: Observed) -> None:
        current = self.manifest.get(res.key)
        wanted = record_of(res, step_no, "ready", observed.outputs)
        if current != wanted:
            self.manifest.put(wanted)
            self.manifest.save()

    def _record(
        self, res: Resource, step_no: int, state: str, outputs: Mapping[str, Any], token: str | None = None
    ) -> None:
        self.manifest.put(record_of(res, step_no, state, outputs, token))
        self.manifest.save()

    # -- status -------------------------------------------------------------------
    def _status_of(
        self, res: Resource, record: Record | None, observed: Observed | None, outputs: Mapping[str, Mapping[str, Any]]
    ) -> Status:
        step = self._step(res.kind)
        ident = str(outputs[res.key].get("id") or "-")
        if observed is None and step.local:
            return Status(res.key, res.kind, res.region, ident, "-", Health.SKIPPED)
        if observed is None:
            why = "not deployed" if record is None else "missing: deleted outside taskmgmt?"
            return Status(res.key, res.kind, res.region, ident, "absent", Health.MISSING, (why,))
        change = step.plan(res, resolve_refs(res.spec, outputs), observed)
        state = observed.state or "present"
        if change.action is Action.SKIP:
            return Status(res.key, res.kind, res.region, ident, state, Health.SKIPPED, change.reasons)
        problems = list(change.reasons) if change.mutates else []
        if record is None or record.state != "ready":
            problems.append("not recorded as complete: run deploy to finish it")
        if problems:
            return Status(res.key, res.kind, res.region, ident, state, Health.DRIFTED, tuple(problems))
        trouble = step.health(observed)
        if trouble:
            return Status(res.key, res.kind, res.region, ident, state, Health.UNHEALTHY, (trouble,))
        return Status(res.key, res.kind, res.region, ident, state, Health.OK)

    # -- helpers ------------------------------------------------------------------
    def _step(self, kind: str) -> Step:
        return step_for(self.steps, kind)


@dataclass
class _Walk:
    """Mutable state of one DAG walk, owned by the coordinating thread."""

    waiting: list[str]
    outputs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    changes: dict[str, Change] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    queued: list[tuple[Resource, Mapping[str, Any]]] = field(default_factory=list)
    running: dict[Future[tuple[Mapping[str, Any], float]], str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    failures: list[StepError] = field(default_factory=list)

    def ready(self, by_key: Mapping[str, Resource]) -> Iterable[Resource]:
        """Yield resources whose dependencies are done, re-checking as they finish."""
        progressed = True
        while progressed:
            progressed = False
            for key in list(self.waiting):
                res = by_key[key]
                if all(dep in self.done for dep in res.depends_on):
                    self.waiting.remove(key)
                    progressed = True
                    yield res


def _read_groups(
    items: list[tuple[Resource, Record | None]], steps: Mapping[str, Step]
) -> list[list[tuple[Resource, Record | None]]]:
    """One group per resource, except kinds that read a region's resources in one call."""
    groups: dict[tuple[str, str | None], list[tuple[Resource, Record | None]]] = {}
    single: list[list[tuple[Resource, Record | None]]] = []
    for item in items:
        res = item[0]
        if res.kind in steps and steps[res.kind].reads_in_batches:
            groups.setdefault((res.kind, res.region), []).append(item)
        else:
            single.append([item])
    return single + list(groups.values())
