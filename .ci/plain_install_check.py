"""CI: a plain `pip install .` (no extras) gives a CLI that works for everything but the sandbox.

Run it with the Python of a virtual environment that holds only the plain install. It checks:
- every module of taskmgmt_deploy outside sandbox/ and emulator/ imports;
- `taskmgmt --help` and the --help of every command and subcommand (found in the typer app) exit 0;
- without AWS credentials, every command that needs AWS fails with one line and exit 2;
- every --sandbox use and every `taskmgmt sandbox ...` fails with one line naming the sandbox
  extra's install command, and exit 2.
tests/unit/test_plain_install.py runs the import and sandbox checks inside the test suite too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Commands that read local files only: without credentials they still work.
LOCAL_COMMANDS = ("outputs", "unlock")
NO_CREDENTIALS = "no AWS credentials found"
EXAMPLES = {"url": "s3://example-bucket/state"}  # a valid value of each required argument, by name


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    code: int
    says: str | None = None  # what the one line on stderr contains; None: no check of stderr


def module_names(package_dir: Path) -> list[str]:
    """Every module of the package that a plain install must import (not the entry point)."""
    names = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if {"sandbox", "emulator", "_assets"} & set(parts) or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_all() -> list[str]:
    import taskmgmt_deploy

    names = module_names(Path(taskmgmt_deploy.__file__).parent)
    for name in names:
        importlib.import_module(name)
    return names


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) of the app itself and of every command and subcommand in it."""
    import typer

    from taskmgmt_deploy.cli import main  # noqa: F401 - registers the commands
    from taskmgmt_deploy.cli.common import app

    def walk(path: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk((*path, name), sub)

    yield from walk((), typer.main.get_command(app))


def leaves() -> list[tuple[tuple[str, ...], Any]]:
    """The commands that run something (not the app, not a group of subcommands)."""
    return [(path, command) for path, command in commands() if path and not hasattr(command, "commands")]


def _runnable(path: tuple[str, ...], command: Any) -> tuple[str, ...]:
    """The command line that runs `command` with no questions asked."""
    options = {opt for param in command.params for opt in getattr(param, "opts", ())}
    required = [  # invoke's JSON; an argument's own example value
        arg
        for param in command.params
        if param.required
        for arg in ((EXAMPLES[param.name],) if param.param_type_name == "argument" else (param.opts[0], "{}"))
    ]
    return (*path, *required, *(("--yes",) if "--yes" in options else ()))


def help_cases() -> list[Case]:
    return [Case((*path, "--help"), 0, None) for path, _ in commands()]


def sandbox_cases() -> list[Case]:
    """Every way into the sandbox: `taskmgmt sandbox ...` and --sandbox on every other command."""
    from taskmgmt_deploy.sandbox import INSTALL_EXTRA

    cases = []
    for path, command in leaves():
        argv = _runnable(path, command)
        if path[0] == "sandbox":
            cases.append(Case(argv, 2, INSTALL_EXTRA))
        elif any("--sandbox" in getattr(param, "opts", ()) for param in command.params):
            cases.append(Case((*argv, "--sandbox"), 2, INSTALL_EXTRA))
    return cases


def credential_cases() -> list[Case]:
    """Every command outside the sandbox, run on a recorded deployment with no credentials."""
    found = {path[0] for path, _ in commands() if path}
    assert set(LOCAL_COMMANDS) <= found, f"LOCAL_COMMANDS names commands that do not exist: {LOCAL_COMMANDS}"
    cases = []
    for path, command in leaves():
        if path[0] != "sandbox":
            local = path[0] in LOCAL_COMMANDS
            cases.append(Case(_runnable(path, command), 0 if local else 2, None if local else NO_CREDENTIALS))
    return cases


def record_deployment(home: Path) -> None:
    """A manifest like a deploy leaves, so that commands on a stack get as far as asking AWS."""
    from taskmgmt_deploy.core.manifest import Manifest, manifest_path
    from taskmgmt_deploy.core.models import Record
    from taskmgmt_deploy.stack import blueprint
    from taskmgmt_deploy.stack.config import load_settings

    settings = load_settings({}, {}, home)
    stack = settings.stack
    manifest = Manifest(manifest_path(settings.state_dir, stack.env), stack.env, "123456789012", stack)
    recorded = {  # what `migrate` reads before it asks AWS for anything
        blueprint.cluster_key(stack, stack.primary_region): {"endpoint": f"example.dsql.{stack.primary_region}.on.aws"},
        blueprint.ROLE: {"arn": "arn:aws:iam::123456789012:role/example"},
    }
    for key, outputs in recorded.items():
        kind = key.split(":")[0]
        manifest.put(Record(key=key, kind=kind, region=None, name=key, position=0, state="ready", outputs=outputs))
    manifest.save()


def run(case: Case, home: Path) -> str | None:
    """What is wrong with the outcome of `taskmgmt ARGV`, or None."""
    # No AWS_* credentials, no ~/.aws. Instance metadata is off so that a CI machine's own
    # role (on EC2) is not found, and no check waits for its timeout.
    env = {"HOME": str(home), "PATH": os.defpath, "AWS_EC2_METADATA_DISABLED": "true"}
    executable = Path(sys.executable).parent / "taskmgmt"
    done = subprocess.run(
        [str(executable), *case.argv],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    if done.returncode != case.code:
        return f"exit {done.returncode}, expected {case.code}: {done.stderr.strip()[-2000:]}"
    if case.says is not None and (len(lines) != 1 or case.says not in lines[0]):
        return f"stderr should be one line saying {case.says!r}, was: {done.stderr.strip()[-2000:]}"
    return None


def main() -> int:
    from taskmgmt_deploy.sandbox import EXTRA_MODULES

    present = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is not None]
    if present:
        print(f"not a plain install: {', '.join(present)} importable", file=sys.stderr)
        return 1
    imported = import_all()
    print(f"imported {len(imported)} modules without the sandbox extra")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        record_deployment(home)
        cases = help_cases() + sandbox_cases() + credential_cases()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            outcomes = list(pool.map(lambda case: run(case, home), cases))
    problems = [(case, problem) for case, problem in zip(cases, outcomes, strict=True) if problem]
    for case, problem in problems:
        print(f"FAIL taskmgmt {' '.join(case.argv)}: {problem}", file=sys.stderr)
    print(f"{len(cases) - len(problems)} of {len(cases)} command lines behaved")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
