"""Live updates benchmark: N sockets subscribed across both sandbox regions, M changes per
second for S seconds through both regions' HTTP APIs, and for each change how long it took to
reach every socket.

It deploys the stack into a fresh sandbox (its own state directory, removed at the end), opens
the sockets on the WebSocket APIs (half per region, each $connect signed with SigV4 as the
stack's API_AUTH=iam wants), subscribes each to everything, then creates tasks at the given
rate, alternating the regions, each request signed too: first for --warmup seconds, which are
not counted (the functions' execution environments start then, as they would on Lambda in the
first moments of a steady load), then for --seconds. Latency is from the moment the request
is sent to the moment a socket receives the change (so it includes the HTTP call, the commit,
the bus, the broadcast rule and the fan-out). The fan-out's own duration per change is read
from the function's log lines (its broadcast entry point logs one per notification).

    python bench/live_bench.py [--sockets 200] [--rate 50] [--seconds 10] [--warmup 2] [--quick] [--json]

Target: every message delivered, p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CREDENTIALS = ("sandbox", "sandbox")  # what the sandbox accepts for SigV4
TARGET_P99_MS = 250.0
QUIET_SECONDS = 10.0  # after the last change, a message still missing when none arrived for this long is lost
DRAIN_LIMIT = 300.0  # and however slowly they arrive, the wait ends after this
WARMUP_SECONDS = 2.0  # of changes at the same rate before the measured ones, not counted
SENDERS = 16  # changes in flight at most


@dataclass
class Endpoints:
    region: str
    http: str  # the HTTP API's ApiEndpoint
    websocket: str  # the WebSocket API's ApiEndpoint + /live


@dataclass
class Tally:
    """One phase's changes (titled `{prefix}{n}`) and what the sockets received of them."""

    prefix: str = "bench-"
    sent: dict[int, float] = field(default_factory=dict)  # change -> when its request was sent
    answered: dict[int, int] = field(default_factory=dict)  # change -> HTTP status
    answered_at: dict[int, float] = field(default_factory=dict)  # change -> when its answer came
    received: list[tuple[int, int, float]] = field(default_factory=list)  # (socket, change, when)
    task_ids: set[str] = field(default_factory=set)  # the tasks the changes created
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def created(self) -> int:
        return sum(1 for status in self.answered.values() if status == 201)


# -- the sandbox ---------------------------------------------------------------------------------
def taskmgmt(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKMGMT_"))}
    command = [str(Path(sys.executable).parent / "taskmgmt"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout)


def deploy(cwd: Path) -> None:
    done = taskmgmt(cwd, "deploy", "--sandbox", "--yes")
    if done.returncode != 0:
        raise SystemExit(f"deploy --sandbox failed:\n{done.stderr[-3000:]}")


def emulator_of(cwd: Path) -> tuple[str, int]:
    """The sandbox emulator's URL and process id."""
    status = taskmgmt(cwd, "sandbox", "status", "--json")
    if status.returncode != 0:
        raise SystemExit(f"no sandbox running in {cwd}: {status.stderr.strip()[-300:]}")
    emulator = next(c for c in json.loads(status.stdout)["components"] if c["name"] == "emulator")
    return emulator["url"], int(emulator["pid"])


def cpu_seconds(pid: int) -> float:
    """user+sys of the emulator (which serves the gateway) and its function workers, alive or reaped."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total
    except psutil.Error:
        return float("nan")


def stack_settings() -> Any:
    """The default stack's names and regions: what `deploy --sandbox` in an empty directory deploys."""
    from taskmgmt_deploy.stack.config import load_settings

    return load_settings({}, {}, Path(tempfile.gettempdir())).stack


def endpoints(emulator: str) -> list[Endpoints]:
    """Each region's APIs, by their names, from GetApis: ApiEndpoint is the URL, as on AWS."""
    import boto3

    settings = stack_settings()
    found = []
    for region in settings.regions:
        client = boto3.client(
            "apigatewayv2",
            endpoint_url=emulator,
            region_name=region,
            aws_access_key_id=CREDENTIALS[0],
            aws_secret_access_key=CREDENTIALS[1],
        )
        apis = {api["Name"]: api["ApiEndpoint"] for api in client.get_apis()["Items"]}
        http, websocket = apis.get(settings.name("tasks")), apis.get(settings.name("live"))
        if not http or not websocket:
            raise SystemExit(f"{region}: no {settings.name('tasks')} / {settings.name('live')} API in the sandbox")
        found.append(Endpoints(region, http.rstrip("/"), websocket.rstrip("/") + "/live"))
    return found


def signed_headers(method: str, url: str, region: str, body: bytes = b"") -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url.replace("ws://", "http://", 1), data=body)
    if body:
        request.headers["content-type"] = "application/json"
    SigV4Auth(Credentials(*CREDENTIALS), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def fanouts(emulator: str, function_name: str, regions: list[str], since_ms: int) -> list[dict[str, Any]]:
    """The broadcast entry point's log line per notification (duration_ms, delivered, failed, ...)."""
    import boto3

    found: list[dict[str, Any]] = []
    for region in regions:
        logs = boto3.client(
            "logs",
            endpoint_url=emulator,
            region_name=region,
            aws_access_key_id=CREDENTIALS[0],
            aws_secret_access_key=CREDENTIALS[1],
        )
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=f"/aws/lambda/{function_name}", startTime=since_ms, filterPattern="broadcast"
        )
        for page in pages:
            for event in page["events"]:
                record = _record(event["message"])
                if record.get("message") == "broadcast" and isinstance(record.get("duration_ms"), (int, float)):
                    found.append(record)
    return found


def _record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


# -- the sockets ---------------------------------------------------------------------------------
async def open_socket(
    index: int, where: Endpoints, tallies: list[Tally], ready: asyncio.Event, count: list[int]
) -> Any:
    from websockets.asyncio.client import connect

    headers = signed_headers("GET", where.websocket, where.region)
    socket = await connect(where.websocket, additional_headers=headers, max_size=2**20, open_timeout=30)
    await socket.send(json.dumps({"action": "subscribe", "all": True}))
    while True:
        message = json.loads(await socket.recv())
        if message.get("type") == "subscribed":
            break
    count[0] += 1
    if count[0] == count[1]:
        ready.set()

    async def read() -> None:
        async for raw in socket:
            now = time.monotonic()
            message = json.loads(raw)
            task = message.get("task") or {}
            title = str(task.get("title", ""))
            tally = next((t for t in tallies if title.startswith(t.prefix)), None)
            if message.get("type") == "task" and tally is not None:
                with tally.lock:
                    tally.received.append((index, int(title[len(tally.prefix) :]), now))
                    tally.task_ids.add(str(task.get("id")))

    return socket, asyncio.create_task(read())


# -- the changes ---------------------------------------------------------------------------------
def make_changes(where: list[Endpoints], rate: float, total: int, tally: Tally, first: int = 0) -> None:
    """`total` creates, `rate` a second (each sent on schedule, at most SENDERS at once),
    alternating the regions, numbered from `first`."""
    start = time.monotonic() + 0.2

    def one(i: int) -> None:
        target = where[i % len(where)]
        delay = start + (i - first) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"title": f"{tally.prefix}{i}", "created_by": "bench"}).encode()
        url = target.http + "/tasks"
        request = urllib.request.Request(
            url, data=body, method="POST", headers=signed_headers("POST", url, target.region, body)
        )
        with tally.lock:
            tally.sent[i] = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        with tally.lock:
            tally.answered[i], tally.answered_at[i] = status, time.monotonic()

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        list(pool.map(one, range(first, first + total)))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]  # nearest rank


async def drain(tally: Tally, expected: int) -> float:
    """Wait for the phase's messages to arrive; the seconds waited after its last change."""
    ended = time.monotonic()
    last, last_count = ended, 0
    while len(tally.received) < expected and time.monotonic() - ended < DRAIN_LIMIT:
        if len(tally.received) != last_count:
            last, last_count = time.monotonic(), len(tally.received)
        elif time.monotonic() - last > QUIET_SECONDS:
            break  # nothing more is coming
        await asyncio.sleep(0.05)
    return time.monotonic() - ended


async def run_phase(
    where: list[Endpoints], sockets: int, rate: float, seconds: float, tally: Tally, burst: int = 0
) -> float:
    """A burst of changes all at once (if any), then `rate` a second for `seconds`; wait for them."""
    if burst:
        await asyncio.to_thread(make_changes, where, math.inf, burst, tally)
    await asyncio.to_thread(make_changes, where, rate, int(rate * seconds), tally, burst)
    return await drain(tally, tally.created * sockets)


async def measure(
    where: list[Endpoints], sockets: int, rate: float, seconds: float, warmup: float, cpu: Callable[[], float]
) -> dict[str, Any]:
    warm, tally = Tally(prefix="warm-"), Tally()
    ready = asyncio.Event()
    count = [0, sockets]
    opened = await asyncio.gather(
        *(open_socket(i, where[i % len(where)], [warm, tally], ready, count) for i in range(sockets))
    )
    await asyncio.wait_for(ready.wait(), 60)
    # The functions' execution environments start during the warm-up (a new one imports the
    # handler and connects to the database): first a burst of as many changes as the senders
    # can have in flight, which starts as many environments as the load will ever use, then
    # the rate. The measured phase sees them warm, as a steady load on Lambda would; the
    # warm-up's own latencies are reported apart.
    if warmup > 0:
        await run_phase(where, sockets, rate, warmup, warm, burst=SENDERS)
    started, cpu_before = time.time(), cpu()
    drained = await run_phase(where, sockets, rate, seconds, tally)
    sandbox_cpu = cpu() - cpu_before
    for socket, reader in opened:
        reader.cancel()
        await socket.close()
    return {
        **summary(tally, sockets),
        "sockets": sockets,
        "rate": rate,
        "seconds": seconds,
        "drained_s": drained,
        "sandbox_cpu_s": sandbox_cpu,
        "started": started,
        "task_ids": sorted(tally.task_ids),
        "warmup": {"seconds": warmup, **summary(warm, sockets)},
    }


def summary(tally: Tally, sockets: int) -> dict[str, Any]:
    created = tally.created
    unique = {(s, c): at for s, c, at in tally.received}
    latencies = [(at - tally.sent[c]) * 1000 for (s, c), at in unique.items() if c in tally.sent]
    # the same from the change's answer (committed): what the bus, the rule and the fan-out add
    after = [(at - tally.answered_at[c]) * 1000 for (s, c), at in unique.items() if c in tally.answered_at]
    requests = [(tally.answered_at[c] - tally.sent[c]) * 1000 for c in tally.answered_at]
    return {
        "changes": len(tally.sent),
        "created": created,
        "refused": {str(k): v for k, v in _counts(tally.answered.values()).items() if k != 201},
        "expected": created * sockets,
        "delivered": len(unique),
        "duplicates": len(tally.received) - len(unique),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "after_answer_p50_ms": percentile(after, 0.50),
        "after_answer_p99_ms": percentile(after, 0.99),
        "request_p50_ms": percentile(requests, 0.50),
        "throughput": len(unique) / (max(at for *_, at in tally.received) - min(tally.sent.values()))
        if tally.received
        else 0.0,
    }


def _counts(values: Any) -> dict[int, int]:
    counted: dict[int, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


def run(
    sockets: int, rate: float, seconds: float, workdir: Path | None = None, warmup: float = WARMUP_SECONDS
) -> dict[str, Any]:
    """In a new sandbox (deployed, then removed), or in the one already deployed in workdir."""
    if workdir is not None:
        return measure_in(workdir, sockets, rate, seconds, warmup)
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        cwd = Path(tmp)
        try:
            deploy(cwd)
            return measure_in(cwd, sockets, rate, seconds, warmup)
        finally:
            taskmgmt(cwd, "sandbox", "reset", "--yes")


def measure_in(cwd: Path, sockets: int, rate: float, seconds: float, warmup: float) -> dict[str, Any]:
    emulator, pid = emulator_of(cwd)
    where = endpoints(emulator)
    result = asyncio.run(measure(where, sockets, rate, seconds, warmup, lambda: cpu_seconds(pid)))
    settings = stack_settings()
    since = int(result["started"] * 1000) - 1000
    measured = set(result.pop("task_ids"))
    records = [
        r
        for r in fanouts(emulator, settings.name("task-processor"), [w.region for w in where], since)
        if r.get("task_id") in measured  # not the warm-up's
    ]
    durations = [float(r["duration_ms"]) for r in records]
    result["fanout_ms"] = {
        "count": len(durations),
        "p50": percentile(durations, 0.5),
        "p99": percentile(durations, 0.99),
        "mean": statistics.fmean(durations) if durations else float("nan"),
        "posted": sum(int(r.get("delivered", 0)) for r in records),
        "failed": sum(int(r.get("failed", 0)) for r in records),
    }
    result["regions"] = [w.region for w in where]
    return result


def table(result: dict[str, Any], label: str = "live") -> list[tuple[str, str, str, bool]]:
    fan, warm = result["fanout_ms"], result["warmup"]
    delivered_all = result["delivered"] == result["expected"] and result["created"] == result["changes"]
    return [
        (
            f"{label}: messages delivered",
            f"{result['delivered']} of {result['expected']} ({result['created']} of {result['changes']} changes "
            f"accepted, {result['sockets']} sockets, {result['duplicates']} duplicates; "
            f"waited {result['drained_s']:.0f} s after the last change)",
            "all",
            delivered_all,
        ),
        (
            f"{label}: change-to-delivery latency",
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms (max {result['max_ms']:.0f} ms; "
            f"from the change's answer p50 {result['after_answer_p50_ms']:.0f} ms, p99 "
            f"{result['after_answer_p99_ms']:.0f} ms; the request itself p50 {result['request_p50_ms']:.0f} ms)",
            f"p99 <= {TARGET_P99_MS:.0f} ms",
            result["p99_ms"] <= TARGET_P99_MS,
        ),
        (
            f"{label}: warm-up, not counted above",
            f"a burst of {SENDERS}, then {warm['seconds']:g} s: {warm['delivered']} of {warm['expected']} delivered, "
            f"p50 {warm['p50_ms']:.0f} ms, "
            f"p99 {warm['p99_ms']:.0f} ms (max {warm['max_ms']:.0f} ms, as the functions' environments start)"
            if warm["seconds"] > 0
            else "none",
            "(measured)",
            True,
        ),
        (
            f"{label}: fan-out duration per change",
            f"p50 {fan['p50']:.0f} ms, p99 {fan['p99']:.0f} ms ({fan['count']} fan-outs posted "
            f"{fan['posted']}, {fan['failed']} posts failed)"
            if fan["count"]
            else "not logged",
            "(measured)",
            True,
        ),
        (
            f"{label}: delivery throughput",
            f"{result['throughput']:.0f} messages/s ({result['sandbox_cpu_s']:.0f} s of sandbox CPU, "
            f"{1000 * result['sandbox_cpu_s'] / max(result['delivered'], 1):.1f} ms per message)",
            f">= {result['rate'] * result['sockets']:.0f} messages/s (rate x sockets)",
            result["throughput"] >= result["rate"] * result["sockets"],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=WARMUP_SECONDS,
        help="seconds of changes at the same rate first, while the functions' environments start; not counted",
    )
    parser.add_argument("--quick", action="store_true", help="20 sockets, 10 changes/s for 2 s: shows it works")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, help="use the sandbox deployed there (default: deploy a new one, then remove it)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.rate, args.seconds = 20, 10.0, 2.0
    result = run(args.sockets, args.rate, args.seconds, args.workdir, args.warmup)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['sockets']} sockets across {', '.join(result['regions'])}, "
        f"{result['rate']:g} changes/s for {result['seconds']:g} s"
    )
    for name, value, target, ok in table(result):
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value} (target: {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
