"""The sandbox, driven through the real command line as a newcomer would."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from taskmgmt_deploy.emulator.server import free_port
from taskmgmt_deploy.sandbox.databases import ClusterDatabases, database_name

TASKMGMT = str(Path(sys.executable).parent / "taskmgmt")


def run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKMGMT_DATABASE"))}
    return subprocess.run(
        [TASKMGMT, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def components(cwd: Path) -> dict[str, dict]:
    status = run(cwd, "sandbox", "status", "--json")
    return {c["name"]: c for c in json.loads(status.stdout)["components"]}


def leftovers(pids: list[int], ports: list[int], within: float = 15.0) -> list[str]:
    """What is still alive (a zombie awaiting its reaper counts as gone) or still listening."""
    deadline = time.monotonic() + within
    while True:
        left = [f"pid {p}" for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        left += [f"port {port}" for port in ports if _listening(port)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _get_json(url: str, within: float = 30.0) -> dict:
    """GET once the server answers (it is starting in another process); an error status's body too."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def sandbox_processes(emulator_pid: int) -> list[int]:
    """The emulator and its function workers."""
    try:
        return [emulator_pid] + [child.pid for child in psutil.Process(emulator_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return [emulator_pid]


def subscribe_to_notifications(endpoint: str):
    """A queue on the primary bus for the function's notifications; returns a reader."""
    import boto3

    kwargs = {
        "region_name": "us-east-1",
        "endpoint_url": endpoint,
        "aws_access_key_id": "sandbox",
        "aws_secret_access_key": "sandbox",
    }
    sqs, events = boto3.client("sqs", **kwargs), boto3.client("events", **kwargs)
    url = sqs.create_queue(QueueName="notification-watcher")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="watch-notifications",
        EventBusName="task-mgmt-dev-task-events",
        EventPattern=json.dumps({"source": ["task.management.notifications"]}),
    )
    events.put_targets(
        Rule="watch-notifications", EventBusName="task-mgmt-dev-task-events", Targets=[{"Id": "watcher", "Arn": arn}]
    )
    probe = {
        "Source": "task.management.notifications",
        "DetailType": "Watcher Probe",
        "Detail": "{}",
        "EventBusName": "task-mgmt-dev-task-events",
    }
    deadline = time.monotonic() + 30
    while True:  # a rule just put matches no event for a while, as on AWS: probe until it does
        events.put_events(Entries=[probe])
        arrived = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        if arrived:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=arrived[0]["ReceiptHandle"])
            break
        assert time.monotonic() < deadline, "the watcher's rule never matched"

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        events.remove_targets(Rule="watch-notifications", EventBusName="task-mgmt-dev-task-events", Ids=["watcher"])
        events.delete_rule(Name="watch-notifications", EventBusName="task-mgmt-dev-task-events")
        sqs.delete_queue(QueueUrl=url)
        return messages

    return read


def api(cwd: Path, method: str, path: str, body: dict | None = None, env: str = "dev") -> tuple[int, dict]:
    """A request through `taskmgmt invoke`, whose exit code says whether the answer is a 4xx/5xx."""
    event = {"httpMethod": method, "path": path, "body": json.dumps(body) if body else None}
    done = run(cwd, "invoke", "--sandbox", "--env", env, "--payload", json.dumps(event))
    assert done.stdout, done.stderr
    response = json.loads(done.stdout)  # printed whatever the answer
    assert done.returncode == (1 if response["statusCode"] >= 400 else 0), done.stderr
    return response["statusCode"], json.loads(response["body"]) if response["body"] else {}


def titles(cwd: Path, env: str) -> list[str]:
    code, listed = api(cwd, "GET", "/tasks", env=env)
    assert code == 200
    return [t["title"] for t in listed["tasks"]]


def reset_leaves_nothing(workdir: Path) -> None:
    """`sandbox reset` asks first, then ends every process and port and removes all the data."""
    running = components(workdir)
    pids = [*sandbox_processes(running["emulator"]["pid"]), running["postgres"]["pid"]]
    ports = [
        int(running["emulator"]["url"].rsplit(":", 1)[1]),
        int(running["postgres"]["url"].split(":")[2].split("/")[0]),
    ]
    assert len(pids) > 2  # the function ran in worker processes

    refused = run(workdir, "sandbox", "reset")  # no terminal to confirm on
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    reset = run(workdir, "sandbox", "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert "stopped the AWS emulator" in reset.stderr and "stopped PostgreSQL" in reset.stderr
    assert leftovers(pids, ports) == []
    assert [p.name for p in (workdir / ".taskmgmt" / "sandbox").iterdir()] == [".lock"]
    assert run(workdir, "sandbox", "status").returncode == 1


def assert_logs_show_the_invocation(workdir: Path, endpoint: str) -> None:
    """The function's log lines reach the emulator's CloudWatch Logs: `logs` reads them as on AWS."""
    import boto3

    lam = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    probe = "probe_" + os.urandom(4).hex()  # the function logs an unrecognised event's keys
    lam.invoke(FunctionName="task-mgmt-dev-task-processor", Payload=json.dumps({probe: 1}).encode())
    shown = run(workdir, "logs", "--sandbox", "--since", "10m", "--filter", probe)
    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.splitlines()
    _day, _time, region, level, request_id, message = line.split(maxsplit=5)
    assert (region, level) == ("us-east-1", "WARNING") and message == f"unrecognised invocation  keys=['{probe}']"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", request_id)


@pytest.fixture
def workdir(tmp_path: Path):
    yield tmp_path
    run(tmp_path, "sandbox", "stop")  # whatever a failing test left behind


def test_sandbox_end_to_end(workdir: Path):
    started = run(workdir, "sandbox", "start")
    assert started.returncode == 0, started.stderr
    assert "started PostgreSQL" in started.stderr and "started the AWS emulator" in started.stderr

    deployed = run(workdir, "deploy", "--sandbox", "--yes")
    assert deployed.returncode == 0, deployed.stderr
    assert "smoke test passed: 13 checks" in deployed.stderr  # the last: a change seen live in the other region

    smoke = run(workdir, "smoke", "--sandbox")
    assert smoke.returncode == 0, smoke.stderr
    assert smoke.stderr.count("ok    ") == 13  # the function (7 and the cleanup), the HTTP APIs (4), the live check

    status = run(workdir, "status", "--sandbox")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "all 65 resources as deployed" in status.stderr

    notifications = subscribe_to_notifications(components(workdir)["emulator"]["url"])
    code, created = api(workdir, "POST", "/tasks", {"title": "Plan the launch", "created_by": "ana"})
    assert code == 201
    task = created["task"]
    details = [json.loads(m["Body"])["detail"] for m in notifications()]
    assert [(d["eventType"], d["taskId"], d["region"]) for d in details] == [("task.created", task["id"], "us-east-1")]
    code, updated = api(
        workdir, "PATCH", f"/tasks/{task['id']}", {"priority": "urgent", "updated_by": "bo", "version": 1}
    )
    assert code == 200 and updated["task"]["version"] == 2
    code, conflict = api(
        workdir, "PATCH", f"/tasks/{task['id']}", {"priority": "low", "updated_by": "cy", "version": 1}
    )
    assert code == 409 and conflict["current_version"] == 2
    assert_logs_show_the_invocation(workdir, components(workdir)["emulator"]["url"])

    # another environment is another cluster pair: another database, as on AWS
    other = run(workdir, "deploy", "--sandbox", "--yes", "--env", "other")
    assert other.returncode == 0, other.stderr
    assert titles(workdir, "other") == []
    assert api(workdir, "POST", "/tasks", {"title": "Other work", "created_by": "di"}, env="other")[0] == 201
    assert titles(workdir, "other") == ["Other work"] and titles(workdir, "dev") == ["Plan the launch"]

    port = free_port()
    serving = subprocess.Popen(
        [TASKMGMT, "serve", "--sandbox", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listed = _get_json(f"http://127.0.0.1:{port}/tasks?limit=5")  # through the HTTP API, signed
        assert [t["id"] for t in listed["tasks"]] == [task["id"]]
        config = _get_json(f"http://127.0.0.1:{port}/board/config.json")
        assert config["websocketUrl"] == f"ws://127.0.0.1:{port}/live" and config["auth"] == "iam"

        destroyed = run(workdir, "destroy", "--sandbox", "--yes")
        assert destroyed.returncode == 0, destroyed.stderr
        gone = _get_json(f"http://127.0.0.1:{port}/tasks")  # the HTTP API is gone: a 502 naming why
        assert gone["error"] == "api_unavailable" and "taskmgmt deploy --sandbox --env dev" in gone["message"]
    finally:
        serving.terminate()
        _, served_log = serving.communicate(timeout=10)
    assert "Traceback" not in served_log
    assert titles(workdir, "other") == ["Other work"]  # destroying dev left the other pair's data
    # (a pair deployed again starts empty: tests/sandbox/test_databases.py, without a third deploy)

    reset_leaves_nothing(workdir)


def test_start_is_idempotent(workdir: Path):
    assert run(workdir, "sandbox", "start").returncode == 0
    first = components(workdir)
    again = run(workdir, "sandbox", "start")
    assert again.returncode == 0 and "it already was" in again.stderr
    assert components(workdir) == first


def test_stop_when_a_process_already_died(workdir: Path):
    assert run(workdir, "sandbox", "start").returncode == 0
    running = components(workdir)
    os.killpg(running["emulator"]["pid"], signal.SIGKILL)
    assert leftovers([running["emulator"]["pid"]], []) == []
    status = run(workdir, "sandbox", "status", "--json")
    assert status.returncode == 1
    assert {c["name"]: c["running"] for c in json.loads(status.stdout)["components"]} == {
        "postgres": True,
        "emulator": False,
    }
    stopped = run(workdir, "sandbox", "stop")
    assert stopped.returncode == 0
    assert f"the AWS emulator (pid {running['emulator']['pid']}) was not running" in stopped.stderr
    assert "stopped PostgreSQL" in stopped.stderr
    assert leftovers([running["postgres"]["pid"]], []) == []


def test_start_restarts_only_what_died_and_the_new_emulator_is_an_empty_account(workdir: Path):
    assert run(workdir, "sandbox", "start").returncode == 0
    before = components(workdir)
    # what a deployment leaves: its manifest, and its cluster pair's database
    root = workdir / ".taskmgmt" / "sandbox"
    (root / "dev.json").write_text('{"resources": []}\n')
    cluster = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
    ClusterDatabases(before["postgres"]["url"]).created(cluster, [])

    os.killpg(before["emulator"]["pid"], signal.SIGKILL)
    assert leftovers([before["emulator"]["pid"]], []) == []
    restarted = run(workdir, "sandbox", "start")
    assert "started the AWS emulator" in restarted.stderr and "PostgreSQL" not in restarted.stderr
    after = components(workdir)
    assert after["postgres"]["pid"] == before["postgres"]["pid"]
    assert after["emulator"]["pid"] != before["emulator"]["pid"]

    # the new emulator holds none of what the old one did: the deployment is put aside, its data dropped
    assert "what was deployed in the previous one (dev) ended with it" in restarted.stderr
    assert not (root / "dev.json").exists() and len(list((root / "ended").glob("dev.*.json"))) == 1
    with psycopg.connect(before["postgres"]["url"]) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database_name(cluster)]).fetchone() is None
    status = run(workdir, "status", "--sandbox")
    assert status.returncode == 2 and "no deployment of environment 'dev' is recorded" in status.stderr


def test_commands_need_a_running_sandbox(workdir: Path):
    result = run(workdir, "status", "--sandbox")
    assert result.returncode == 2
    assert "the sandbox is not running" in result.stderr


def test_sandbox_and_an_endpoint_conflict(workdir: Path):
    result = run(workdir, "deploy", "--sandbox", "--endpoint-url", "http://127.0.0.1:1")
    assert result.returncode == 2 and "--endpoint-url and --sandbox conflict" in result.stderr
