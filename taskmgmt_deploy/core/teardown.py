"""Destroy: nothing while protection is on (unless forced); then every resource after the
ones that depend on it; then a sweep by tags for anything the manifest missed; and a report
of what, if anything, is left."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.interfaces import Finder, Reporter
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import Observed, Record, Resource, record_of
from taskmgmt_deploy.core.scheduler import Scheduler
from taskmgmt_deploy.core.step import Step, step_for
from taskmgmt_deploy.errors import DeployFailed, Interrupted, ProtectedError, one_line


@dataclass
class DestroyReport:
    deleted: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # (what, why)


class Teardown:
    def __init__(
        self,
        steps: Mapping[str, Step],
        manifest: Manifest,
        reporter: Reporter,
        scheduler: Scheduler,
        finder: Finder | None,
    ):
        self.steps, self.manifest, self.reporter = steps, manifest, reporter
        self.scheduler, self.finder = scheduler, finder

    def run(
        self, items: list[tuple[Resource, Record | None]], observed: Mapping[str, Observed | None], force: bool
    ) -> DestroyReport:
        targets = self._targets(items, observed)
        self._guard(targets, observed, force)
        report = self.delete(targets, force)
        self._sweep(force, report)
        if not report.left and not self.manifest.records:
            self.manifest.delete_file()
        return report

    def _targets(
        self, items: list[tuple[Resource, Record | None]], observed: Mapping[str, Observed | None]
    ) -> dict[str, Record]:
        """Every manifest record, plus blueprint resources found live by name or tag that are
        resources of their own (not a local package, nor the schema inside the clusters)."""
        targets: dict[str, Record] = {}
        for index, (res, record) in enumerate(items):
            found = observed.get(res.key)
            step = self._step_for(res.kind)
            if record is not None:
                targets[res.key] = record
            elif found is not None and not step.local and not step.goes_with_others:
                targets[res.key] = record_of(res, 10_000 + index, "ready", found.outputs)
        return targets

    def _guard(self, targets: Mapping[str, Record], observed: Mapping[str, Observed | None], force: bool) -> None:
        refusals = [
            reason
            for key, rec in targets.items()
            if (reason := self._step_for(rec.kind).guard_delete(rec, observed.get(key)))
        ]
        if refusals and not force:
            raise ProtectedError(
                "; ".join(refusals) + ". Nothing was changed. "
                "Run `taskmgmt destroy --force` to turn protection off and delete"
            )

    def delete(self, targets: dict[str, Record], force: bool) -> DestroyReport:
        """Delete these records' resources, dependents first (deploy removes what it no longer has)."""
        report = DestroyReport()
        self._delete_walk(targets, force, report)
        return report

    def _delete_walk(self, targets: dict[str, Record], force: bool, report: DestroyReport) -> None:
        """The deploy order backwards: each target after every target that depends on it."""
        order = sorted(targets, key=lambda key: -targets[key].position)
        self.reporter.begin("destroy", len(order))
        failures = self.scheduler.walk(order, _dependents(targets), _DeleteWork(self, targets, force, report))
        if failures:
            raise DeployFailed("destroy", failures)
        if self.scheduler.cancel.is_set():
            raise Interrupted(
                "interrupted: in-flight deletes finished and the manifest was saved; run destroy again to finish"
            )

    def _sweep(self, force: bool, report: DestroyReport) -> None:
        """Delete what still carries this stack's tags, then report what is left."""
        if self.finder is None:
            return
        strays = {rec.key: rec for rec in self.finder.find() if rec.kind in self.steps}
        errors: dict[str, str] = {}
        if strays:
            self.reporter.phase(f"sweeping {len(strays)} resources found by tag")
            try:
                self._delete_walk(strays, force, report)
            except DeployFailed as exc:
                errors = {f.key: one_line(f.cause) for f in exc.failures}
        for rec in self.finder.find():
            why = errors.get(rec.key, "still exists after delete; check it in the console")
            report.left.append((f"{rec.kind} {rec.arn or rec.name} ({rec.region or 'global'})", why))

    def _step_for(self, kind: str) -> Step:
        return step_for(self.steps, kind)


class _DeleteWork:
    """One delete walk: mark each record as deleting when its delete starts, forget it once done."""

    def __init__(self, teardown: Teardown, targets: Mapping[str, Record], force: bool, report: DestroyReport):
        self.teardown, self.targets, self.force, self.report = teardown, targets, force, report
        self.manifest, self.reporter = teardown.manifest, teardown.reporter

    def plan(self, key: str) -> bool:
        return True  # every target has a delete to run

    def start(self, key: str) -> Callable[[], Mapping[str, Any]]:
        record = self.targets[key]
        durable = None
        if key in self.manifest.records:
            self.manifest.put(replace(record, state="deleting"))
            durable = self.manifest.save()
        step = self.teardown._step_for(record.kind)
        ctx = StepContext(
            clock=self.teardown.scheduler.clock,
            cancel=self.teardown.scheduler.cancel,
            force=self.force,
            progress=lambda message: self.reporter.progress(key, message),
        )
        self.reporter.started(key, "delete")

        def run() -> Mapping[str, Any]:
            if durable is not None:
                durable()  # the delete starts once it is recorded as started
            if not step.local:
                step.delete(record, ctx)
            return {}

        return run

    def finished(self, key: str, result: Mapping[str, Any], seconds: float) -> None:
        """Forget a deleted resource at once, so a crash right after never deletes it twice."""
        self.manifest.forget(key)
        self.manifest.save()
        self.report.deleted.append(key)
        self.reporter.finished(key, "delete", seconds)

    def failed(self, key: str, error: BaseException) -> None:
        self.reporter.failed(key, error)


def _dependents(targets: Mapping[str, Record]) -> dict[str, set[str]]:
    """For each target, the targets that depend on it (and so are deleted before it)."""
    dependents: dict[str, set[str]] = {key: set() for key in targets}
    for key, rec in targets.items():
        for dep in rec.depends_on:
            if dep in dependents:
                dependents[dep].add(key)
    return dependents
