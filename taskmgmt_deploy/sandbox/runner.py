"""Runs the deployed function's code the way Lambda does, inside the sandbox's emulator.

Each code version is unpacked once; invocations go to warm worker processes (a few per
function, like concurrent execution environments) that keep the handler module, and so
its database connection, between invocations. The worker gets the function's configured
environment plus what Lambda sets (AWS_REGION...) plus the sandbox's stand-ins: the
emulator as AWS endpoint, and instead of the DSQL cluster its configuration names, that
cluster's database in the sandbox's PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import select
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskmgmt_deploy.emulator.awslambda import Invocation
from taskmgmt_deploy.stack.blueprint import ENV_DSQL_ENDPOINT

ENV_DATABASE_URL = "TASKMGMT_DATABASE_URL"  # the function's PostgreSQL instead of DSQL

WORKER = Path(__file__).with_name("worker.py")


class WorkerFailed(Exception):
    pass


class Worker:
    def __init__(self, handler: str, code_dir: Path, env: Mapping[str, str], log: Path):
        self.log = open(log, "a", buffering=1)  # noqa: SIM115 - closed in kill()
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), handler],
            cwd=code_dir,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerFailed(f"the execution environment died: {exc}") from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise WorkerFailed(f"Task timed out after {timeout:.2f} seconds")
        line = self.process.stdout.readline()
        if not line:
            raise WorkerFailed(f"the execution environment exited with code {self.process.wait()}")
        return dict(json.loads(line))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


# What becomes of a function's output: (invocation, [(epoch milliseconds, line)]).
LogSink = Callable[[Invocation, list[tuple[int, str]]], None]


class FunctionRunner:
    def __init__(
        self,
        workdir: Path,
        sandbox_env: Mapping[str, str],
        database_for: Callable[[str], str] | None = None,
        workers_per_function: int = 4,
        log_sink: LogSink | None = None,
    ):
        self.log_sink = log_sink
        self.workdir = workdir
        self.sandbox_env = dict(sandbox_env)
        self.database_for = database_for  # a DSQL endpoint -> its PostgreSQL URL
        self.limit = workers_per_function
        self._idle: dict[tuple[str, ...], list[Worker]] = {}
        self._busy: dict[str, int] = {}
        self._all: list[Worker] = []
        self._changed = threading.Condition()

    def __call__(self, invocation: Invocation) -> tuple[bytes, str | None]:
        code_dir = self._unpack(invocation.code, invocation.code_digest)
        env = self._environment(invocation, code_dir)
        key = (invocation.function_arn, code_dir.name, json.dumps(env, sort_keys=True))
        worker = self._acquire(key, invocation.handler, code_dir, env, invocation.function_name)
        request = {
            "request_id": str(uuid.uuid4()),
            "function_arn": invocation.function_arn,
            "timeout": invocation.timeout,
            "payload": invocation.payload.decode("utf-8", "replace"),
        }
        try:
            reply = worker.call(request, float(invocation.timeout))
        except WorkerFailed as exc:
            self._discard(key, worker)
            return json.dumps({"errorMessage": str(exc), "errorType": "Sandbox.Timeout"}).encode(), "Unhandled"
        self._release(key, worker)
        if self.log_sink is not None and reply.get("logs"):
            self.log_sink(invocation, [(int(ms), str(line)) for ms, line in reply["logs"]])
        return str(reply["payload"]).encode(), None if reply["ok"] else "Unhandled"

    def _unpack(self, code: bytes, digest: str = "") -> Path:
        # The digest computed at upload names the directory: hashing a package of megabytes
        # again on every invocation cost milliseconds of CPU each.
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            digest = hashlib.sha256(code).hexdigest()
        target = self.workdir / "code" / digest[:24]
        if not target.is_dir():
            staging = target.with_name(target.name + f".{uuid.uuid4().hex[:6]}")
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(staging)
            with contextlib.suppress(OSError):  # another invocation unpacked the same version first
                staging.rename(target)
        return target

    def _environment(self, invocation: Invocation, code_dir: Path) -> dict[str, str]:
        name, region = invocation.function_name, invocation.region
        runtime = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.workdir),
            "PYTHONPATH": str(code_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": invocation.handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{invocation.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(invocation.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"sandbox/{region}",
        }
        env = {**runtime, **invocation.environment, **self.sandbox_env}
        endpoint = invocation.environment.get(ENV_DSQL_ENDPOINT)
        if endpoint and self.database_for is not None:
            env[ENV_DATABASE_URL] = self.database_for(endpoint)
        return env

    def _acquire(self, key: tuple[str, ...], handler: str, code_dir: Path, env: Mapping[str, str], name: str) -> Worker:
        function = key[0]
        with self._changed:
            self._retire_other_versions(key)
            while True:
                if self._idle.get(key):
                    worker = self._idle[key].pop()
                    break
                if self._busy.get(function, 0) < self.limit:
                    log = self.workdir / "logs" / f"{name}.{function.split(':')[3]}.log"
                    log.parent.mkdir(parents=True, exist_ok=True)
                    worker = Worker(handler, code_dir, env, log)
                    self._all.append(worker)
                    break
                self._changed.wait(timeout=1.0)
            self._busy[function] = self._busy.get(function, 0) + 1
            return worker

    def _retire_other_versions(self, key: tuple[str, ...]) -> None:
        """New code or configuration: the old environments are not used again."""
        for other in [k for k in self._idle if k[0] == key[0] and k != key]:
            for worker in self._idle.pop(other):
                worker.kill()

    def _release(self, key: tuple[str, ...], worker: Worker) -> None:
        with self._changed:
            self._idle.setdefault(key, []).append(worker)
            self._busy[key[0]] -= 1
            self._changed.notify_all()

    def _discard(self, key: tuple[str, ...], worker: Worker) -> None:
        worker.kill()
        with self._changed:
            self._busy[key[0]] -= 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            for worker in self._all:
                worker.kill()
            self._idle.clear()
