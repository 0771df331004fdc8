"""Working locally and checking a deployment: sandbox, invoke, smoke, serve."""

from __future__ import annotations

import json
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
    """Stop exactly the processes `sandbox start` started. Its data stays for the next start."""
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
def smoke(*, flags: dict[str, str | None]) -> None:
    """Prove the deployed stack works end to end, one line per check; exit 0 only if all pass.

    Puts a Task Created event on the primary bus, reads the task through the function in
    both regions, updates it with its version, checks a stale version gets 409, completes
    it, checks its history, and removes it.
    """
    if not run_smoke(settings_from(flags)):
        raise typer.Exit(1)


def run_smoke(settings) -> bool:
    from taskmgmt_deploy.usecases.factory import RUNTIME, open_stack
    from taskmgmt_deploy.usecases.functions import Functions
    from taskmgmt_deploy.usecases.smoke import Check, Smoke

    def report(check: Check) -> None:
        if check.ok:
            console.success(f"ok    {check.name} ({check.seconds:.1f}s): {check.observed}")
        else:
            console.error(f"FAIL  {check.name}: expected {check.expected}, observed {check.observed}")

    with open_stack(settings, console, command="smoke", lock=False, existing=True) as stack:
        checks = Smoke(Functions(stack.aws, stack.manifest), RUNTIME.clock, report).run()
    passed = sum(check.ok for check in checks)
    if passed == len(checks):
        console.success(f"smoke test passed: {passed} checks")
        return True
    console.error(f"smoke test failed: {len(checks) - passed} of {len(checks)} checks failed")
    return False


@app.command(rich_help_panel=TRY_PANEL)
@with_settings
def serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8080,
    region: Annotated[
        str | None, typer.Option("--region", help="Which region's function. \\[default: the primary]")
    ] = None,
    cors_origin: Annotated[
        str,
        typer.Option("--cors-origin", help="The origin browsers may call it from (Access-Control-Allow-Origin)."),
    ] = "*",
    *,
    flags: dict[str, str | None],
) -> None:
    """Serve the task API on http://127.0.0.1:PORT by invoking the deployed function.

    Every answer is JSON and carries CORS headers; OPTIONS answers a browser's preflight. It
    listens on loopback only, so any origin (`*`) may call it by default.

    Example: taskmgmt serve --sandbox --port 8080, then curl localhost:8080/tasks
    """
    from taskmgmt_deploy.usecases.factory import open_stack
    from taskmgmt_deploy.usecases.functions import Functions
    from taskmgmt_deploy.usecases.serve import is_origin, make_server

    if not is_origin(cors_origin):
        raise UserError(f"--cors-origin {cors_origin!r} is invalid: give * or an origin such as http://localhost:3000")
    settings = settings_from(flags)
    with open_stack(settings, console, command="serve", lock=False, existing=True) as stack:
        functions = Functions(stack.aws, stack.manifest, deploy_command(settings))
        target = region or functions.regions[0]
        functions.name(target)
        try:
            server = make_server(port, lambda body: functions.invoke_raw(target, body), console.info, cors_origin)
        except OSError as exc:
            raise UserError(f"--port {port} is invalid: {exc.strerror}; choose another with --port") from None
        console.success(f"serving the task API of {target} on http://127.0.0.1:{server.server_port} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.info("stopped")
        finally:
            server.server_close()
