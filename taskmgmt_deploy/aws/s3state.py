"""The manifest and its lock as two S3 objects, changed only by conditional requests.

`{prefix}/{env}.json` is the manifest. Every write is conditional on the ETag this run last
read or wrote (IfMatch), the first on there being none (IfNoneMatch='*'): a run never
overwrites a change it has not seen. Writes go out in order on a background thread, the
latest text only, so that recording a step does not hold the next one up; a step waits for
the write of its intent before it calls AWS (the engine asks, see core/state.py).

`{prefix}/{env}.lock` is the lock. It is created with IfNoneMatch='*' and names its holder
and a lease the holder renews in the background. A lock whose lease has passed is taken over
with IfMatch on the ETag just read, so of two runs racing for it exactly one wins.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError

from taskmgmt_deploy.aws.errors import NO_CREDENTIALS, error_code, error_message
from taskmgmt_deploy.aws.retry import call_with_retry, is_conditional_request_conflict
from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.core.lock import LockInfo, parse_lock
from taskmgmt_deploy.core.manifest import utc_now
from taskmgmt_deploy.core.state import Durable, EnvState, StateConflict
from taskmgmt_deploy.errors import LockedError, TaskmgmtError, UserError, one_line
from taskmgmt_deploy.stack.config import S3Url

LEASE_SECONDS = 120.0  # a lock not renewed for this long belongs to a run that died
RENEW_EVERY = 30.0
DENIED = ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch")
ABSENT = ("NoSuchKey", "404", "NotFound")

# Waits `seconds` or until the event is set; True when it was set (the lease renewal's tick).
Pause = Callable[[threading.Event, float], bool]


def _wait_on_event(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


def s3_state(s3: Any, url: S3Url, env: str, clock: Clock, pause: Pause | None = None) -> EnvState:
    return EnvState(
        S3Document(s3, url, url.key(f"{env}.json"), clock),
        S3Lock(s3, url, url.key(f"{env}.lock"), env, clock, pause),
    )


@contextmanager
def refusals(url: S3Url) -> Iterator[None]:
    """AWS's refusals that are the user's to fix, as one line each (exit 2)."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(NO_CREDENTIALS) from None
    except EndpointConnectionError as exc:
        raise UserError(f"cannot reach AWS: {exc}") from None
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchBucket":
            raise UserError(
                f"cannot use the state at {url}: bucket {url.bucket} does not exist; "
                f"create it with `taskmgmt state init {url}`"
            ) from None
        if code in DENIED:
            raise UserError(
                f"cannot use the state at {url}: access to bucket {url.bucket} was denied "
                f"({error_message(exc) or code}); it belongs to another account, or these credentials "
                "lack the S3 permissions `taskmgmt policy` lists"
            ) from None
        raise


class _S3Object:
    """One object, read whole and written whole, every change conditional."""

    def __init__(self, s3: Any, url: S3Url, key: str, clock: Clock):
        self.s3, self.url, self.key, self.clock = s3, url, key, clock
        self.where = f"s3://{url.bucket}/{key}"

    def _get(self) -> tuple[bytes | None, str | None, str | None]:
        """(body, ETag, version id); all None when there is no object."""
        with refusals(self.url):
            try:
                answer = self.s3.get_object(Bucket=self.url.bucket, Key=self.key)
            except ClientError as exc:
                if error_code(exc) in ABSENT:
                    return None, None, None
                raise
            return answer["Body"].read(), answer["ETag"], answer.get("VersionId")

    def _head(self) -> str | None:
        with refusals(self.url):
            try:
                return str(self.s3.head_object(Bucket=self.url.bucket, Key=self.key)["ETag"])
            except ClientError as exc:
                if error_code(exc) in ABSENT:
                    return None
                raise

    def _conditional(self, call: Callable[[], dict[str, Any]], expected: str | None) -> dict[str, Any]:
        """`call`, a write conditional on the object's ETag being `expected` (None: no object).
        A failed condition is a StateConflict; a conflict with a write in flight (409) is tried
        again while the ETag is still the one expected, as S3's API reference says to."""

        def attempt() -> dict[str, Any]:
            try:
                with refusals(self.url):
                    return call()
            except ClientError as exc:
                code = error_code(exc)
                if code == "PreconditionFailed" or code in ABSENT:
                    raise self._conflict() from None
                if is_conditional_request_conflict(exc) and self._head() != expected:
                    raise self._conflict() from None
                raise

        return call_with_retry(attempt, is_conditional_request_conflict, "s3_conditional_conflict", self.clock)

    def _put_if(self, body: bytes, etag: str | None) -> str:
        """Write `body` if the object's ETag is still `etag` (None: if there is no object);
        the new ETag."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        answer = self._conditional(
            lambda: self.s3.put_object(
                Bucket=self.url.bucket, Key=self.key, Body=body, ContentType="application/json", **condition
            ),
            etag,
        )
        return str(answer["ETag"])

    def _delete_if(self, etag: str) -> None:
        """Delete the object if its ETag is still `etag`."""
        self._conditional(lambda: self.s3.delete_object(Bucket=self.url.bucket, Key=self.key, IfMatch=etag), etag)

    def _conflict(self) -> StateConflict:
        return StateConflict(
            f"the state at {self.where} was changed by another run since this one read it: this run "
            "stopped, and what it recorded before is kept; run the command again to work from the new state"
        )


class S3Document(_S3Object):
    """The manifest object; writes go out in the background, in order (see the module's doc)."""

    def __init__(self, s3: Any, url: S3Url, key: str, clock: Clock):
        super().__init__(s3, url, key, clock)
        self._etag: str | None = None  # of the version last read or written; None: there was none
        self._cond = threading.Condition()
        self._pending: str | None = None
        self._queued = 0  # writes asked for
        self._written = 0  # writes durable (the latest text covers the ones it replaced)
        self._error: TaskmgmtError | None = None
        self._busy = False

    def read(self) -> str | None:
        self.flush()
        body, self._etag, _ = self._get()
        return None if body is None else body.decode("utf-8", errors="replace")

    def write(self, text: str) -> Durable:
        with self._cond:
            if self._error is not None:
                raise self._error
            self._pending, self._queued = text, self._queued + 1
            ticket = self._queued
            if not self._busy:
                self._busy = True
                threading.Thread(target=self._drain, name="state-writer", daemon=True).start()
        return lambda: self._wait(ticket)

    def flush(self) -> None:
        with self._cond:
            ticket = self._queued
        self._wait(ticket)

    def delete(self) -> None:
        self.flush()
        if self._etag is None:
            return  # nothing this run knows of; a state someone else made meanwhile is theirs
        self._delete_if(self._etag)
        self._etag = None

    def set_aside(self) -> str | None:
        """S3 keeps every version: the next write replaces the current one, which stays in the
        bucket's history (`taskmgmt state history`)."""
        self.flush()
        body, self._etag, version = self._get()
        return None if body is None else f"version {version} of {self.where} (`taskmgmt state history`)"

    # -- the writer thread ----------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._cond:
                text, ticket, self._pending = self._pending, self._queued, None
                if text is None:
                    self._busy = False
                    return
            try:
                self._put(text)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits or writes next
                with self._cond:
                    self._error = exc if isinstance(exc, TaskmgmtError) else self._failed(exc)
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._written = ticket
                self._cond.notify_all()

    def _put(self, text: str) -> None:
        self._etag = self._put_if(text.encode("utf-8"), self._etag)

    def _wait(self, ticket: int) -> None:
        with self._cond:
            while self._written < ticket and self._error is None:
                self._cond.wait()
            if self._written < ticket:
                raise self._error  # type: ignore[misc]

    def _failed(self, exc: BaseException) -> TaskmgmtError:
        return TaskmgmtError(f"cannot write the state to {self.where}: {one_line(exc)}")


class S3Lock(_S3Object):
    """The lock object: holder and lease; renewed every RENEW_EVERY seconds while held."""

    def __init__(self, s3: Any, url: S3Url, key: str, env: str, clock: Clock, pause: Pause | None = None):
        super().__init__(s3, url, key, clock)
        self.env = env
        self._pause = pause or _wait_on_event
        self._etag: str | None = None
        self._held: LockInfo | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def read(self) -> LockInfo | None:
        return self._read()[0]

    def acquire(self, command: str) -> LockInfo | None:
        for _ in range(3):  # a lock released between our create and our read: create again
            mine = self._info(command)
            try:
                self._put_lock(mine, None)
                return None
            except StateConflict:
                pass
            holder, etag = self._read()
            if holder is None:
                continue
            if not self.expired(holder):
                raise LockedError(
                    f"environment '{self.env}' is locked by {holder.describe()}; wait for it to finish "
                    "(a run that died is taken over once its lease has passed)"
                )
            try:
                self._put_lock(mine, etag)
                return holder
            except StateConflict:
                winner = self.read()
                raise LockedError(
                    f"environment '{self.env}' is locked by {winner.describe() if winner else 'another run'}, "
                    "which took over the expired lock first; wait for it to finish"
                ) from None
        raise LockedError(f"environment '{self.env}' is busy with another run; try again")

    def expired(self, holder: LockInfo) -> bool:
        """Past its lease. A lock without one (unreadable) never expires: `taskmgmt unlock` clears it."""
        return holder.expires_at is not None and _epoch(holder.expires_at) <= self.clock.wall()

    def holder_alive(self) -> bool:
        holder = self.read()
        return holder is not None and not self.expired(holder)

    def release(self) -> None:
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        self._renewer = None
        with self._guard:
            etag, self._etag, self._held = self._etag, None, None
        with suppress(StateConflict):  # taken over after our lease passed: no longer ours to delete
            self._delete_if(etag)

    def break_lock(self) -> LockInfo | None:
        holder, etag = self._read()
        if etag is None:
            return None
        try:
            self._delete_if(etag)
        except StateConflict:
            raise UserError("the lock changed while unlock was asking; run `taskmgmt unlock` again") from None
        return holder

    def __enter__(self) -> S3Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- helpers --------------------------------------------------------------------------
    def _info(self, command: str) -> LockInfo:
        return LockInfo(
            os.getpid(),
            socket.gethostname(),
            getpass.getuser(),
            utc_now(),
            command,
            _iso(self.clock.wall() + LEASE_SECONDS),
        )

    def _read(self) -> tuple[LockInfo | None, str | None]:
        body, etag, _ = self._get()
        if body is None:
            return None, None
        return parse_lock(body.decode("utf-8", errors="replace")), etag

    def _put_lock(self, info: LockInfo, etag: str | None) -> None:
        """Create the lock (etag None) or replace the version `etag`; then keep renewing it."""
        new_etag = self._put_if(info.to_json().encode(), etag)
        with self._guard:
            self._etag, self._held = new_etag, info
        if self._renewer is None:
            self._stop.clear()
            self._renewer = threading.Thread(target=self._renew, name="lock-lease", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        """Push the lease forward every RENEW_EVERY seconds until released. A renewal that fails
        for a passing reason is tried at the next tick (the lease outlives three of them)."""
        while not self._pause(self._stop, RENEW_EVERY):
            with self._guard:
                held, etag = self._held, self._etag
            if held is None:
                return
            renewed = replace(held, expires_at=_iso(self.clock.wall() + LEASE_SECONDS))
            try:
                new_etag = self._put_if(renewed.to_json().encode(), etag)
            except StateConflict:
                return  # taken over after a stall past the lease: the run that writes the state second fails
            except Exception:  # noqa: BLE001, S112 - the next tick tries again
                continue
            with self._guard:
                if self._held is not None:
                    self._etag, self._held = new_etag, renewed


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")  # unreadable: never taken over by itself
