"""One run per environment: an exclusive lock file that names its holder.

The file is created with O_EXCL, so two runs cannot both succeed. A holder that died
(SIGKILL, power loss) leaves the file behind; the error then says so and `taskmgmt unlock`
removes it after confirmation.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from taskmgmt_deploy.core.manifest import utc_now
from taskmgmt_deploy.errors import LockedError


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    user: str
    started_at: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}, started {self.started_at})"

    def is_dead(self) -> bool:
        """True only when we can tell: same host and no such process."""
        if self.host != socket.gethostname():
            return False
        return not _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EnvLock:
    def __init__(self, path: Path, env: str):
        self.path = path
        self.env = env
        self._held = False

    def read(self) -> LockInfo | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return LockInfo(**{k: data[k] for k in LockInfo.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return LockInfo(pid=-1, host="?", user="?", started_at="?", command="unreadable lock file")

    def acquire(self, command: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = LockInfo(os.getpid(), socket.gethostname(), getpass.getuser(), utc_now(), command)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise self._held_error() from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(info), handle)
            handle.flush()
            os.fsync(handle.fileno())
        self._held = True

    def _held_error(self) -> LockedError:
        holder = self.read()
        if holder is None:  # released between our attempt and the read
            return LockedError(f"environment '{self.env}' was busy; try again")
        if holder.is_dead():
            return LockedError(
                f"environment '{self.env}' is locked by {holder.describe()}, which is no longer running; "
                f"if nothing else is deploying it, clear the lock with `taskmgmt unlock --env {self.env}`"
            )
        return LockedError(f"environment '{self.env}' is locked by {holder.describe()}; wait for it to finish")

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def break_lock(self) -> LockInfo | None:
        holder = self.read()
        self.path.unlink(missing_ok=True)
        return holder

    def __enter__(self) -> EnvLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(state_dir: Path, env: str) -> Path:
    return state_dir / f"{env}.lock"
