"""The provisioning engine: read, plan, apply, check and destroy a set of resources.

It knows nothing of boto3, rich or typer. Steps do the AWS work in a bounded worker
pool; this module's coordinating thread is the only one that plans, writes the manifest
and talks to the reporter, so the manifest has one writer and is saved after every change.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import Any, Protocol

from taskmgmt_deploy.core.clock import Clock, SystemClock
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.graph import in_topo_order, resource_of, topo_order
from taskmgmt_deploy.core.interfaces import Finder, NullReporter, Reporter
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
from taskmgmt_deploy.core.scheduler import Scheduler, read_workers
from taskmgmt_deploy.core.state import Durable
from taskmgmt_deploy.core.step import Step, step_for
from taskmgmt_deploy.core.teardown import DestroyReport, Teardown
from taskmgmt_deploy.errors import DeployFailed, Interrupted, StepError, UserError, step_error


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
        """What deploy would do, reporting nothing as done: the caller shows the plan."""
        observed = self._read_all([(r, self.manifest.get(r.key)) for r in resources])
        return self._walk(resources, observed, PlanOnlyExecutor(), report=False) + self._removals(resources)

    def deploy(self, resources: list[Resource], confirm: Confirm | None = None) -> list[tuple[Resource, Change]]:
        """Create and update what the configuration has; then delete what only the manifest has
        (an option turned off), after everything that may have used it was updated."""
        observed = self._read_all([(r, self.manifest.get(r.key)) for r in resources])
        preview = self._walk(resources, observed, PlanOnlyExecutor(), report=False) + self._removals(resources)
        if confirm and any(c.mutates for _, c in preview) and not confirm(preview):
            raise Aborted("deploy cancelled; nothing was changed")
        self.reporter.begin("deploy", sum(1 for _, c in preview if c.mutates))
        changes = self._walk(resources, observed, ApplyExecutor())
        removals = self._removals(resources)
        if removals:
            stale = {res.key: self.manifest.get(res.key) for res, _ in removals}
            teardown = Teardown(self.steps, self.manifest, self.reporter, self._scheduler("delete"), None)
            teardown.delete({key: rec for key, rec in stale.items() if rec is not None}, force=False)
        return changes + removals

    def _removals(self, resources: list[Resource]) -> list[tuple[Resource, Change]]:
        wanted = {r.key for r in resources}
        return [
            (resource_of(rec), Change(Action.DELETE, ("no longer in the configuration",)))
            for rec in self.manifest
            if rec.key not in wanted
        ]

    def status(self, resources: list[Resource]) -> list[Status]:
        items = self._known_items(resources)
        observed = self._read_all(items)
        outputs = {
            res.key: (observed[res.key].outputs if observed.get(res.key) else (rec.outputs if rec else {}))
            for res, rec in items
        }
        wanted = {r.key for r in resources}
        return [
            self._status_of(res, rec, observed.get(res.key), outputs)
            if res.key in wanted
            else self._stale_status(res, observed.get(res.key), outputs)
            for res, rec in in_topo_order(items)
        ]

    def destroy(self, resources: list[Resource], force: bool = False) -> DestroyReport:
        items = self._known_items(resources)
        teardown = Teardown(self.steps, self.manifest, self.reporter, self._scheduler("delete"), self.finder)
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
        with (
            ExitStack() as phase,
            ThreadPoolExecutor(read_workers(self.max_workers), thread_name_prefix="read") as pool,
        ):
            for step in {id(step): step for step in self.steps.values()}.values():
                phase.enter_context(step.read_phase())
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
        work = _DeployWork(self, {r.key: r for r in resources}, order, observed, executor, report)
        failures = self._scheduler("apply").walk(order, {r.key: r.depends_on for r in resources}, work)
        if executor.records:
            for key in work.unchanged:
                if observed.get(key) is not None:
                    self._adopt(work.by_key[key], work.position[key], observed[key])  # type: ignore[arg-type]
        if failures:
            raise DeployFailed("deploy", failures)
        if self.cancel.is_set():
            raise Interrupted(
                "interrupted: in-flight calls finished and the manifest was saved; run deploy again to resume"
            )
        return [(work.by_key[key], work.changes[key]) for key in order if key in work.changes]

    # -- manifest bookkeeping ----------------------------------------------------
    def _record_intent(
        self, res: Resource, position: int, change: Change, observed: Observed | None
    ) -> tuple[str | None, Durable]:
        previous = self.manifest.get(res.key)
        token = None
        if change.action is Action.CREATE:
            reusable = previous and previous.state == "creating" and previous.token
            token = previous.token if reusable else uuid.uuid4().hex
        state = "creating" if change.action is Action.CREATE else "updating"
        outputs = observed.outputs if observed else (previous.outputs if previous else {})
        return token, self._record(res, position, state, outputs, token)

    def _adopt(self, res: Resource, position: int, observed: Observed) -> None:
        current = self.manifest.get(res.key)
        wanted = record_of(res, position, "ready", observed.outputs)
        if current != wanted:
            self.manifest.put(wanted)
            self.manifest.save()

    def _record(
        self, res: Resource, position: int, state: str, outputs: Mapping[str, Any], token: str | None = None
    ) -> Durable:
        self.manifest.put(record_of(res, position, state, outputs, token))
        return self.manifest.save()

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

    @staticmethod
    def _stale_status(res: Resource, observed: Observed | None, outputs: Mapping[str, Mapping[str, Any]]) -> Status:
        """A recorded resource the configuration no longer has (a deploy that removed it failed)."""
        ident = str(outputs[res.key].get("id") or "-")
        if observed is None:
            return Status(res.key, res.kind, res.region, ident, "absent", Health.DRIFTED, ("gone; deploy forgets it",))
        reason = "no longer in the configuration: deploy deletes it"
        return Status(res.key, res.kind, res.region, ident, observed.state or "present", Health.DRIFTED, (reason,))

    # -- helpers ------------------------------------------------------------------
    def _step(self, kind: str) -> Step:
        return step_for(self.steps, kind)

    def _scheduler(self, name: str) -> Scheduler:
        return Scheduler(self.max_workers, self.clock, self.cancel, name)


class _DeployWork:
    """One deploy walk (or its dry run): plan each resource once its dependencies are done,
    record the intent before a change starts, and record what it produced."""

    def __init__(
        self,
        engine: Engine,
        by_key: Mapping[str, Resource],
        order: list[str],
        observed: Mapping[str, Observed | None],
        executor: Executor,
        report: bool,
    ):
        self.engine, self.by_key, self.observed, self.executor = engine, by_key, observed, executor
        self.reporter = engine.reporter if report else NullReporter()
        self.position = {key: index + 1 for index, key in enumerate(order)}
        self.outputs: dict[str, Mapping[str, Any]] = {}
        self.changes: dict[str, Change] = {}
        self.specs: dict[str, Mapping[str, Any]] = {}
        self.unchanged: list[str] = []

    def plan(self, key: str) -> bool:
        res, observed = self.by_key[key], self.observed.get(key)
        spec = resolve_refs(res.spec, self.outputs)
        change = self.engine._step(res.kind).plan(res, spec, observed)
        self.changes[key] = change
        self.reporter.planned(res, change)
        if change.mutates:
            self.specs[key] = spec
            return True
        self.outputs[key] = dict(observed.outputs) if observed else {}
        self.unchanged.append(key)
        return False

    def start(self, key: str) -> Callable[[], Mapping[str, Any]]:
        """Record the intent, then hand the change to the worker, which starts it once the
        intent is durable (a remote manifest is written in the background)."""
        res, observed, change = self.by_key[key], self.observed.get(key), self.changes[key]
        engine = self.engine
        token, durable = (
            engine._record_intent(res, self.position[key], change, observed) if self.executor.records else (None, None)
        )
        ctx = StepContext(
            clock=engine.clock,
            cancel=engine.cancel,
            token=token,
            progress=lambda message: self.reporter.progress(key, message),
        )
        self.reporter.started(key, change.action.value)
        apply = partial(self.executor.apply, engine._step(res.kind), res, self.specs[key], change, observed, ctx)
        return apply if durable is None else partial(after, durable, apply)

    def finished(self, key: str, outputs: Mapping[str, Any], seconds: float) -> None:
        self.outputs[key] = dict(outputs)
        if self.executor.records:
            self.engine._record(self.by_key[key], self.position[key], "ready", outputs)
        self.reporter.finished(key, self.changes[key].action.value, seconds)

    def failed(self, key: str, error: BaseException) -> None:
        self.reporter.failed(key, error)


def after(durable: Durable, work: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """The work, once what was recorded before it is durable."""
    durable()
    return work()


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
