"""Start, stop and describe the sandbox's two background processes.

Everything lives under {state_dir}/sandbox: the state file naming each process (pid, port,
URL, log), PostgreSQL's data, the emulator's unpacked code and function logs, and the
manifests of sandbox deployments. `start` only starts what is not already running; `stop`
ends exactly the processes the state file names, after checking each pid still belongs to
the process that was started (a recycled pid is left alone); `reset` stops them and
removes all of it. The emulator holds its AWS resources in memory: each one it starts is a
new, empty account, and what the previous one held is put aside (`_end_previous_account`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from taskmgmt_deploy.core.manifest import atomic_write, utc_now
from taskmgmt_deploy.emulator.server import free_port, wait_until_answering
from taskmgmt_deploy.errors import TaskmgmtError, UserError
from taskmgmt_deploy.sandbox import databases, postgres, require_extra

EMULATOR_MODULE = "taskmgmt_deploy.sandbox.emulator_process"


class SandboxError(TaskmgmtError):
    pass


@dataclass(frozen=True)
class Component:
    name: str
    pid: int
    port: int
    url: str
    log: str
    marker: str  # a string the process's command line contains, to tell it from a recycled pid
    started_at: str

    def alive(self) -> bool:
        try:
            import psutil

            process = psutil.Process(self.pid)
            return process.status() != psutil.STATUS_ZOMBIE and self.marker in " ".join(process.cmdline())
        except Exception:  # noqa: BLE001 - no such process, or not ours to read
            return False


class Sandbox:
    def __init__(self, root: Path):
        require_extra()  # every --sandbox command and `taskmgmt sandbox ...` comes through here
        self.root = root
        self.state_file = root / "sandbox.json"
        self.pgdata = root / "postgres"
        self.workdir = root / "emulator"
        self.logs = root / "logs"

    # -- state ---------------------------------------------------------------------------
    def components(self) -> dict[str, Component]:
        try:
            data = json.loads(self.state_file.read_text())
            return {name: Component(**value) for name, value in data.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            raise SandboxError(
                f"{self.state_file} is damaged ({exc}); stop the processes it named by hand and delete it"
            ) from None

    def _save(self, components: dict[str, Component]) -> None:
        if components:
            atomic_write(self.state_file, json.dumps({k: asdict(v) for k, v in components.items()}, indent=2) + "\n")
        else:
            self.state_file.unlink(missing_ok=True)

    def running(self) -> bool:
        found = self.components()
        return {"postgres", "emulator"} <= set(found) and all(c.alive() for c in found.values())

    @property
    def endpoint_url(self) -> str:
        return self._require("emulator").url

    @property
    def database_url(self) -> str:
        """The PostgreSQL server's admin connection; each cluster pair is a database of it
        (sandbox/databases.py), found by the cluster's endpoint."""
        return self._require("postgres").url

    def _require(self, name: str) -> Component:
        component = self.components().get(name)
        if component is None or not component.alive():
            raise UserError(
                "the sandbox is not running: start it with `taskmgmt sandbox start` "
                "(or deploy with `taskmgmt deploy --sandbox`)"
            )
        return component

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # -- start ---------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Start whatever is not running; return what was done."""
        done: list[str] = []
        with self._locked():
            found = self.components()
            database = found.get("postgres")
            if database is None or not database.alive():
                database = self._start_postgres()
                found["postgres"] = database
                self._save(found)
                done.append(f"started PostgreSQL on {database.url} (pid {database.pid})")
            emulator = found.get("emulator")
            stale = (
                emulator is not None
                and emulator.alive()
                and f"127.0.0.1:{database.port}" not in " ".join(_cmdline(emulator.pid))
            )
            if stale and emulator is not None:  # it points at a database that was restarted elsewhere
                _terminate_group(emulator.pid)
            if emulator is None or stale or not emulator.alive():
                ended = self._end_previous_account(database.url)
                emulator = self._start_emulator(database.url)
                found["emulator"] = emulator
                self._save(found)
                done.append(f"started the AWS emulator on {emulator.url} (pid {emulator.pid})")
                done += ended
        return done

    def _end_previous_account(self, postgres_url: str) -> list[str]:
        """The emulator keeps its AWS resources in memory: a new one starts as an empty account.
        What was deployed in an earlier one is gone, so its manifests are put aside (they would
        name resources that no longer exist) and its clusters' databases are dropped (no new
        cluster reaches them; on AWS a new cluster pair starts empty too)."""
        manifests = sorted(p for p in self.root.glob("*.json") if p != self.state_file)
        dropped = databases.forget_all(postgres_url)
        if not manifests:
            return [f"dropped {len(dropped)} databases of clusters no emulator has"] if dropped else []
        ended = self.root / "ended"
        ended.mkdir(exist_ok=True)
        stamp = utc_now().replace(":", "")
        for manifest in manifests:
            manifest.rename(ended / f"{manifest.stem}.{stamp}.json")
        names = ", ".join(m.stem for m in manifests)
        return [
            f"the emulator starts as an empty AWS account: what was deployed in the previous one ({names}) ended "
            f"with it, its tasks too; deploy again with `taskmgmt deploy --sandbox` (its records: {ended})"
        ]

    def _start_postgres(self) -> Component:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / "postgres.log"
        port = free_port()
        pid = postgres.start(self.pgdata, port, log)
        return Component(
            "postgres",
            pid,
            port,
            f"postgresql://postgres@127.0.0.1:{port}/postgres",
            str(log),
            str(self.pgdata),
            utc_now(),
        )

    def _start_emulator(self, postgres_url: str) -> Component:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.logs / "emulator.log"
        port = free_port()
        command = [
            sys.executable,
            "-m",
            EMULATOR_MODULE,
            "--port",
            str(port),
            "--workdir",
            str(self.workdir),
            "--postgres-url",
            postgres_url,
        ]
        with open(log, "a") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, cwd=self.root, start_new_session=True
            )
        url = f"http://127.0.0.1:{port}"
        if not wait_until_answering(url, process, 60):
            _terminate_group(process.pid)
            tail = Path(log).read_text(errors="replace")[-600:]
            raise SandboxError(f"the AWS emulator did not start: {tail.strip()}")
        return Component("emulator", process.pid, port, url, str(log), f"{EMULATOR_MODULE} --port {port}", utc_now())

    # -- stop ----------------------------------------------------------------------------
    def stop(self) -> list[str]:
        said: list[str] = []
        with self._locked():
            found = self.components()
            emulator = found.pop("emulator", None)
            if emulator is not None:
                if emulator.alive():
                    _terminate_group(emulator.pid)
                    said.append(
                        f"stopped the AWS emulator (pid {emulator.pid}); what was deployed in it ended with it: "
                        "the next start begins with an empty account"
                    )
                else:
                    said.append(f"the AWS emulator (pid {emulator.pid}) was not running")
                self._save(found)
            database = found.pop("postgres", None)
            if database is not None:
                if database.alive():
                    try:
                        postgres.stop(self.pgdata)
                    except Exception:  # noqa: BLE001 - pg_ctl failed: end the postmaster ourselves
                        _stop_postmaster(database.pid)
                    said.append(f"stopped PostgreSQL (pid {database.pid})")
                else:
                    said.append(f"PostgreSQL (pid {database.pid}) was not running")
                self._save(found)
        return said or ["the sandbox was not running"]

    # -- reset ---------------------------------------------------------------------------
    def reset(self) -> list[str]:
        """Stop both processes, then remove everything the sandbox keeps: PostgreSQL's data
        (every environment's database), the manifests of its deployments, code and logs."""
        said = self.stop()
        with self._locked():
            for child in self.root.iterdir():
                if child.name == ".lock":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return [*said, f"removed all the sandbox's data ({self.root})"]


def _cmdline(pid: int) -> list[str]:
    try:
        import psutil

        return list(psutil.Process(pid).cmdline())
    except Exception:  # noqa: BLE001
        return []


def _terminate_group(pid: int, grace: float = 10.0) -> None:
    """The emulator leads its own process group, with its function workers in it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _stop_postmaster(pid: int, grace: float = 30.0) -> None:
    """SIGINT (PostgreSQL's fast shutdown: sessions are ended), then wait for it to be gone, so
    that nothing still writes to its data when the caller goes on (reset removes it)."""
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
