"""What every command shares: the typer app, the console, the configuration options, Ctrl-C.

Exit codes (the README has the table): 0 done, 1 failed (or drift, for status; changes pending,
for deploy --plan --detailed-exitcode), 2 the user asked for something
invalid and nothing was changed, 130 interrupted.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from taskmgmt_deploy.cli.console import Console
from taskmgmt_deploy.core.models import Action, Change, Resource
from taskmgmt_deploy.errors import ConfigError, TaskmgmtError, UserError
from taskmgmt_deploy.stack.config import Settings, load_settings, read_dotenv

# Command groups of --help, in this order; within a group, the commands in COMMAND_ORDER first.
STACK_PANEL = "Stack"
CI_PANEL = "From CI"
TRY_PANEL = "Try it"
LOCAL_PANEL = "Local"
REPAIR_PANEL = "Repair"
PANELS = (STACK_PANEL, CI_PANEL, TRY_PANEL, LOCAL_PANEL, REPAIR_PANEL)
COMMAND_ORDER = (
    "deploy",
    "status",
    "destroy",
    "outputs",
    "migrate",
    "logs",
    "preflight",
    "policy",
    "smoke",
    "invoke",
    "serve",
    "psql",
)


class _GroupedCommands(TyperGroup):
    """Lists commands by group, then in COMMAND_ORDER, then as registered."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        def rank(name: str) -> tuple[int, int]:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            order = COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)
            return (PANELS.index(panel) if panel in PANELS else len(PANELS), order)

        return sorted(super().list_commands(ctx), key=rank)


app = typer.Typer(
    name="taskmgmt",
    cls=_GroupedCommands,
    help="Provision, check and remove the two-region Aurora DSQL task-management backend.",
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.out.print(f"taskmgmt {version('taskmgmt')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True, metavar=""
        ),
    ] = False,
) -> None:
    pass


# parameter name -> (configuration key, option declarations, help)
_OPTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "env": ("ENVIRONMENT", ("--env",), "Environment name: 1-16 lowercase letters, digits, dashes. \\[default: dev]"),
    "primary_region": (
        "PRIMARY_REGION",
        ("--primary-region",),
        "Region of the first DSQL cluster. \\[default: us-east-1]",
    ),
    "secondary_region": (
        "SECONDARY_REGION",
        ("--secondary-region",),
        "Region of the peer cluster, in the same DSQL region set. \\[default: us-west-2]",
    ),
    "witness_region": (
        "WITNESS_REGION",
        ("--witness-region",),
        "Witness region of the pair. \\[default: the set's remaining region]",
    ),
    "prefix": ("CLUSTER_NAME_PREFIX", ("--prefix",), "Prefix of every resource name. \\[default: task-mgmt]"),
    "log_retention_days": (
        "LOG_RETENTION_DAYS",
        ("--log-retention-days",),
        "Log retention in days, one CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, ... 3653. \\[default: 7]",
    ),
    "lambda_memory": ("LAMBDA_MEMORY_SIZE", ("--lambda-memory",), "Function memory in MB. \\[default: 512]"),
    "lambda_timeout": ("LAMBDA_TIMEOUT", ("--lambda-timeout",), "Function timeout in seconds. \\[default: 60]"),
    "alarm_email": (
        "ALARM_EMAIL",
        ("--alarm-email",),
        "Email address the alarms notify (it must confirm the subscription). \\[default: none]",
    ),
    "kms_key": (
        "KMS_KEY",
        ("--kms-key",),
        "Customer managed KMS key for the clusters, alarm topics and log groups: alias/NAME in both "
        "regions, or a multi-Region key id mrk-... \\[default: AWS owned keys]",
    ),
    "reserved_concurrency": (
        "LAMBDA_RESERVED_CONCURRENCY",
        ("--reserved-concurrency",),
        "Concurrency reserved for the function in each region. \\[default: none]",
    ),
    "api_auth": ("API_AUTH", ("--api-auth",), "Who may call the APIs: iam (SigV4) or jwt. \\[default: iam]"),
    "jwt_issuer": ("JWT_ISSUER", ("--jwt-issuer",), "With --api-auth jwt: the token issuer (https)."),
    "jwt_audience": ("JWT_AUDIENCE", ("--jwt-audience",), "With --api-auth jwt: the audiences, comma-separated."),
    "jwt_login_url": ("JWT_LOGIN_URL", ("--jwt-login-url",), "With --api-auth jwt: the issuer's login page."),
    "cors_origins": (
        "CORS_ORIGINS",
        ("--cors-origins",),
        "Origins allowed to call the HTTP API from a browser, comma-separated. \\[default: none]",
    ),
    "api_throttle_burst": (
        "API_THROTTLE_BURST",
        ("--api-throttle-burst",),
        "Burst limit of each API stage. \\[default: 100]",
    ),
    "api_throttle_rate": (
        "API_THROTTLE_RATE",
        ("--api-throttle-rate",),
        "Requests per second of each API stage. \\[default: 50]",
    ),
    "profile": ("AWS_PROFILE", ("--profile",), "AWS profile, as with the AWS CLI."),
    "endpoint_url": ("AWS_ENDPOINT_URL", ("--endpoint-url",), "Send every AWS call here (an emulator)."),
    "state": (
        "TASKMGMT_STATE",
        ("--state",),
        "Where the manifest and lock live: a local directory, or s3://BUCKET/PREFIX for a team "
        "(`taskmgmt state init`). \\[default: the --state-dir]",
    ),
    "state_dir": (
        "TASKMGMT_STATE_DIR",
        ("--state-dir",),
        "The local directory of manifests, locks and the sandbox; --state wins over it. \\[default: ./.taskmgmt]",
    ),
    "max_workers": (
        "TASKMGMT_MAX_WORKERS",
        ("--max-workers",),
        "Changes made at once; reads run up to twice as many. \\[default: 8]",
    ),
}


CONFIG_PANEL = "Configuration (flag > environment > .env > default)"

# How --help shows the integer options; the rules themselves are checked in one place, stack/config.py.
_METAVARS = {
    "log_retention_days": "DAYS",
    "lambda_memory": "INT 128-10240",
    "lambda_timeout": "INT 1-900",
    "max_workers": "INT 1-64",
    "reserved_concurrency": "INT 1-100000",
    "alarm_email": "EMAIL",
    "kms_key": "KEY",
    "api_auth": "iam|jwt",
    "jwt_issuer": "URL",
    "jwt_audience": "IDS",
    "jwt_login_url": "URL",
    "cors_origins": "ORIGINS",
    "api_throttle_burst": "INT 0-5000",
    "api_throttle_rate": "INT 0-10000",
    "state": "DIR|S3_URL",
    "state_dir": "DIR",
}
_FLAG_OF = {key: decls[0] for key, decls, _ in _OPTIONS.values()}


def _config_option(name: str, kind: Any, default: Any, *decls: str, **option: Any) -> inspect.Parameter:
    """A keyword-only option of the configuration panel of --help."""
    annotation = Annotated[kind, typer.Option(*decls, rich_help_panel=CONFIG_PANEL, **option)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _common_parameters() -> list[inspect.Parameter]:
    return [
        *(
            _config_option(
                name, str | None, None, *decls, help=text, show_default=False, metavar=_METAVARS.get(name, "TEXT")
            )
            for name, (_, decls, text) in _OPTIONS.items()
        ),
        _config_option("sandbox", bool, False, "--sandbox", help="Work on the local sandbox instead of AWS."),
        # Each of a pair is a flag of its own: as one "--x/--no-x" option, --help gives the
        # negative forms a column of their own, which squeezed every name on 80 columns.
        *(
            _config_option(name + suffix, bool, False, flag, show_default=False, help=text)
            for name, _key, pair in _FLAG_PAIRS
            for suffix, flag, text in zip(("_on", "_off"), *pair, strict=True)
        ),
    ]


# (parameter name, setting, ((flag on, flag off), (help on, help off)))
_FLAG_PAIRS = (
    (
        "deletion_protection",
        "DELETION_PROTECTION",
        (
            ("--deletion-protection", "--no-deletion-protection"),
            ("DSQL deletion protection on. \\[default: on for prod and staging]", "DSQL deletion protection off."),
        ),
    ),
    (
        "cluster_policy",
        "DSQL_CLUSTER_POLICY",
        (
            ("--cluster-policy", "--no-cluster-policy"),
            (
                "A DSQL resource policy: only the function role may connect, only this account as admin. "
                "\\[default: off]",
                "No DSQL resource policy.",
            ),
        ),
    ),
)


def with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the configuration options to a command and hand it a `flags` mapping instead."""
    common = _common_parameters()
    signature = inspect.signature(fn, eval_str=True)  # a preset __signature__ is not evaluated later
    own = [p for p in signature.parameters.values() if p.name != "flags"]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags: dict[str, str | None] = {key: kwargs.pop(name) for name, (key, _, _) in _OPTIONS.items()}
        for name, key, ((on, off), _) in _FLAG_PAIRS:
            given = kwargs.pop(name + "_on"), kwargs.pop(name + "_off")
            if all(given):
                raise UserError(f"{on} and {off} conflict: give one")
            flags[key] = "true" if given[0] else "false" if given[1] else None
        flags["SANDBOX"] = "true" if kwargs.pop("sandbox") else None
        return fn(flags=flags, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + common)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{p.name: p.annotation for p in common}}
    return wrapper


def load_named(flags: Mapping[str, str | None]) -> Settings:
    """The settings; a value breaking a rule is named as the user gave it: by the flag typed,
    or by the variable and where it was set (the environment or .env)."""
    try:
        return load_settings(flags, os.environ, Path.cwd())
    except ConfigError as exc:
        raise UserError(f"{_as_given(exc.key, exc.value, flags)} is invalid: {exc.rule}") from None


def _as_given(key: str, value: object, flags: Mapping[str, str | None]) -> str:
    if flags.get(key) not in (None, "") and key in _FLAG_OF:
        return f"{_FLAG_OF[key]} {value!r}"
    if os.environ.get(key):
        return f"{key}={value!r} (from the environment)"
    dotenv = Path.cwd() / ".env"
    if key in read_dotenv(dotenv):
        return f"{key}={value!r} (from {dotenv})"
    return f"{key}={value!r}"


SANDBOX_ISSUER = "http://127.0.0.1/_sandbox/issuer"  # stands for the sandbox's issuer until its URL is known


def _given(key: str, flags: Mapping[str, str | None]) -> str | None:
    return flags.get(key) or os.environ.get(key) or read_dotenv(Path.cwd() / ".env").get(key)


def _sandbox_issuer_defaults(flags: dict[str, str | None]) -> bool:
    """API_AUTH=jwt in the sandbox without an issuer: the sandbox's own (emulator/gateway/issuer.py)."""
    if (_given("API_AUTH", flags) or "").lower() != "jwt" or _given("JWT_ISSUER", flags):
        return False
    from taskmgmt_deploy.emulator.gateway.issuer import DEFAULT_AUDIENCE

    flags["JWT_ISSUER"] = SANDBOX_ISSUER
    flags["JWT_AUDIENCE"] = _given("JWT_AUDIENCE", flags) or DEFAULT_AUDIENCE
    return True


def settings_from(flags: dict[str, str | None], start_sandbox: bool = False) -> Settings:
    own_issuer = bool(flags.get("SANDBOX")) and _sandbox_issuer_defaults(flags)
    settings = load_named(flags)
    if not flags.get("SANDBOX"):
        return settings
    for flag, key in (("--endpoint-url", "AWS_ENDPOINT_URL"), ("--profile", "AWS_PROFILE")):
        if flags.get(key):
            raise UserError(f"{flag} and --sandbox conflict: the sandbox is its own AWS")
    from taskmgmt_deploy.sandbox.control import Sandbox

    sandbox = Sandbox(settings.state_dir / "sandbox")
    if start_sandbox:
        for line in sandbox.start():
            console.info(line)
    if own_issuer:
        from taskmgmt_deploy.emulator.gateway.issuer import issuer_url

        issuer = issuer_url(sandbox.endpoint_url)
        client = settings.stack.jwt_audience[0] if settings.stack.jwt_audience else ""
        login = settings.stack.jwt_login_url or f"{issuer}/login?client_id={client}&response_type=token"
        settings = replace(settings, stack=replace(settings.stack, jwt_issuer=issuer, jwt_login_url=login))
    return replace(
        settings,
        sandbox=True,
        endpoint_url=sandbox.endpoint_url,
        database_url=sandbox.database_url,
        profile=None,
        state_dir=sandbox.root,
        state_url=None,  # the sandbox is its own AWS: its state stays beside it
    )


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    """First Ctrl-C: finish the calls in flight, save the manifest, exit 130. Second: stop now."""
    cancel = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        console.warn(
            "interrupted: finishing the calls in flight and saving the manifest (press Ctrl-C again to stop at once)"
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def errors_exit_2(when: bool) -> Iterator[None]:
    """Where exit 1 means "changes pending" or "drift" (plan --detailed-exitcode, status), an
    error must not look like one: every failure exits 2."""
    try:
        yield
    except TaskmgmtError as exc:
        if when and exc.exit_code == 1:
            exc.exit_code = 2
        raise


def elapsed_since() -> Callable[[], float]:
    """Seconds since now, on the runtime's clock (the tests' clock is fake)."""
    from taskmgmt_deploy.usecases import factory

    clock = factory.RUNTIME.clock
    start = clock.now()
    return lambda: clock.now() - start


def summary(changes: list[tuple[Resource, Change]]) -> str:
    counts = {action: sum(1 for _, c in changes if c.action is action) for action in Action}
    return ", ".join(
        f"{counts[a]} to {a.value}" if a in (Action.CREATE, Action.UPDATE, Action.DELETE) else f"{counts[a]} {a.value}"
        for a in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP, Action.SKIP)
        if counts[a]
    )


def confirm_changes(preview: list[tuple[Resource, Change]], verbose: bool = False) -> bool:
    changes = [(r, c) for r, c in preview if c.mutates]
    console.plan(preview, verbose=verbose, stream="err")
    return ask(
        f"Apply these {len(changes)} changes?",
        f"deploy would change {len(changes)} resources and there is no terminal to ask: "
        "pass --yes to apply, or --plan to only look",
    )


def ask(question: str, without_terminal: str) -> bool:
    """The user's yes or no; with no terminal to ask on, a user error saying what to pass instead."""
    if not sys.stdin.isatty():
        raise UserError(without_terminal)
    return console.confirm(question)
