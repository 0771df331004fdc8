"""Deploy benchmark: preflight, fresh deploy, no-change redeploy, status and destroy, timed.

Runs against moto's server (made AWS-like by the fidelity layer, on the real clock) with a
latency added to every AWS call and DSQL clusters that take a while to become ACTIVE. For
each operation it prints the wall time, the mutating and read calls, and a lower bound:
the critical path through the step graph, where each step costs its necessary sequential
calls times the latency plus the waits AWS imposes (DSQL activation, IAM propagation,
Lambda Pending). With --compare-serial it runs the same with --max-workers 1. With --state s3 it runs the same
again with the manifest and lock in S3 (on the same emulator, with the same latency) and prints
what the remote state adds to each operation.

    python bench/deploy_bench.py [--latency 0.1] [--dsql-activation 20] [--compare-serial] [--state s3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taskmgmt_deploy.core.graph import topo_order
from taskmgmt_deploy.emulator.server import free_port, wait_until_answering
from taskmgmt_deploy.stack.config import load_settings
from taskmgmt_deploy.usecases import factory

READS = ("Get", "List", "Describe", "Head", "Simulate")
S3_STATE = "s3://bench-state/taskmgmt"
_current = threading.local()


@dataclass
class Delays:
    latency: float
    dsql_activation: float
    dsql_deletion: float
    iam_propagation: float
    lambda_pending: float


@dataclass
class Run:
    operation: str
    wall: float
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)  # (phase, key, operation, region)
    resources: int = 0
    bound: float = 0.0
    read_chain: int = 0

    @property
    def mutating(self) -> int:
        return sum(1 for _, _, op, _ in self.calls if not op.startswith(READS))

    @property
    def reads(self) -> int:
        return len(self.calls) - self.mutating


def serve(port: int, delays: Delays) -> None:
    """The emulator process: moto's server, AWS-like, with `latency` seconds added to every call."""
    import signal

    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.server import start_server

    start_server(
        FidelitySettings(
            iam_propagation=delays.iam_propagation,
            lambda_settle=delays.lambda_pending,
            dsql_activation=delays.dsql_activation,
            dsql_deletion=delays.dsql_deletion,
            dsql_update=0.0,
            call_latency=delays.latency,
        ),
        port=port,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


class Emulator:
    """The emulator in its own process: AWS does not share our CPU, so neither may it here."""

    def __init__(self, delays: Delays):
        import subprocess

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.delays = delays
        command = [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--latency",
            str(delays.latency),
            "--dsql-activation",
            str(delays.dsql_activation),
            "--dsql-deletion",
            str(delays.dsql_deletion),
            "--iam-propagation",
            str(delays.iam_propagation),
            "--lambda-pending",
            str(delays.lambda_pending),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until_answering(self.url, self.process, 60):
            raise RuntimeError("the emulator did not start")

    def reset(self) -> None:
        """A fresh account: moto's state and the fidelity layer's."""
        self.process.terminate()
        self.process.wait()
        self.__init__(self.delays)  # type: ignore[misc]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def instrument(calls: list[tuple[str, str, str, str]], lock: threading.Lock) -> None:
    """Record every AWS call with the step (and phase) that made it."""
    import boto3

    def record(event_name: str, request_signer: Any, **kwargs: Any) -> None:
        key = getattr(_current, "key", ("other", "-"))
        with lock:
            calls.append((key[0], key[1], event_name.split(".")[2], request_signer.region_name))

    def session(settings: Any) -> Any:
        made = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench")
        made.events.register("before-call", record)
        return made

    factory.RUNTIME.session_factory = session
    original_make_steps = factory.make_steps

    def traced_steps(*args: Any) -> Any:
        steps = original_make_steps(*args)
        for step in steps.values():
            for phase in ("read", "apply", "delete"):
                setattr(step, phase, _traced(getattr(step, phase), phase))
        return steps

    factory.make_steps = traced_steps


def _traced(method: Any, phase: str) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        first = args[0]
        key = getattr(first, "key", None) or getattr(first, "key", "-")
        _current.key = (phase, key)
        try:
            return method(*args, **kwargs)
        finally:
            _current.key = ("other", "-")

    return run


def necessary_calls(calls: list[tuple[str, str, str, str]], phase: str) -> dict[str, int]:
    """Per step, its calls in `phase`, counting a repeated call (a poll, a retry) once."""
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for call_phase, key, operation, region in calls:
        if call_phase == phase:
            seen[key].add((operation, region))
    return {key: len(ops) for key, ops in seen.items()}


def read_chain(calls: list[tuple[str, str, str, str]]) -> int:
    """Sequential reads before any work: the account check, then the longest single read."""
    per_step = necessary_calls(calls, "read")
    return 1 + (max(per_step.values()) if per_step else 0)


def apply_bound(
    resources: list[Any], calls: list[tuple[str, str, str, str]], delays: Delays, reverse: bool = False
) -> float:
    """Longest path through the step graph, each step costing its necessary calls plus AWS's waits."""
    phase = "delete" if reverse else "apply"
    cost = {key: n * delays.latency for key, n in necessary_calls(calls, phase).items()}
    waits = {"dsql_peering": delays.dsql_activation, "lambda_function": delays.lambda_pending}
    if reverse:
        waits = {"dsql_peering": delays.dsql_deletion}
    finish: dict[str, float] = {}
    order = topo_order(resources)
    by_key = {r.key: r for r in resources}
    if reverse:
        dependents: dict[str, list[str]] = defaultdict(list)
        for res in resources:
            for dep in res.depends_on:
                dependents[dep].append(res.key)
        for key in reversed(order):
            start = max((finish[d] for d in dependents[key]), default=0.0)
            finish[key] = start + cost.get(key, 0.0) + waits.get(by_key[key].kind, 0.0)
        return max(finish.values(), default=0.0)
    for key in order:
        res = by_key[key]
        start = 0.0
        for dep in res.depends_on:
            edge = (
                delays.iam_propagation
                if by_key[dep].kind in ("iam_role", "iam_role_policy")
                and res.kind in ("lambda_function", "lambda_invoke_config")
                else 0.0
            )
            start = max(start, finish[dep] + edge)
        finish[key] = start + cost.get(key, 0.0) + (waits.get(res.kind, 0.0) if cost.get(key) else 0.0)
    return max(finish.values(), default=0.0)


def live_display() -> Any:
    """The CLI's live progress display, drawing on a terminal nobody watches (its cost is what counts)."""
    from rich.console import Console as RichConsole

    from taskmgmt_deploy.cli.console import Console
    from taskmgmt_deploy.cli.progress import RunDisplay

    console = Console(width=120)
    console.err = RichConsole(file=open(os.devnull, "w"), force_terminal=True, width=120)  # noqa: SIM115
    return RunDisplay(console, live=True)


OPERATIONS = ("fresh deploy", "no-change redeploy", "status", "destroy")


def run_all(
    emulator: Emulator,
    delays: Delays,
    workers: int,
    workdir: Path,
    display: bool = False,
    state_url: str | None = None,
    operations: tuple[str, ...] = OPERATIONS,
) -> list[Run]:
    from taskmgmt_deploy.core.interfaces import NullReporter

    if list(workdir.glob("state-*")):
        emulator.reset()
    state = workdir / f"state-{workers}{'-s3' if state_url else ''}"
    flags = {"TASKMGMT_STATE_DIR": str(state), "AWS_ENDPOINT_URL": emulator.url, "TASKMGMT_MAX_WORKERS": str(workers)}
    if state_url:
        flags["TASKMGMT_STATE"] = state_url
    state.mkdir(parents=True)
    settings = load_settings(flags, {}, workdir)
    calls: list[tuple[str, str, str, str]] = []
    lock = threading.Lock()
    instrument(calls, lock)
    if settings.state_url:
        from taskmgmt_deploy.usecases.state import init_bucket

        init_bucket(settings, settings.state_url, factory.aws_clients(settings))
    runs = [timed_preflight(settings, calls, delays, "preflight, first in the process")]
    runs.append(timed_preflight(settings, calls, delays, "preflight"))
    for operation in operations:
        calls.clear()
        existing = operation in ("status", "destroy")
        start = time.perf_counter()
        with (
            live_display() if display else contextlib.nullcontext(NullReporter()) as reporter,
            factory.open_stack(
                settings, reporter, command=operation, lock=operation != "status", existing=existing
            ) as stack,
        ):
            if operation == "status":
                stack.engine.status(stack.resources)
            elif operation == "destroy":
                stack.engine.destroy(stack.resources, force=True)
            else:
                stack.engine.deploy(stack.resources)
            resources = stack.resources
        wall = time.perf_counter() - start
        run = Run(operation, wall, list(calls), len(resources), read_chain=read_chain(calls))
        reads = run.read_chain * delays.latency
        if operation == "fresh deploy":
            run.bound = reads + apply_bound(resources, calls, delays)
        elif operation == "destroy":
            run.bound = reads + apply_bound(resources, calls, delays, reverse=True)
        else:
            run.bound = reads
        runs.append(run)
    return runs


def timed_preflight(settings: Any, calls: list[tuple[str, str, str, str]], delays: Delays, name: str) -> Run:
    """What deploy runs first on AWS: reads only, the checks in parallel after the credentials.
    Its bound is the longest check's sequential calls after the identity's. The first run in a
    process also loads botocore's service models (and wakes the emulator's backends)."""
    from taskmgmt_deploy.usecases.preflight import preflight

    calls.clear()
    start = time.perf_counter()
    preflight(settings.stack, factory.aws_clients(settings))
    run = Run(name, time.perf_counter() - start, list(calls))
    run.read_chain = PREFLIGHT_CHAIN
    run.bound = run.read_chain * delays.latency
    return run


# identity; then the longest check: the DSQL quota (ListClusters, then Service Quotas) or the
# permissions (one simulation alone, then the rest at once)
PREFLIGHT_CHAIN = 3


def table(runs: list[Run], serial: list[Run] | None, delays: Delays) -> tuple[str, list[str]]:
    header = ["operation", "wall s", "mutating", "reads", "bound s", "wall/bound"]
    one_worker = {run.operation: run for run in serial or []}
    if serial:
        header += ["1 worker s", "speedup"]
    rows = [header]
    for run in runs:
        row = [
            run.operation,
            f"{run.wall:.2f}",
            str(run.mutating),
            str(run.reads),
            f"{run.bound:.2f}",
            f"{run.wall / run.bound:.2f}" if run.bound else "-",
        ]
        if serial:
            alone = one_worker.get(run.operation)
            row += [f"{alone.wall:.2f}", f"{alone.wall / run.wall:.2f}x"] if alone else ["-", "-"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) for row in rows)
    return text, targets(runs, serial, delays)


def targets(runs: list[Run], serial: list[Run] | None, delays: Delays) -> list[str]:
    by_name = {run.operation: run for run in runs}
    fresh, redeploy, status = by_name["fresh deploy"], by_name["no-change redeploy"], by_name["status"]
    checks = [
        ("preflight under a second", by_name["preflight"].wall < 1.0),
        ("preflight makes no mutating call", by_name["preflight"].mutating == 0),
        ("fresh deploy within 1.3x its critical path", fresh.wall <= 1.3 * fresh.bound),
        ("no-change redeploy makes no mutating call", redeploy.mutating == 0),
        (
            f"no-change redeploy reads <= resources + 3 ({redeploy.resources + 3})",
            redeploy.reads <= redeploy.resources + 3,
        ),
        (
            "no-change redeploy within 3 x latency x read chain",
            redeploy.wall <= 3 * delays.latency * redeploy.read_chain,
        ),
        (f"status reads <= resources + 3 ({status.resources + 3})", status.reads <= status.resources + 3),
        ("status within 3 x latency x read chain", status.wall <= 3 * delays.latency * status.read_chain),
    ]
    if serial:
        alone = next(run for run in serial if run.operation == "fresh deploy")
        checks.append(("fresh deploy at least 2x faster than 1 worker", alone.wall >= 2 * fresh.wall))
    return [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks]


def state_table(local: list[Run], remote: list[Run]) -> tuple[str, list[str]]:
    """What the state in S3 adds to each operation: wall time and calls (state writes included)."""
    header = ["operation", "local s", "S3 s", "added s", "added %", "local calls", "S3 calls", "added calls"]
    rows = [header]
    by_name = {run.operation: run for run in remote}
    for run in local:
        other = by_name[run.operation]
        added = other.wall - run.wall
        rows.append(
            [
                run.operation,
                f"{run.wall:.2f}",
                f"{other.wall:.2f}",
                f"{added:+.2f}",
                f"{100 * added / run.wall:+.1f}",
                str(len(run.calls)),
                str(len(other.calls)),
                str(len(other.calls) - len(run.calls)),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) for row in rows)
    local_by_name = {run.operation: run for run in local}
    fresh_local, fresh = local_by_name["fresh deploy"], by_name["fresh deploy"]
    redeploy = by_name["no-change redeploy"]
    redeploy_added = len(redeploy.calls) - len(local_by_name["no-change redeploy"].calls)
    writes = sum(1 for _, _, op, _ in redeploy.calls if op == "PutObject") - 1  # the lock's own
    checks = [
        ("S3 state adds <= 10% to a fresh deploy", fresh.wall <= 1.10 * fresh_local.wall),
        (f"S3 state adds <= 4 calls to a no-change redeploy ({redeploy_added})", redeploy_added <= 4),
        ("a no-change redeploy writes no manifest", writes == 0),
    ]
    return text, [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every AWS call (0.1)")
    parser.add_argument(
        "--dsql-activation", type=float, default=20.0, help="seconds until peered clusters are ACTIVE (20)"
    )
    parser.add_argument("--dsql-deletion", type=float, default=10.0, help="seconds until deleted clusters go (10)")
    parser.add_argument(
        "--iam-propagation", type=float, default=8.0, help="seconds before a new role can be assumed (8)"
    )
    parser.add_argument("--lambda-pending", type=float, default=2.0, help="seconds a new function is Pending (2)")
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument("--compare-serial", action="store_true", help="also run with --max-workers 1")
    parser.add_argument(
        "--state", choices=("local", "s3"), default="local", help="s3: also run with the state in S3, and compare"
    )
    parser.add_argument("--quick", action="store_true", help="tiny delays: checks the benchmark works")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--live-display", action="store_true", help="report to the live progress display")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the emulator process
    args = parser.parse_args(argv)
    if args.serve:
        serve(
            args.serve,
            Delays(args.latency, args.dsql_activation, args.dsql_deletion, args.iam_propagation, args.lambda_pending),
        )
        return 0
    if args.quick:
        args.latency, args.dsql_activation, args.dsql_deletion = 0.01, 0.5, 0.2
        args.iam_propagation, args.lambda_pending = 0.2, 0.05
    delays = Delays(args.latency, args.dsql_activation, args.dsql_deletion, args.iam_propagation, args.lambda_pending)
    prepare_package()
    emulator = Emulator(delays)
    try:
        with tempfile.TemporaryDirectory(prefix="deploy-bench-") as tmp:
            runs = run_all(emulator, delays, args.max_workers, Path(tmp), args.live_display)
            # --quick shows the comparison works: the fresh deploy alone is what it compares
            alone = ("fresh deploy",) if args.quick else OPERATIONS
            serial = run_all(emulator, delays, 1, Path(tmp), operations=alone) if args.compare_serial else None
            remote = (
                run_all(emulator, delays, args.max_workers, Path(tmp), state_url=S3_STATE)
                if args.state == "s3"
                else None
            )
    finally:
        emulator.close()
    text, verdicts = table(runs, serial, delays)
    if remote:
        added, remote_verdicts = state_table(runs, remote)
        text += f"\n\nwith the state in {S3_STATE}:\n{added}"
        verdicts += remote_verdicts
    if args.json:
        print(
            json.dumps(
                {
                    "delays": vars(delays),
                    "runs": [
                        {
                            "operation": r.operation,
                            "wall": r.wall,
                            "mutating": r.mutating,
                            "reads": r.reads,
                            "bound": r.bound,
                            "resources": r.resources,
                            "read_chain": r.read_chain,
                        }
                        for r in runs
                    ],
                    "serial": [{"operation": r.operation, "wall": r.wall} for r in serial or []],
                    "s3_state": [
                        {"operation": r.operation, "wall": r.wall, "calls": len(r.calls)} for r in remote or []
                    ],
                    "local_calls": {r.operation: len(r.calls) for r in runs},
                    "targets": verdicts,
                },
                indent=2,
            )
        )
    else:
        print(
            f"deploy benchmark: {args.max_workers} workers, latency {delays.latency * 1000:.0f} ms per call, "
            f"DSQL ACTIVE after {delays.dsql_activation:g} s, IAM propagation {delays.iam_propagation:g} s, "
            f"Lambda Pending {delays.lambda_pending:g} s"
        )
        print(text)
        print("\n".join(verdicts))
    return 0 if all(v.startswith("PASS") for v in verdicts) else 1


def prepare_package() -> None:
    """Build (or find in the cache) the arm64 package first: a build is local work, not AWS's."""
    from taskmgmt_deploy.stack.config import load_settings

    factory.package_builder(load_settings({}, {}, Path.cwd())).build()


if __name__ == "__main__":
    sys.exit(main())
