"""The benchmarks are scripts, not timed tests; CI only checks that they run (quick mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
ROWS = (
    "preflight wall time",
    "fresh deploy wall time",
    "fresh deploy vs --max-workers 1",
    "no-change redeploy mutating calls",
    "no-change redeploy reads",
    "no-change redeploy wall time",
    "status reads",
    "status wall time",
    "handler throughput vs connect per request",
    "warm get-by-id p99",
    "handler cold import",
    "arm64 function package",
    "hot task: lost updates",
    "hot task: connections opened",
)


def test_both_benchmarks_run_and_print_one_table():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == len(ROWS) + 2
    for row in ROWS:
        assert any(line.startswith(f"| {row}") and line.rstrip().endswith(("PASS |", "FAIL |")) for line in lines), row
    # Whatever the speed, these hold in any run:
    assert next(line for line in lines if "redeploy mutating calls" in line).rstrip().endswith("PASS |")
    assert next(line for line in lines if "arm64 function package" in line).rstrip().endswith("PASS |")
    assert next(line for line in lines if "hot task: lost updates" in line).rstrip().endswith("PASS |")
    assert next(line for line in lines if "hot task: connections opened" in line).rstrip().endswith("PASS |")
