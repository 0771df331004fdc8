"""Working locally and checking a deployment: sandbox, invoke, smoke, serve."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from taskmgmt_deploy.cli.common import (
    LOCAL_PANEL,
    TRY_PANEL,
    app,
    ask,
    console,
    load_named,
    settings_from,
    with_settings,
)
from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.stack.config import read_dotenv

sandbox_app = typer.Typer(
    help="The local sandbox: an AWS emulator and a PostgreSQL in the background.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox", rich_help_panel=LOCAL_PANEL)

StateDir = Annotated[
    str | None,
    typer.Option("--state-dir", help="Where the sandbox lives ({state-dir}/sandbox). \\[default: ./.taskmgmt]"),
]


def _sandbox(state_dir: str | None):

    from taskmgmt_deploy.sandbox.control import Sandbox

    settings = load_named({"TASKMGMT_STATE_DIR": state_dir})
    return Sandbox(settings.state_dir / "sandbox")


@sandbox_app.command("start")
def sandbox_start(state_dir: StateDir = None) -> None:
    """Start the emulator and PostgreSQL on 127.0.0.1 and free ports (does nothing if running)."""
    sandbox = _sandbox(state_dir)
    done = sandbox.start()
    for line in done:
        console.info(line)
    console.success("the sandbox is running" + ("" if done else " (it already was)"))


@sandbox_app.command("stop")
def sandbox_stop(state_dir: StateDir = None) -> None:
    """Stop exactly the processes `sandbox start` started. The emulated AWS account ends with it:
    the next start begins empty (deploy again); the logs and PostgreSQL's files stay."""
    for line in _sandbox(state_dir).stop():
        console.info(line)


@sandbox_app.command("reset")
def sandbox_reset(
    state_dir: StateDir = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop the sandbox and remove all its data: every environment deployed in it, with its
    database, manifest and logs. The next deploy starts from nothing."""
    sandbox = _sandbox(state_dir)
    question = f"Stop the sandbox and delete all its data ({sandbox.root})?"
    if not yes and not ask(question, "sandbox reset needs confirmation and there is no terminal to ask: pass --yes"):
        raise UserError("sandbox reset cancelled; nothing was changed")
    for line in sandbox.reset():
        console.info(line)


@sandbox_app.command("status")
def sandbox_status(
    state_dir: StateDir = None, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """What runs where. Exit 0 when everything runs, 1 when not."""
    sandbox = _sandbox(state_dir)
    components = sandbox.components()
    rows = [
        {"name": c.name, "pid": c.pid, "url": c.url, "running": c.alive(), "log": c.log, "started_at": c.started_at}
        for c in components.values()
    ]
    running = bool(rows) and all(row["running"] for row in rows) and len(rows) == 2
    if as_json:
        console.json({"running": running, "root": str(sandbox.root), "components": rows})
    elif not rows:
        console.info("the sandbox is not running")
    else:
        for row in rows:
            state = "running" if row["running"] else "not running"
            console.key_values({row["name"]: {"state": state, "pid": row["pid"], "url": row["url"], "log": row["log"]}})
    if not running:
        raise typer.Exit(1)


@sandbox_app.command("token")
def sandbox_token(
    state_dir: StateDir = None,
    user: Annotated[str, typer.Option("--user", help="The token's subject (sub).")] = "sandbox-user",
    audience: Annotated[
        str | None,
        typer.Option("--audience", help="Its audience. \\[default: JWT_AUDIENCE's first, or taskmgmt-sandbox]"),
    ] = None,
) -> None:
    """Print a token from the sandbox's OIDC issuer, for APIs deployed with API_AUTH=jwt (an hour's worth).

    Example: curl -H "Authorization: Bearer $(taskmgmt sandbox token)" ...
    """
    from taskmgmt_deploy.emulator.gateway.issuer import DEFAULT_AUDIENCE, issuer_url, request_token

    sandbox = _sandbox(state_dir)
    configured = os.environ.get("JWT_AUDIENCE") or read_dotenv(Path.cwd() / ".env").get("JWT_AUDIENCE") or ""
    aud = audience or next((a.strip() for a in configured.split(",") if a.strip()), DEFAULT_AUDIENCE)
    sys.stdout.write(
        request_token(issuer_url(sandbox.endpoint_url), {"sub": user, "username": user, "aud": aud}) + "\n"
    )


@app.command(rich_help_panel=TRY_PANEL)
@with_settings
def invoke(
    payload: Annotated[str, typer.Option("--payload", help="The event, as JSON or @file.json.")],
    region: Annotated[
        str | None, typer.Option("--region", help="Which region's function. \\[default: the primary]")
    ] = None,
    *,
    flags: dict[str, str | None],
) -> None:
    """Invoke the deployed function and print its response.

    Exit 0 when the function answered (an HTTP answer below 400, or an event applied or
    recognised as a duplicate); 1 when it raised, answered 4xx/5xx or dropped the event.

    Example: taskmgmt invoke --payload '{"httpMethod": "GET", "path": "/tasks"}'
    """
    from taskmgmt_deploy.usecases.factory import open_stack
    from taskmgmt_deploy.usecases.functions import Functions, invoke_failure

    body = _payload(payload)
    settings = settings_from(flags)
    with open_stack(settings, console, command="invoke", lock=False, existing=True) as stack:
        functions = Functions(stack.aws, stack.manifest, deploy_command(settings))
        raw, error = functions.invoke_raw(region or functions.regions[0], body)
    try:
        console.json(json.loads(raw))
    except ValueError:
        sys.stdout.write(raw.decode(errors="replace") + "\n")
    failure = invoke_failure(raw, error)
    if failure:
        console.error(failure)
        raise typer.Exit(1)


def deploy_command(settings) -> str:
    """The command that deploys this environment, for hints."""
    return "taskmgmt deploy" + (" --sandbox" if settings.sandbox else "") + f" --env {settings.stack.env}"


def _payload(text: str) -> bytes:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UserError(f"--payload {text!r} is invalid: {exc.strerror}") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise UserError(f"--payload is invalid: not JSON ({exc})") from None
    return text.encode()


@app.command(rich_help_panel=TRY_PANEL)
@with_settings
def smoke(
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SMOKE_TOKEN", help="With API_AUTH=jwt: a token from the issuer for the HTTP APIs."
        ),
    ] = None,
    *,
    flags: dict[str, str | None],
) -> None:
    """Prove the deployed stack works end to end, one line per check; exit 0 only if all pass.

    Puts a Task Created event on the primary bus, reads the task through the function in
    both regions and over HTTP through each region's HTTP API (signed with your credentials,
    or with --token for API_AUTH=jwt; refused without them), updates it with its version,
    checks a stale version gets 409, completes it, checks its history, and removes it.
    """
    if not run_smoke(settings_from(flags), token):
        raise typer.Exit(1)


def run_smoke(settings, token: str | None = None) -> bool:
    from taskmgmt_deploy.usecases.factory import RUNTIME, open_stack
    from taskmgmt_deploy.usecases.functions import Functions
    from taskmgmt_deploy.usecases.smoke import Check, Smoke

    def report(check: Check) -> None:
        if check.ok:
            console.success(f"ok    {check.name} ({check.seconds:.1f}s): {check.observed}")
        else:
            console.error(f"FAIL  {check.name}: expected {check.expected}, observed {check.observed}")

    with open_stack(settings, console, command="smoke", lock=False, existing=True) as stack:
        apis = _http_apis(stack, settings, token)
        checks = Smoke(Functions(stack.aws, stack.manifest), RUNTIME.clock, report, apis).run()
        if settings.sandbox and all(check.ok for check in checks):
            checks += _live_check(stack, settings, report)
    passed = sum(check.ok for check in checks)
    if passed == len(checks):
        console.success(f"smoke test passed: {passed} checks")
        return True
    console.error(f"smoke test failed: {len(checks) - passed} of {len(checks)} checks failed")
    return False


def _http_apis(stack, settings, token: str | None):
    """Each region's HTTP API as the smoke test calls it; None (and a line saying so) when the
    stack has none. With API_AUTH=jwt a token is needed: the sandbox's issuer makes one."""
    from taskmgmt_deploy.aws.signing import Signer
    from taskmgmt_deploy.core.models import resource_key
    from taskmgmt_deploy.usecases.factory import recorded_config
    from taskmgmt_deploy.usecases.forwarding import Upstream
    from taskmgmt_deploy.usecases.smoke import HttpApis

    config = recorded_config(stack.manifest)
    urls = {}
    for region in config.regions:
        record = stack.manifest.get(resource_key("http_api", "tasks", region))
        if record is None or not record.outputs.get("url"):
            console.info("skip  the HTTP API checks: no HTTP API is deployed in both regions")
            return None
        urls[region] = record.outputs["url"]
    signer = None
    if config.api_auth == "iam":
        signer = Signer(stack.aws.session)
    elif token is None and settings.sandbox and config.jwt_issuer:
        from taskmgmt_deploy.emulator.gateway.issuer import request_token

        token = request_token(config.jwt_issuer, {"aud": config.jwt_audience[0], "sub": "taskmgmt-smoke"})
    elif token is None:
        raise UserError("API_AUTH=jwt: the smoke test needs a token from the issuer: give --token or SMOKE_TOKEN")
    hint = "the HTTP API"
    return HttpApis(
        signed={r: Upstream(url, None, r, signer, hint) for r, url in urls.items()},
        anonymous={r: Upstream(url, None, r, None, hint) for r, url in urls.items()},
        token=token if config.api_auth == "jwt" else None,
    )


def _live_check(stack, settings, report) -> list:
    """A change made through the primary's HTTP API reaches a socket of the secondary's
    WebSocket API within 1 s (usecases/live_check.py); nothing when the stack has no APIs."""
    from taskmgmt_deploy.aws.signing import Signer
    from taskmgmt_deploy.emulator.gateway.issuer import request_token
    from taskmgmt_deploy.usecases.endpoints import Endpoints
    from taskmgmt_deploy.usecases.factory import RUNTIME, recorded_config
    from taskmgmt_deploy.usecases.live_check import LiveCheck

    config = recorded_config(stack.manifest)
    signer = Signer(stack.aws.session) if config.api_auth == "iam" else None
    token = None
    if config.api_auth == "jwt" and config.jwt_issuer:
        token = request_token(config.jwt_issuer, {"aud": config.jwt_audience[0], "sub": "taskmgmt-smoke"})
    check = LiveCheck(Endpoints(stack.aws, config), config.regions, signer, RUNTIME.clock, token)
    if not check.deployed():
        console.info("skip  the live check: no HTTP and WebSocket APIs are deployed in both regions")
        return []
    result = check.run()
    report(result)
    return [result]


@app.command(rich_help_panel=TRY_PANEL)
@with_settings
def serve(
    port: Annotated[str, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = "8080",
    region: Annotated[
        str | None, typer.Option("--region", help="Which region's APIs. \\[default: the primary]")
    ] = None,
    cors_origin: Annotated[
        str,
        typer.Option("--cors-origin", help="The origin browsers may call it from (Access-Control-Allow-Origin)."),
    ] = "*",
    *,
    flags: dict[str, str | None],
) -> None:
    """Serve the task board and its API on http://127.0.0.1:PORT, forwarding to the deployed APIs.

    Requests go to the region's HTTP API (signed with your credentials when API_AUTH=iam), and
    the board's live socket at /live to its WebSocket API. A stack without an HTTP API is served
    by invoking the function. It listens on loopback only, so any origin (`*`) may call it by default.

    Example: taskmgmt serve --sandbox, then open http://127.0.0.1:8080/
    """
    from taskmgmt_deploy.usecases.factory import open_stack, recorded_config
    from taskmgmt_deploy.usecases.functions import Functions
    from taskmgmt_deploy.usecases.serve import is_origin, make_server

    if not is_origin(cors_origin):
        raise UserError(f"--cors-origin {cors_origin!r} is invalid: give * or an origin such as http://localhost:3000")
    if not re.fullmatch(r"\d{1,5}", port) or int(port) > 65535:
        raise UserError(f"--port {port!r} is invalid: must be an integer from 0 to 65535 (0: any free port)")
    port_number = int(port)
    settings = settings_from(flags)
    with open_stack(settings, console, command="serve", lock=False, existing=True) as stack:
        functions = Functions(stack.aws, stack.manifest, deploy_command(settings))
        target = region or functions.regions[0]
        functions.name(target)
        upstream, board = _upstream(stack, recorded_config(stack.manifest), target, deploy_command(settings))
        try:
            if upstream is not None:
                server = make_server(port_number, None, console.info, cors_origin, upstream=upstream, board=board)
            else:
                invoke = functions.invoke_raw
                server = make_server(port_number, lambda body: invoke(target, body), console.info, cors_origin)
        except OSError as exc:
            raise UserError(f"--port {port} is invalid: {exc.strerror}; choose another with --port") from None
        url = f"http://127.0.0.1:{server.server_port}/"
        if upstream is not None:
            console.success(f"the task board of {target}: {url} (forwarding to {upstream.http_url}; Ctrl-C stops)")
        else:
            console.success(f"serving the task API of {target} on {url} by invoking the function (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.info("stopped")
        finally:
            server.server_close()


def _upstream(stack, config, region: str, deploy: str):
    """The region's deployed APIs to forward to, and what the board's config says; (None, None)
    for a stack deployed without an HTTP API."""
    from taskmgmt_deploy.aws.signing import Signer
    from taskmgmt_deploy.usecases.endpoints import Endpoints
    from taskmgmt_deploy.usecases.forwarding import Upstream

    apis = Endpoints(stack.aws, config).of(region)
    if apis.http_url is None:
        return None, None
    signer = Signer(stack.aws.session) if config.api_auth == "iam" else None
    upstream = Upstream(apis.http_url, apis.websocket_url, region, signer, hint=f"; deploy it with `{deploy}`")
    return upstream, {"region": region, "auth": config.api_auth, "loginUrl": config.jwt_login_url}
