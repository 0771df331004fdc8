"""One run per environment: a lock file held with an OS lock, naming its holder.

The holder keeps an exclusive flock(2) on the file for as long as it runs, and the kernel
drops that lock the moment the process dies, however it dies. So on the machine that ran
it, a run killed by SIGKILL never blocks the next one: the next run gets the OS lock, finds
the dead run's name still in the file, and takes over (the engine resumes from the manifest).

The file's content (pid, host, user, start time, command) is for people: it names the holder
to a refused run. What cannot be checked from here - a holder on another host, whose flock a
network filesystem may not share with us - is refused, and `taskmgmt unlock` clears it.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
from contextlib import suppress
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
    expires_at: str | None = None  # a lease (a lock in S3): past it, the holder is presumed dead

    def describe(self) -> str:
        lease = f", lease until {self.expires_at}" if self.expires_at else ""
        return f"pid {self.pid} on {self.host} ({self.command}, started {self.started_at}{lease})"

    def to_json(self) -> str:
        """What the lock file or object holds (read back by parse_lock)."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    @property
    def here(self) -> bool:
        """Held (or last held) on this machine, where the OS lock tells a live holder from a dead one."""
        return self.host == socket.gethostname()


UNREADABLE = LockInfo(pid=-1, host="?", user="?", started_at="?", command="unreadable lock file")


class EnvLock:
    def __init__(self, path: Path, env: str):
        self.path = path
        self.env = env
        self._fd: int | None = None
        self._made_dir = False  # the state directory did not exist before this lock

    def read(self) -> LockInfo | None:
        """Who holds (or last held) the lock; None when there is no lock file or it is empty."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return parse_lock(text)

    def acquire(self, command: str) -> LockInfo | None:
        """Take the lock, or raise LockedError naming its holder. Returns the run this one takes
        over from: one on this machine that died holding the lock, or None."""
        fd = self._lock_file()
        try:
            previous = parse_lock(_read_fd(fd))
            if previous is not None and not previous.here:
                raise self._unverifiable(previous)
            info = LockInfo(os.getpid(), socket.gethostname(), getpass.getuser(), utc_now(), command)
            _write_fd(fd, info.to_json())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return previous

    def holder_alive(self) -> bool:
        """True when a process holds the OS lock now (a holder on another host cannot be seen)."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we took just to look
        return False

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # still holding it: nobody can take over a file being removed
            os.close(self._fd)
            if self._made_dir:  # a run that recorded nothing leaves no empty state directory behind
                with suppress(OSError):  # not empty: a manifest, or another run's lock
                    self.path.parent.rmdir()
            self._fd = None

    def break_lock(self) -> LockInfo | None:
        holder = self.read()
        self.path.unlink(missing_ok=True)
        return holder

    def __enter__(self) -> EnvLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- helpers --------------------------------------------------------------------
    def _lock_file(self) -> int:
        """An fd with the OS lock on the file that is at `path` now. A holder that releases
        unlinks the file; whoever waited on that file retries on the new one."""
        self._made_dir = False
        while True:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dir = True
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # another run removed the directory it had made: make it again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = parse_lock(_read_fd(fd))
                os.close(fd)
                raise self._busy(holder) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                return fd
            os.close(fd)

    def _busy(self, holder: LockInfo | None) -> LockedError:
        if holder is None:  # it has the OS lock and is writing its name
            return LockedError(f"environment '{self.env}' is busy with another run; try again")
        return LockedError(f"environment '{self.env}' is locked by {holder.describe()}; wait for it to finish")

    def _unverifiable(self, holder: LockInfo) -> LockedError:
        return LockedError(
            f"environment '{self.env}' is locked by {holder.describe()}, which cannot be checked from "
            f"{socket.gethostname()}; if nothing else is deploying it, clear the lock with "
            f"`taskmgmt unlock --env {self.env}`"
        )


def parse_lock(text: str) -> LockInfo | None:
    if not text.strip():
        return None  # a holder that died before it wrote its name
    try:
        data = json.loads(text)
        fields = {k: data[k] for k in LockInfo.__dataclass_fields__ if k in data or k != "expires_at"}
        return LockInfo(**fields)
    except (ValueError, KeyError, TypeError):
        return UNREADABLE


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _write_fd(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
    os.fsync(fd)


def lock_path(state_dir: Path, env: str) -> Path:
    return state_dir / f"{env}.lock"
