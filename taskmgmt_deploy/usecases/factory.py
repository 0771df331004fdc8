"""Composition root: Settings -> AWS clients, steps, manifest, lock and engine.

Commands get everything they work with from `open_stack`. What tests need to swap (the
clock, the boto3 session, the package target) lives in one `Runtime` object. It only wires:
what a command does beyond one engine call is a use case beside it (deploy, rebuild, migrate).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from taskmgmt_deploy.assets import lambda_dir, sql_dir
from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import NO_CREDENTIALS, error_message
from taskmgmt_deploy.aws.finder import TagFinder
from taskmgmt_deploy.core.clock import Clock, SystemClock
from taskmgmt_deploy.core.engine import Engine
from taskmgmt_deploy.core.interfaces import Reporter
from taskmgmt_deploy.core.lock import EnvLock, lock_path
from taskmgmt_deploy.core.manifest import Manifest, manifest_path
from taskmgmt_deploy.core.models import Resource
from taskmgmt_deploy.core.scheduler import read_workers
from taskmgmt_deploy.core.state import Document, EnvState, LocalDocument, Lock
from taskmgmt_deploy.core.step import Step
from taskmgmt_deploy.errors import ManifestError, UserError
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import Settings, StackConfig
from taskmgmt_deploy.steps.apigateway import HttpApiStep, WebSocketApiStep
from taskmgmt_deploy.steps.cloudwatch import DashboardStep, MetricAlarmStep
from taskmgmt_deploy.steps.dsql import DsqlClusterStep, DsqlPeeringStep
from taskmgmt_deploy.steps.dsql_policy import DsqlClusterPolicyStep
from taskmgmt_deploy.steps.events import EventBusStep, EventRuleStep, EventTargetStep
from taskmgmt_deploy.steps.iam import IamRolePolicyStep, IamRoleStep
from taskmgmt_deploy.steps.kms import KmsKeyStep
from taskmgmt_deploy.steps.lambda_fn import (
    LambdaConcurrencyStep,
    LambdaFunctionStep,
    LambdaInvokeConfigStep,
    LambdaPermissionStep,
)
from taskmgmt_deploy.steps.logs import LogGroupStep
from taskmgmt_deploy.steps.package import LambdaPackageStep
from taskmgmt_deploy.steps.packaging import LAMBDA_ARM64, Installer, PackageBuilder, Target, pip_install, this_machine
from taskmgmt_deploy.steps.schema import DbSchemaStep, SchemaTarget
from taskmgmt_deploy.steps.sns import SnsSubscriptionStep, SnsTopicStep
from taskmgmt_deploy.steps.sqs import SqsQueuePolicyStep, SqsQueueStep

# config key -> StackConfig field that cannot change under an existing deployment
_FIXED = {
    "CLUSTER_NAME_PREFIX": "prefix",
    "PRIMARY_REGION": "primary_region",
    "SECONDARY_REGION": "secondary_region",
    "WITNESS_REGION": "witness_region",
}


def _default_cache() -> Path:
    base = os.environ.get("TASKMGMT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "taskmgmt"
    )
    return Path(base)


def default_session(settings: Settings) -> boto3.Session:
    core = botocore.session.Session()
    # Parsing botocore's service models is most of the cost of a client; a process that opens
    # the stack more than once (tests, serve) parses each model once.
    core.register_component("data_loader", _shared_loader())
    if settings.sandbox:  # the emulator takes any credentials; never use real ones with it
        return boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", botocore_session=core)
    session = boto3.Session(profile_name=settings.profile, botocore_session=core)
    core.get_scoped_config()  # an unknown profile fails here, as it does without the shared loader
    return session


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


@dataclass
class Runtime:
    clock: Clock = field(default_factory=SystemClock)
    session_factory: Callable[[Settings], boto3.Session] = default_session
    package_target: Target = LAMBDA_ARM64
    installer: Installer = pip_install
    cache_dir: Path = field(default_factory=_default_cache)
    # AwsClients by what they were made from: a process that opens the stack more than once
    # (serve, tests) builds each botocore client once
    _clients: dict[tuple[Any, ...], AwsClients] = field(default_factory=dict, repr=False, compare=False)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def clients(self, settings: Settings) -> AwsClients:
        # The session reads credentials, profile and endpoint from AWS_* variables: they are part of the key.
        aws_environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
        pool = max(16, read_workers(settings.max_workers))  # room for the read phase
        key = (
            self.session_factory,
            settings.profile,
            settings.endpoint_url,
            settings.sandbox,
            settings.stack.primary_region,
            pool,
            aws_environment,
        )
        with self._clients_lock:
            made = self._clients.get(key)
            if made is None:
                try:
                    session = self.session_factory(settings)
                except ProfileNotFound as exc:
                    raise UserError(f"AWS_PROFILE={settings.profile!r} is invalid: {exc}") from None
                made = AwsClients(
                    session,
                    endpoint_url=settings.endpoint_url,
                    home_region=settings.stack.primary_region,
                    max_pool=pool,
                )
                self._clients[key] = made
            return made


RUNTIME = Runtime()


@dataclass
class Stack:
    settings: Settings
    resources: list[Resource]
    manifest: Manifest
    engine: Engine
    aws: AwsClients


def schema_target(settings: Settings, aws: AwsClients | None) -> SchemaTarget:
    if settings.sandbox and settings.database_url:  # each cluster pair is a database of the sandbox's PostgreSQL
        from functools import partial

        from taskmgmt_deploy.sandbox.databases import database_url

        return SchemaTarget(sql_dir(), database_for=partial(database_url, settings.database_url))
    if settings.database_url:
        return SchemaTarget(sql_dir(), database_url=settings.database_url)
    if settings.endpoint_url:
        return SchemaTarget(
            sql_dir(),
            skip_reason=f"no database behind the AWS emulator at {settings.endpoint_url}: "
            "set TASKMGMT_DATABASE_URL (the sandbox does)",
        )
    return SchemaTarget(sql_dir(), aws=aws)


def make_steps(aws: AwsClients, builder: PackageBuilder, schema: SchemaTarget) -> dict[str, Step]:
    steps: list[Step] = [
        LambdaPackageStep(builder),
        DbSchemaStep(schema),
        IamRoleStep(aws),
        IamRolePolicyStep(aws),
        KmsKeyStep(aws),
        DsqlClusterStep(aws),
        DsqlPeeringStep(aws),
        DsqlClusterPolicyStep(aws),
        SqsQueueStep(aws),
        SqsQueuePolicyStep(aws),
        EventBusStep(aws),
        EventRuleStep(aws),
        EventTargetStep(aws),
        LogGroupStep(aws),
        LambdaFunctionStep(aws),
        LambdaInvokeConfigStep(aws),
        LambdaPermissionStep(aws),
        LambdaConcurrencyStep(aws),
        SnsTopicStep(aws),
        SnsSubscriptionStep(aws),
        MetricAlarmStep(aws),
        DashboardStep(aws),
        HttpApiStep(aws),
        WebSocketApiStep(aws),
    ]
    return {step.kind: step for step in steps}


def package_builder(settings: Settings, runtime: Runtime | None = None) -> PackageBuilder:
    """For Lambda's arm64 platform; in the sandbox, for this machine, whose Python runs it."""
    runtime = runtime or RUNTIME
    target = this_machine() if settings.sandbox else runtime.package_target
    return PackageBuilder(lambda_dir(), runtime.cache_dir / "packages", target, runtime.installer)


def aws_clients(settings: Settings, runtime: Runtime | None = None) -> AwsClients:
    return (runtime or RUNTIME).clients(settings)


def caller_account(aws: AwsClients) -> str:
    """The account the credentials belong to; a user error when there are none or they fail."""
    try:
        return aws.account_id()
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(NO_CREDENTIALS) from None
    except EndpointConnectionError as exc:
        raise UserError(f"cannot reach AWS: {exc}") from None
    except ClientError as exc:
        raise UserError(f"AWS rejected the credentials: {error_message(exc)}") from None


def env_state(settings: Settings, aws: AwsClients | None = None, runtime: Runtime | None = None) -> EnvState:
    """The environment's manifest document and lock: files under the state directory, or
    objects in S3 (TASKMGMT_STATE=s3://...)."""
    env = settings.stack.env
    if settings.state_url is None:
        return EnvState(
            LocalDocument(manifest_path(settings.state_dir, env)), EnvLock(lock_path(settings.state_dir, env), env)
        )
    from taskmgmt_deploy.aws.s3state import s3_state

    runtime = runtime or RUNTIME
    aws = aws or aws_clients(settings, runtime)
    return s3_state(aws.get("s3"), settings.state_url, env, runtime.clock)


def load_manifest(settings: Settings, document: Document | None = None) -> Manifest | None:
    manifest = Manifest.load(document or env_state(settings).manifest)
    if manifest is not None:
        check_compatible(manifest, settings.stack)
    return manifest


def require_manifest(settings: Settings, document: Document | None = None) -> Manifest:
    document = document or env_state(settings).manifest
    manifest = load_manifest(settings, document)
    if manifest is None:
        raise ManifestError(
            f"no deployment of environment '{settings.stack.env}' is recorded ({document.where} "
            "does not exist); deploy it first, or find its resources with "
            "`taskmgmt status --rebuild`" + sandbox_hint(settings)
        )
    return manifest


def sandbox_hint(settings: Settings) -> str:
    """When the environment is deployed only in the sandbox, a hint to add --sandbox."""
    if settings.sandbox or not manifest_path(settings.state_dir / "sandbox", settings.stack.env).exists():
        return ""
    return f"; environment '{settings.stack.env}' is deployed in the sandbox: add --sandbox"


def check_compatible(manifest: Manifest, stack: StackConfig) -> None:
    if manifest.env != stack.env:
        raise ManifestError(f"{manifest.where} describes environment '{manifest.env}', not '{stack.env}'")
    for key, attr in _FIXED.items():
        recorded = getattr(manifest.config, attr) if manifest.config else None
        if recorded is not None and recorded != getattr(stack, attr):
            raise UserError(
                f"{key}={getattr(stack, attr)!r} is invalid: environment '{stack.env}' was "
                f"deployed with {key}={recorded!r}; destroy it first or use another --env"
            )


def clients_for(stack: StackConfig) -> list[tuple[str, str | None]]:
    regional = ("dsql", "sqs", "events", "logs", "lambda", "cloudwatch", "sns") + (("kms",) if stack.kms_key else ())
    return [("iam", None)] + [(service, region) for region in stack.regions for service in regional]


def recorded_config(manifest: Manifest) -> StackConfig:
    if manifest.config is None:
        raise ManifestError(f"manifest {manifest.where} records no config; rebuild it with `taskmgmt status --rebuild`")
    return manifest.config


def env_lock(settings: Settings) -> Lock:
    return env_state(settings).lock


def take_lock(settings: Settings, command: str, say: Callable[[str], None], state: EnvState | None = None) -> Lock:
    """The environment's lock, held; says so when it takes over from a run that died holding it."""
    held = (state or env_state(settings)).lock
    previous = held.acquire(command)
    if previous is not None and previous.expires_at:
        say(f"took over the lock, whose lease had passed: resuming after an interrupted run: {previous.describe()}")
    elif previous is not None:
        say(f"resuming after an interrupted run: {previous.describe()} did not finish")
    return held


def make_engine(
    settings: Settings,
    aws: AwsClients,
    manifest: Manifest,
    reporter: Reporter,
    runtime: Runtime,
    cancel: threading.Event | None = None,
    finder: TagFinder | None = None,
) -> Engine:
    steps = make_steps(aws, package_builder(settings, runtime), schema_target(settings, aws))
    return Engine(
        steps,
        manifest,
        reporter=reporter,
        max_workers=settings.max_workers,
        clock=runtime.clock,
        cancel=cancel,
        finder=finder,
    )


@contextmanager
def open_stack(
    settings: Settings,
    reporter: Reporter,
    *,
    command: str,
    lock: bool,
    existing: bool,
    cancel: threading.Event | None = None,
    runtime: Runtime | None = None,
    unrecorded_ok: bool = False,
) -> Iterator[Stack]:
    """Lock the environment (if asked), load its manifest, check the account, wire the engine.

    existing=True (status, destroy): the environment must have a manifest, and the wanted
    state is the configuration its last deploy recorded. Otherwise (deploy, plan) it is the
    configuration given now. unrecorded_ok (destroy): without a manifest, the configuration
    given now, so that what exists of it is still found by name and tags.
    """
    runtime = runtime or RUNTIME
    aws = aws_clients(settings, runtime)
    state = env_state(settings, aws, runtime)
    held = take_lock(settings, command, reporter.phase, state) if lock else None
    manifest: Manifest | None = None
    try:
        document = state.manifest
        manifest = (
            require_manifest(settings, document)
            if existing and not unrecorded_ok
            else load_manifest(settings, document)
        )
        stack_config = recorded_config(manifest) if existing and manifest else settings.stack
        aws.get("sts")  # first: it loads the endpoint data every other client shares
        warming = threading.Thread(target=aws.prewarm, args=(clients_for(stack_config),), daemon=True)
        warming.start()  # the other clients load while the account check waits on the network
        account = caller_account(aws)
        warming.join()
        if manifest is None:
            manifest = Manifest(
                store=document,
                env=settings.stack.env,
                account_id=account,
                config=settings.stack,
            )
        elif manifest.account_id and manifest.account_id != account:
            raise UserError(
                f"the credentials are for account {account}, but environment "
                f"'{settings.stack.env}' is deployed in account {manifest.account_id}"
            )
        manifest.account_id = account
        engine = make_engine(
            settings,
            aws,
            manifest,
            reporter,
            runtime,
            cancel,
            TagFinder(aws, stack_config.regions, stack_config.tags(), stack_config.name("")),
        )
        yield Stack(settings, blueprint.build(stack_config), manifest, engine, aws)
    finally:
        try:
            if manifest is not None:
                manifest.flush()  # a remote state writes in the background
        finally:
            if held is not None:
                held.release()
