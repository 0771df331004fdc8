"""A deploy or destroy process that dies, is interrupted, or runs twice at once.

The state lives in a moto server (made AWS-like) in this test process; each deploy or
destroy under test is a forked process talking to it over HTTP, so it can be killed for
real. The kill comes from the AWS client: a botocore hook that fires as the process is
about to make its next AWS mutation after k steps have been recorded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmgmt_deploy.usecases import factory
from tests.conftest import READ_PREFIXES
from tests.deploy.inventory import empty, expected, inventory

STEPS = 40
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def module_database(pg_server: Any) -> str:
    import psycopg

    name = "crash_" + os.urandom(4).hex()
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.get_uri().replace("/postgres?", f"/{name}?")


@pytest.fixture
def database_url(module_database: str) -> str:
    """One database for the module: the schema step is not what these tests are about."""
    return module_database


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    """moto's server with the fidelity layer; its AWS-like delays are zero: time is not the subject here."""
    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.server import start_server

    settings = FidelitySettings(iam_propagation=0, lambda_settle=0, dsql_activation=0, dsql_deletion=0, dsql_update=0)
    emulator = start_server(settings)
    yield emulator.url, emulator.fidelity
    emulator.stop()


@pytest.fixture
def endpoint(server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, runtime: factory.Runtime) -> Iterator[str]:
    import urllib.request

    url, _ = server
    # a fresh account: moto's reset resets the fidelity layer's state with moto's
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url


def live(endpoint: str) -> dict[str, list[Any]]:
    return inventory(endpoint_url=endpoint, **CREDENTIALS)


def manifest(tmp_path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((tmp_path / ".taskmgmt" / "dev.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def in_child(args: list[str], hook: Callable[[str], None]) -> int:
    """Fork; the child runs `taskmgmt ARGS` with `hook(operation)` before every AWS call,
    its output in child.log. Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            log = os.open("child.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            original = factory.RUNTIME.session_factory

            def session(settings: Any) -> Any:
                made = original(settings)
                made.events.register("before-call", lambda event_name, **kw: hook(event_name.split(".")[2]))
                return made

            factory.RUNTIME.session_factory = session
            from taskmgmt_deploy.cli import main

            try:
                main(args)
                code = 0
            except SystemExit as done:
                code = int(done.code or 0)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def kill_after(steps_done: Callable[[], int], k: int) -> Callable[[str], None]:
    def hook(operation: str) -> None:
        if not operation.startswith(READ_PREFIXES) and steps_done() >= k:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@pytest.mark.parametrize("k", range(STEPS + 1))
def test_deploy_killed_after_any_step_converges_without_duplicates(endpoint, cli, tmp_path, k):
    def ready() -> int:
        data = manifest(tmp_path)
        return sum(r["state"] == "ready" for r in data["resources"]) if data else 0

    status = in_child(["deploy", "--yes", "--max-workers", "1"], kill_after(ready, k))
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        assert ready() >= k
    else:  # k was past the last AWS mutation: the deploy finished
        assert os.WEXITSTATUS(status) == 0
    again = cli("deploy", "--yes")  # the dead run's lock is taken over: no unlock
    assert again.code == 0, again.err
    assert ("resuming after an interrupted run" in again.err) == os.WIFSIGNALED(status)
    assert live(endpoint) == expected()
    assert all(r["state"] == "ready" for r in manifest(tmp_path)["resources"])


@pytest.mark.parametrize("k", range(0, STEPS + 1, 1))
def test_destroy_killed_after_any_step_still_removes_everything(endpoint, cli, tmp_path, k):
    assert cli("deploy", "--yes").code == 0

    def deleted() -> int:
        data = manifest(tmp_path)
        return STEPS - len(data["resources"]) if data else STEPS

    status = in_child(["destroy", "--yes", "--max-workers", "1"], kill_after(deleted, k))
    assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0
    if manifest(tmp_path) is None:  # it had finished: nothing left to destroy
        assert live(endpoint) == empty()
        return
    again = cli("destroy", "--yes")
    assert again.code == 0, again.err
    assert live(endpoint) == empty()
    assert manifest(tmp_path) is None


# The documented multi-Region delete of a protected pair, as the emulator logs it.
PAIR_DELETE = [
    ("UpdateCluster", "us-east-1", "deletionProtectionEnabled=False"),
    ("UpdateCluster", "us-west-2", "deletionProtectionEnabled=False"),
    ("DeleteCluster", "us-east-1", ""),
    ("DeleteCluster", "us-west-2", ""),
]


@pytest.mark.parametrize("k", range(len(PAIR_DELETE) + 1))
def test_destroy_killed_between_any_two_dsql_calls_finishes_when_run_again(server, endpoint, cli, k):
    # docs/pessimistic-emulation.md row D11
    """Killed before the k-th call of the pair's delete (k = 4: while waiting for both to go)."""
    fidelity = server[1]
    assert cli("deploy", "--yes", "--env", "prod").code == 0

    def made() -> list[tuple[str, str, str]]:
        calls = [(r.operation, r.region, r.change) for r in fidelity.dsql.requests if r.error is None]
        assert len(calls) == len(fidelity.dsql.requests), "no call AWS would refuse"
        fidelity.dsql.requests.clear()
        return calls

    made()
    seen = {"calls": 0}

    def kill_at_k(operation: str) -> None:
        if operation in ("UpdateCluster", "DeleteCluster"):
            if seen["calls"] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            seen["calls"] += 1
        elif operation == "GetCluster" and seen["calls"] == k == len(PAIR_DELETE):
            os.kill(os.getpid(), signal.SIGKILL)

    status = in_child(["destroy", "--yes", "--force", "--env", "prod"], kill_at_k)
    assert os.WIFSIGNALED(status)
    assert made() == PAIR_DELETE[:k]
    again = cli("destroy", "--yes", "--force", "--env", "prod")
    assert again.code == 0, again.err
    assert made() == PAIR_DELETE[k:]
    assert live(endpoint) == empty()


def test_ctrl_c_finishes_the_call_in_flight_saves_and_exits_130(endpoint, cli, tmp_path):
    mutations = {"seen": 0}

    def interrupt(operation: str) -> None:
        if not operation.startswith(READ_PREFIXES):
            mutations["seen"] += 1
            if mutations["seen"] == 6:
                os.kill(os.getpid(), signal.SIGINT)

    status = in_child(["deploy", "--yes"], interrupt)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130
    data = manifest(tmp_path)
    assert data is not None and data["resources"]  # flushed, and valid JSON
    ready = [r["key"] for r in data["resources"] if r["state"] == "ready"]
    assert len(ready) < STEPS
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    assert f"{len(ready) - 1} unchanged" in again.err or "unchanged" in again.err
    assert live(endpoint) == expected()


def test_a_second_deploy_or_destroy_is_refused_while_one_runs(endpoint, cli, tmp_path):
    read_end, write_end = os.pipe()

    def block(operation: str) -> None:
        if not operation.startswith(READ_PREFIXES):
            os.close(write_end)
            os.read(read_end, 1)  # hold the lock until the test lets go

    pid = os.fork()
    if pid == 0:
        status = in_child(["deploy", "--yes"], block)
        os._exit(0 if os.WIFSIGNALED(status) else 1)
    os.close(write_end)
    lock = tmp_path / ".taskmgmt" / "dev.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = json.loads(lock.read_text())
    for args in (("deploy", "--yes"), ("destroy", "--yes")):
        refused = cli(*args)
        assert refused.code == 2
        assert (
            f"locked by pid {holder['pid']} on {holder['host']} (deploy, started {holder['started_at']})" in refused.err
        )
    os.kill(holder["pid"], signal.SIGKILL)  # the deploy dies holding the lock
    os.waitpid(pid, 0)
    resumed = cli("deploy", "--yes")
    assert resumed.code == 0, resumed.err
    assert f"resuming after an interrupted run: pid {holder['pid']}" in resumed.err


def test_unlock_asks_for_confirmation(cli, tmp_path, monkeypatch):
    from taskmgmt_deploy.cli.common import console

    lock = tmp_path / ".taskmgmt" / "dev.lock"
    lock.parent.mkdir()
    lock.write_text(
        json.dumps(
            {
                "pid": 2**22 + 11,
                "host": socket.gethostname(),
                "user": "me",
                "started_at": "2026-11-25T10:00:00Z",
                "command": "deploy",
            }
        )
    )
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr(console.err, "input", lambda prompt: next(answers))
    declined = cli("unlock")
    assert declined.code == 2 and lock.exists()
    accepted = cli("unlock")
    assert accepted.code == 0 and not lock.exists()
