"""The board as a user opens it: the stack deployed into the sandbox, and `taskmgmt serve --sandbox
--region R` for each region, which serves the board and forwards its calls and its socket to
that region's HTTP and WebSocket APIs (signed, API_AUTH=iam). Page A in the primary region, page
B in the secondary: every change reaches the other page through the broadcast within a second."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from taskmgmt_deploy.emulator.server import free_port
from tests.live.pages import open_board, two_regions_flow, warm_up

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import live_bench

TASKMGMT = str(Path(sys.executable).parent / "taskmgmt")
REGIONS = ("us-east-1", "us-west-2")  # the default stack's primary and secondary
# Each change crosses the HTTP API, the function, the bus, the broadcast rule, a second invocation,
# the management API and serve's socket relay, all Python processes on this machine. Unloaded,
# that takes ~0.1-0.3 s; on 2 cores under the parallel suite it took up to 2.4 s. The board's own
# part is held to 1 s in test_board.py; here, that every change arrives live, without a reload.
SANDBOX_WITHIN = 5.0


def run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKMGMT, *args], cwd=cwd, env=_env(), capture_output=True, text=True, check=False, timeout=timeout
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKMGMT_"))}


def _answering(url: str, within: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Path]:
    """The default stack deployed into a sandbox of its own. Not under pytest's base temp: its
    PostgreSQL runs as another user, who must traverse the path, and another pytest session
    on the machine makes pytest's base 0700 again."""
    cwd = Path(tempfile.mkdtemp(prefix="board-sandbox-"))
    try:
        deployed = run(cwd, "deploy", "--sandbox", "--yes")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        yield cwd
    finally:
        run(cwd, "sandbox", "reset", "--yes")
        shutil.rmtree(cwd, ignore_errors=True)


@pytest.fixture(scope="module")
def served(sandbox: Path) -> Iterator[list[tuple[str, str]]]:
    """(region, the board's URL) for each region, each from its own `taskmgmt serve`."""
    servers: list[subprocess.Popen[str]] = []
    sites = []
    try:
        for region in REGIONS:
            port = free_port()
            servers.append(
                subprocess.Popen(
                    [TASKMGMT, "serve", "--sandbox", "--region", region, "--port", str(port)],
                    cwd=sandbox,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            url = f"http://127.0.0.1:{port}"
            config = _answering(url + "/board/config.json")
            assert config["region"] == region and config["websocketUrl"] == f"ws://127.0.0.1:{port}/live", config
            sites.append((region, url))
        yield sites
    finally:
        logs = []
        for server in servers:
            server.terminate()
            logs.append(server.communicate(timeout=10)[1])
        assert not any("Traceback" in log for log in logs), logs


def test_the_board_served_for_each_region_shows_every_change_made_in_the_other(
    new_page: Any, sandbox: Path, served: list[tuple[str, str]], artifacts: Path
):
    (east, east_url), (west, west_url) = served
    a, b = open_board(new_page, east_url, "ana"), open_board(new_page, west_url, "bo")
    assert a.locator("#region").inner_text() == f"region {east}"
    assert b.locator("#region").inner_text() == f"region {west}"
    warm_up(a, b)
    two_regions_flow(a, b, artifacts, within=SANDBOX_WITHIN)  # each change's time: artifacts/latencies.json

    # The live benchmark's own path, tiny, on the same deployment (one test: xdist would deploy per
    # worker); in a thread of its own, since Playwright's sync API holds this thread's event loop
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(live_bench.run, sockets=6, rate=5, seconds=1, workdir=sandbox, warmup=0.4).result(
            timeout=120
        )
    assert result["created"] == result["changes"] == 5
    assert result["delivered"] == result["expected"] == 30 and result["duplicates"] == 0
    # the warm-up's changes (a burst, then 2) are delivered too, and counted apart
    assert result["warmup"]["delivered"] == result["warmup"]["expected"] == (live_bench.SENDERS + 2) * 6
    assert result["fanout_ms"]["count"] == 5 and result["fanout_ms"]["posted"] >= 30  # and to pages A and B
    assert {row[0] for row in live_bench.table(result)} == {
        "live: messages delivered",
        "live: change-to-delivery latency",
        "live: warm-up, not counted above",
        "live: fan-out duration per change",
        "live: delivery throughput",
    }
