"""The benchmarks in one run, summarised in one table: `make bench` or `python bench/run.py`.

Exits 0 when they ran; with --strict, only when every target holds. --quick makes every
delay tiny: it shows the benchmarks work (CI runs that), not how fast anything is; it leaves
out the run with the state in S3 (`deploy_bench.py --state s3`) and the live updates under
load (`live_bench.py`, at its default rate and at LIGHT_RATE; tests/live runs its path on its
own sandbox), which a full run adds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIGHT_RATE = 3  # changes/s: the live benchmark again at this rate, with the same 200 sockets


def run(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / script), "--json", *args], capture_output=True, text=True, check=False
    )
    if done.stdout.strip().startswith("{"):
        return json.loads(done.stdout)
    raise SystemExit(f"{script} failed:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every target holds")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    deploy = run("deploy_bench.py", "--compare-serial", *(quick or ["--state", "s3"]))
    handler = run("handler_bench.py", *quick)
    live = None if args.quick else run("live_bench.py")  # a sandbox of its own and minutes of load: not in CI
    # and at a load a 2-core machine carries (the default one needs some 12 CPU seconds a second)
    light = None if args.quick else run("live_bench.py", "--rate", str(LIGHT_RATE))
    runs = {r["operation"]: r for r in deploy["runs"]}
    serial = {r["operation"]: r for r in deploy["serial"]}
    latency = deploy["delays"]["latency"]
    fresh, redeploy, status = runs["fresh deploy"], runs["no-change redeploy"], runs["status"]
    hot = handler["contention"]
    budget = 3 * latency * redeploy["read_chain"]
    most_reads = redeploy["resources"] + 3
    preflight, first = runs["preflight"], runs["preflight, first in the process"]
    rows = [
        (
            "preflight wall time",
            f"{preflight['wall']:.2f} s ({preflight['reads']} reads, {preflight['mutating']} mutating; "
            f"{first['wall']:.2f} s first in the process, loading botocore's models)",
            "< 1 s, no mutating call",
            preflight["wall"] < 1.0 and preflight["mutating"] == 0,
        ),
        (
            "fresh deploy wall time",
            f"{fresh['wall']:.1f} s",
            f"<= 1.3 x critical path {fresh['bound']:.1f} s",
            fresh["wall"] <= 1.3 * fresh["bound"],
        ),
        (
            "fresh deploy vs --max-workers 1",
            f"{serial['fresh deploy']['wall'] / fresh['wall']:.2f}x faster",
            ">= 2x",
            serial["fresh deploy"]["wall"] >= 2 * fresh["wall"],
        ),
        ("no-change redeploy mutating calls", str(redeploy["mutating"]), "0", redeploy["mutating"] == 0),
        (
            "no-change redeploy reads",
            str(redeploy["reads"]),
            f"<= resources + 3 ({most_reads})",
            redeploy["reads"] <= most_reads,
        ),
        (
            "no-change redeploy wall time",
            f"{redeploy['wall']:.2f} s",
            f"<= 3 x {latency * 1000:.0f} ms x read chain {redeploy['read_chain']} = {budget:.2f} s",
            redeploy["wall"] <= budget,
        ),
        ("status reads", str(status["reads"]), f"<= resources + 3 ({most_reads})", status["reads"] <= most_reads),
        ("status wall time", f"{status['wall']:.2f} s", f"<= {budget:.2f} s", status["wall"] <= budget),
        (
            "handler throughput vs connect per request",
            f"{handler['ours']['throughput'] / handler['baseline']['throughput']:.1f}x",
            ">= 10x",
            handler["ours"]["throughput"] >= 10 * handler["baseline"]["throughput"],
        ),
        ("warm get-by-id p99", f"{handler['warm_get']['p99']:.2f} ms", "<= 5 ms", handler["warm_get"]["p99"] <= 5),
        ("handler cold import", f"{handler['cold_import_ms']:.0f} ms", "<= 300 ms", handler["cold_import_ms"] <= 300),
        ("arm64 function package", f"{handler['package_mb']:.1f} MB", "<= 15 MB", handler["package_mb"] <= 15),
        (
            "hot task: lost updates",
            f"{hot['lost_updates']} of {hot['updates']} ({hot['updates_per_second']:.0f} updates/s, "
            f"p50 {hot['p50']:.1f} ms, p99 {hot['p99']:.1f} ms)",
            "0",
            hot["lost_updates"] == 0,
        ),
        (
            "hot task: connections opened",
            f"{hot['connections_opened']} ({hot['conflicts_409']} 409s, {hot['occ_retries']} OCC retries)",
            f"= writers ({hot['writers']})",
            hot["connections_opened"] == hot["writers"],
        ),
    ]
    rows += state_rows(deploy)
    if live is not None and light is not None:
        from live_bench import table as live_rows

        rows += live_rows(live) + live_rows(light, f"live at {LIGHT_RATE} changes/s")
    table = [("measure", "result", "target", "")] + [(a, b, c, "PASS" if ok else "FAIL") for a, b, c, ok in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    table.insert(1, tuple("-" * width for width in widths))  # a Markdown table, pasted into the README as is
    print(
        ("quick run (tiny delays: shows the benchmarks work, not how fast anything is)\n" if args.quick else "")
        + f"deploy: latency {latency * 1000:.0f} ms per AWS call, DSQL ACTIVE after "
        f"{deploy['delays']['dsql_activation']:g} s; handler: {handler['threads']} threads x {handler['seconds']:g} s"
        + (", TLS" if handler.get("tls") else "")
        + f"; hot task: {hot['writers']} writer processes x {hot['updates'] // hot['writers']} updates"
        + (
            f"; live: {live['sockets']} sockets across both sandbox regions, {live['rate']:g} changes/s "
            f"(then {LIGHT_RATE}) for {live['seconds']:g} s"
            if live
            else ""
        )
    )
    for row in table:
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + " |")
    return 1 if args.strict and not all(ok for *_, ok in rows) else 0


def state_rows(deploy: dict) -> list[tuple[str, str, str, bool]]:
    """With the state in S3: what it adds to a fresh deploy (wall time) and to a no-change redeploy (calls)."""
    if not deploy.get("s3_state"):
        return []
    local = {r["operation"]: r for r in deploy["runs"]}
    remote = {r["operation"]: r for r in deploy["s3_state"]}
    fresh_local, fresh = local["fresh deploy"]["wall"], remote["fresh deploy"]["wall"]
    added = remote["no-change redeploy"]["calls"] - deploy["local_calls"]["no-change redeploy"]
    writes_none = any(t.startswith("PASS  a no-change redeploy writes no manifest") for t in deploy["targets"])
    return [
        (
            "S3 state: fresh deploy wall time",
            f"{fresh:.1f} s ({100 * (fresh - fresh_local) / fresh_local:+.1f}% vs local {fresh_local:.1f} s)",
            "<= +10%",
            fresh <= 1.1 * fresh_local,
        ),
        (
            "S3 state: no-change redeploy added calls",
            f"{added} ({'no manifest write' if writes_none else 'the manifest was written'})",
            "<= 4, no manifest write",
            added <= 4 and writes_none,
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
