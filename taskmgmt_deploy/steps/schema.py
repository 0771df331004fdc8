"""The database schema as a deploy step: migrations, the app role, its IAM mapping and grants."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.retry import call_with_retry
from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Action, Change, Observed, Record, Resource
from taskmgmt_deploy.core.step import Step
from taskmgmt_deploy.database import connect as connections
from taskmgmt_deploy.database.migrate import Migrator
from taskmgmt_deploy.database.sqlfiles import load_migrations


@dataclass(frozen=True)
class SchemaTarget:
    """Where the schema goes: a PostgreSQL URL, the DSQL cluster, the PostgreSQL database
    standing in for the cluster (the sandbox), or nowhere (and why)."""

    migrations: Path
    database_url: str | None = None
    aws: AwsClients | None = None
    skip_reason: str | None = None
    database_for: Callable[[str], str] | None = None  # a cluster endpoint -> its stand-in's URL

    @property
    def dsql(self) -> bool:
        return self.database_url is None and self.database_for is None

    def migrator(
        self,
        endpoint: str | None,
        region: str,
        role_arn: str | None,
        clock: Clock | None = None,
        progress: Callable[[str], None] = lambda message: None,
    ) -> Migrator:
        if self.database_url:
            connect = connections.from_url(self.database_url)
        elif self.database_for is not None:
            assert endpoint
            connect = connections.from_url(self.database_for(endpoint))
        else:
            assert self.aws is not None and endpoint
            connect = connections.dsql_admin(self.aws.get("dsql", region), endpoint, region)
        return Migrator(
            connect, load_migrations(self.migrations), dsql=self.dsql, role_arn=role_arn, clock=clock, progress=progress
        )


def is_connection_refused(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None


class DbSchemaStep(Step):
    kind = "db_schema"
    goes_with_others = True

    def __init__(self, target: SchemaTarget):
        self.target = target

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        if self.target.skip_reason:
            return Observed(outputs={}, state="skipped")
        recorded = record.outputs if record else {}
        endpoint = recorded.get("endpoint")
        if self.target.database_url is None and not endpoint:
            return None  # never applied: the cluster's endpoint is known once it exists
        try:
            state = self.target.migrator(endpoint, res.spec["region"], recorded.get("role_arn")).inspect()
        except psycopg.OperationalError:
            return Observed(outputs=dict(recorded), live={"reachable": False}, state="unreachable")
        if state.latest is None:
            return None  # an empty database: the schema is still to be created
        outputs = {**recorded, "id": state.latest, "version": state.latest}
        return Observed(
            outputs=outputs,
            state=f"at {state.latest}",
            live={
                "reachable": True,
                "endpoint": endpoint,
                "pending": state.pending,
                "app_role": state.role_exists,
                "role_mapped": state.role_mapped,
                "missing_grants": state.missing_grants,
            },
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "reachable": True,
            # The schema is read where it was applied; a cluster made again since (deleted
            # outside taskmgmt, or a sandbox started anew) has another endpoint and an empty
            # database, even when the old one still answers.
            "endpoint": None if self.target.database_url else spec.get("endpoint"),
            "pending": [],
            "app_role": True,
            "role_mapped": True if self.target.dsql else None,
            "missing_grants": [],
        }

    def plan(self, res: Resource, spec: Mapping[str, Any], observed: Observed | None) -> Change:
        if observed is not None and observed.state == "skipped":
            return Change(Action.SKIP, (self.target.skip_reason or "skipped",))
        return super().plan(res, spec, observed)

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        endpoint = None if self.target.database_url else spec["endpoint"]
        migrator = self.target.migrator(endpoint, spec["region"], spec["role_arn"], ctx.clock, ctx.progress)
        # A cluster that has just turned ACTIVE can refuse the first connections.
        done = call_with_retry(migrator.apply, is_connection_refused, "database_connect", ctx.clock, ctx.progress)
        for action in done:
            ctx.progress(action)
        latest = migrator.migrations[-1].version if migrator.migrations else None
        return {
            "id": latest or "empty",
            "version": latest,
            "endpoint": endpoint,
            "region": spec["region"],
            "role_arn": spec["role_arn"],
        }

    def delete(self, record: Record, ctx: StepContext) -> None:
        """The schema goes with the clusters; nothing to do on its own."""

    def health(self, observed: Observed) -> str | None:
        return "the database cannot be reached" if observed.state == "unreachable" else None
