"""The done criterion of the provisioning issue, as a user runs it: `moto_server` in its own
process, the `taskmgmt` command pointed at it with AWS_ENDPOINT_URL, default regions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from taskmgmt_deploy.emulator.server import free_port, wait_until_answering


@pytest.fixture
def moto_server(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    log = open(tmp_path / "moto.log", "w")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_until_answering(url, server, 30):
        server.kill()
        pytest.fail("moto_server did not start")
    yield url
    server.terminate()
    server.wait(timeout=10)
    log.close()


def taskmgmt(cwd: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKMGMT_DATABASE")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    executable = Path(sys.executable).parent / "taskmgmt"
    return subprocess.run(
        [str(executable), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def test_deploy_status_destroy_against_moto_server(moto_server, tmp_path):
    deployed = taskmgmt(tmp_path, moto_server, "deploy", "--yes")
    assert deployed.returncode == 0, deployed.stderr
    # The schema is skipped (no database behind the emulator); the package may already be cached.
    assert re.search(
        r"deployed task-mgmt-dev: (created 64, updated 0, unchanged 0|created 63, updated 0, unchanged 1), skipped 1",
        deployed.stderr,
    )
    status = taskmgmt(tmp_path, moto_server, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert {r["health"] for r in report["resources"]} == {"ok", "skipped"}
    outputs = json.loads(taskmgmt(tmp_path, moto_server, "outputs", "--json").stdout)
    assert set(outputs["regions"]) == {"us-east-1", "us-west-2"}
    destroyed = taskmgmt(tmp_path, moto_server, "destroy", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "nothing left" in destroyed.stderr
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()
