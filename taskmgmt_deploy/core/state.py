"""Where an environment's state lives: its manifest document and its lock.

The engine reads and writes the manifest through a Document and takes the lock through a
Lock; it does not know where either lives. Locally (the default) they are two files under
the state directory; with TASKMGMT_STATE=s3://... they are two objects in S3 (aws/s3state.py),
where every write is conditional on the version this run last read, so no update is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from taskmgmt_deploy.errors import ManifestError, TaskmgmtError

if TYPE_CHECKING:
    from taskmgmt_deploy.core.lock import LockInfo

Durable = Callable[[], None]  # returns once a write is durable; raises StateConflict if it failed


class StateConflict(TaskmgmtError):
    """Another run changed the state since this one read it: this run stops, and nothing
    already recorded is lost (the next run reads the other run's state)."""


class Document(Protocol):
    """One environment's manifest, read and written whole."""

    where: str  # for messages: a path or an s3:// URL

    def read(self) -> str | None:
        """The text, None when there is none; remembers the version read for the next write."""

    def write(self, text: str) -> Durable:
        """Replace the text; conditional on the version last read or written. It may be written
        in the background: the returned callable waits until it is durable."""

    def flush(self) -> None:
        """Wait until every write so far is durable (raises StateConflict if one failed)."""

    def delete(self) -> None: ...

    def set_aside(self) -> str | None:
        """Keep the current text out of the way of a new one; where it was kept, None if none."""


class Lock(Protocol):
    """One run per environment: held by a run, naming its holder to the others."""

    def read(self) -> LockInfo | None: ...

    def acquire(self, command: str) -> LockInfo | None:
        """Take it, or raise LockedError; returns the dead run taken over from, or None."""

    def holder_alive(self) -> bool: ...

    def release(self) -> None: ...

    def break_lock(self) -> LockInfo | None: ...

    def __enter__(self) -> Lock: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class EnvState:
    manifest: Document
    lock: Lock


def durable_now() -> None:
    """Nothing to wait for: a local write is durable when write() returns."""


class LocalDocument:
    """The manifest as a file, written atomically (core/manifest.py atomic_write)."""

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {self.path}: {exc.strerror}") from exc

    def write(self, text: str) -> Durable:
        from taskmgmt_deploy.core.manifest import atomic_write

        atomic_write(self.path, text)
        return durable_now

    def flush(self) -> None:
        pass

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def set_aside(self) -> str | None:
        from taskmgmt_deploy.core.manifest import utc_now

        if not self.path.exists():
            return None
        moved = self.path.with_name(f"{self.path.name}.replaced-{utc_now().replace(':', '')}")
        self.path.rename(moved)
        return str(moved)
