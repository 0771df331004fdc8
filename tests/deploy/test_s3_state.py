"""The manifest and lock in S3 (TASKMGMT_STATE=s3://...): every command works as with the local
state, writes are conditional, and what a user gets wrong is one line, exit 2, nothing overwritten."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.deploy.inventory import empty, expected, inventory
from tests.deploy.test_crash import DESTROY_KILLS, endpoint, killed, live, server, tap  # noqa: F401 - fixtures: the emulator server, the kill tap

BUCKET = "team-state"
STATE = f"s3://{BUCKET}/taskmgmt"
KEY = "taskmgmt/dev.json"


def s3():
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def bucket(aws, runtime, cli, monkeypatch):
    done = cli("state", "init", STATE)
    assert done.code == 0, done.err
    monkeypatch.setenv("TASKMGMT_STATE", STATE)
    return done


def test_every_command_works_with_the_state_in_s3(aws, runtime, cli, calls, tap, bucket, tmp_path):  # noqa: F811
    deployed = cli("deploy", "--yes")
    assert deployed.code == 0, deployed.err
    assert inventory() == expected()
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()  # nothing local
    recorded = json.loads(s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert {r["state"] for r in recorded["resources"]} == {"ready"}
    calls.clear()
    again = cli("deploy", "--yes")
    assert again.code == 0, again.err
    s3_calls = [op for service, op in calls.calls if service == "s3"]
    assert s3_calls == ["PutObject", "GetObject", "DeleteObject"]  # lock, read, release: no write
    for args in (("deploy", "--plan"), ("status",), ("outputs", "--json"), ("logs",)):
        result = cli(*args)
        assert result.code == 0, (args, result.err)
    rebuilt = cli("status", "--rebuild")
    assert rebuilt.code == 0, rebuilt.err
    # The crash matrix's destroy point, with the state in S3: killed after a delete returned ...
    killed(cli, tap, DESTROY_KILLS["DeleteFunction"], "destroy", "--yes")
    recorded = json.loads(s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert [(r["kind"], r["state"]) for r in recorded["resources"] if r["state"] != "ready"] == [
        ("lambda_function", "deleting")
    ]
    destroyed = cli("destroy", "--yes")  # ... it finishes when run again
    assert destroyed.code == 0, destroyed.err
    assert inventory() == empty()
    history = cli("state", "history", "--json")
    assert history.code == 0, history.err
    versions = json.loads(history.out)
    assert versions[0]["size"] is None and versions[0]["latest"]  # destroy deleted the state
    assert len(versions) > 3


# -- the lock and the document, on S3 alone ------------------------------------------------------


def lock(clock, pause=None):
    from taskmgmt_deploy.aws.s3state import S3Lock
    from taskmgmt_deploy.stack.config import S3Url

    return S3Lock(s3(), S3Url(BUCKET, "taskmgmt"), "taskmgmt/dev.lock", "dev", clock, pause)


def document(clock):
    from taskmgmt_deploy.aws.s3state import S3Document
    from taskmgmt_deploy.stack.config import S3Url

    return S3Document(s3(), S3Url(BUCKET, "taskmgmt"), KEY, clock)


@pytest.fixture
def plain_bucket(aws):
    s3().create_bucket(Bucket=BUCKET)
    s3().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def test_a_second_run_is_refused_while_the_lease_runs_and_takes_over_once_it_has_passed(plain_bucket, clock):
    from taskmgmt_deploy.errors import LockedError

    first, second = lock(clock), lock(clock)
    assert first.acquire("deploy") is None
    with pytest.raises(LockedError, match=r"locked by pid \d+ on .* \(deploy, started .*, lease until .*Z\)"):
        second.acquire("destroy")
    clock.advance(119)
    assert second.holder_alive()
    with pytest.raises(LockedError):
        second.acquire("destroy")
    clock.advance(2)  # the first run died: it renews no more
    assert not second.holder_alive()
    taken = second.acquire("destroy")
    assert taken is not None and taken.command == "deploy"
    first.release()  # too late: the conditional delete leaves the new holder's lock alone
    assert second.read().command == "destroy"
    second.release()
    assert second.read() is None


def test_two_runs_racing_for_an_expired_lock_cannot_both_win(plain_bucket, clock, monkeypatch):
    # docs/pessimistic-emulation.md row T1: the loser's IfMatch fails with 409, so soon after the winner's write
    from taskmgmt_deploy.errors import LockedError

    dead, winner, loser = lock(clock), lock(clock), lock(clock)
    dead.acquire("deploy")
    clock.advance(121)
    stale = loser._read()  # both see the expired lock ...
    assert winner.acquire("deploy") is not None  # ... one takes it over ...
    monkeypatch.setattr(loser, "_read", lambda: stale)
    with pytest.raises(LockedError, match="which took over the expired lock first"):
        loser.acquire("destroy")  # ... and the other's takeover fails its condition
    monkeypatch.undo()
    assert loser.read() == winner._held


def test_the_lease_is_renewed_in_the_background_on_the_injected_clock(plain_bucket, clock):
    import threading

    ticks, renewed = threading.Semaphore(0), threading.Event()
    paused = []

    def pause(stop, seconds):
        paused.append(seconds)
        if len(paused) == 2:
            renewed.set()  # the first renewal is written
        ticks.acquire()
        if stop.is_set():
            return True
        clock.advance(seconds)
        return False

    held = lock(clock, pause)
    held.acquire("deploy")
    before = held.read().expires_at
    ticks.release()
    assert renewed.wait(10)
    assert held.read().expires_at > before
    clock.advance(100)  # 130 s after the start, 100 s after the renewal: still held
    assert lock(clock).holder_alive()
    held._stop.set()
    ticks.release()
    held.release()
    assert paused == [30.0, 30.0]
    assert held.read() is None


def test_a_write_after_another_run_changed_the_state_stops_and_loses_nothing(plain_bucket, clock):
    # docs/pessimistic-emulation.md row T2: every IfMatch is the ETag as S3 returned it
    from taskmgmt_deploy.core.state import StateConflict

    mine, theirs = document(clock), document(clock)
    assert mine.read() is None
    mine.write("one")()
    mine.write("two")()
    assert theirs.read() == "two"
    theirs.write("theirs")()
    durable = mine.write("three")
    with pytest.raises(StateConflict, match="was changed by another run since this one read it"):
        durable()
    with pytest.raises(StateConflict):
        mine.write("four")
    assert s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"theirs"
    first = document(clock)
    first.read()
    with pytest.raises(StateConflict):
        document(clock).write("a second first write")()  # IfNoneMatch: it exists


def test_a_conflict_with_a_write_in_flight_is_tried_again_while_the_etag_is_unchanged(clock):
    from botocore.stub import Stubber

    from taskmgmt_deploy.core.state import StateConflict

    doc = document(clock)
    doc._etag = '"v1"'
    with Stubber(doc.s3) as stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        stub.add_response("head_object", {"ETag": '"v1"'})
        stub.add_response("put_object", {"ETag": '"v2"'})
        doc.write("text")()
        assert doc._etag == '"v2"'
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        stub.add_response("head_object", {"ETag": '"v3"'})  # changed meanwhile: not ours to overwrite
        with pytest.raises(StateConflict):
            doc.write("more")()


# -- what a user gets wrong: one line, exit 2, nothing overwritten -------------------------------


@pytest.mark.parametrize("url", ["s3://", "s3:/team-state/x", "s3://ab/x", "s3://Team_State/x", "https://team/x"])
def test_a_malformed_state_url_is_one_line_and_exit_2(aws, runtime, cli, calls, url):
    result = cli("deploy", "--yes", "--state", url)
    assert result.code == 2
    assert result.err.strip().count("\n") == 0
    assert f"--state {url!r} is invalid: must be a local directory or s3://BUCKET/PREFIX" in result.err
    assert calls.calls == []


def test_a_bucket_of_another_account_is_one_line_and_exit_2(aws, runtime, cli):
    # docs/pessimistic-emulation.md row T4
    from moto.s3.models import s3_backends

    s3_backends["210987654321"]["aws"].create_bucket("their-state", "us-east-1")
    for args in (("deploy", "--yes"), ("status",), ("state", "history"), ("unlock", "--yes")):
        result = cli(*args, "--state", "s3://their-state/taskmgmt")
        assert result.code == 2, (args, result.err)
        assert result.err.strip().count("\n") == 0
        assert "access to bucket their-state was denied" in result.err
    assert not list(s3_backends["210987654321"]["aws"].buckets["their-state"].keys)  # nothing written there


def test_a_state_object_that_is_not_a_manifest_is_never_overwritten(aws, runtime, cli, calls, bucket):
    s3().put_object(Bucket=BUCKET, Key=KEY, Body=b"not a manifest")
    for args in (("deploy", "--yes"), ("destroy", "--yes"), ("status",), ("outputs",), ("state", "pull")):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert result.err.strip().count("\n") == 0
        assert f"manifest s3://{BUCKET}/{KEY} is damaged" in result.err
    assert s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"not a manifest"
    assert s3().list_objects_v2(Bucket=BUCKET, Prefix="taskmgmt/dev.lock")["KeyCount"] == 0  # released


def test_unlock_clears_a_lock_in_s3_after_confirmation_and_only_if_its_holder_is_gone(bucket, cli, clock):
    held = lock(clock)
    held.acquire("deploy")
    refused = cli("unlock", "--yes")
    assert refused.code == 2 and "still running" in refused.err
    cleared = cli("unlock", "--yes", "--force")
    assert cleared.code == 0, cleared.err
    assert held.read() is None
    assert "is not locked" in cli("unlock", "--yes").err


def local_manifest(tmp_path, monkeypatch):
    """A local manifest of environment dev, with TASKMGMT_STATE unset: what `state push` copies."""
    from taskmgmt_deploy.core.manifest import Manifest
    from taskmgmt_deploy.core.state import LocalDocument
    from taskmgmt_deploy.stack.config import load_settings

    monkeypatch.delenv("TASKMGMT_STATE")
    local = tmp_path / ".taskmgmt" / "dev.json"
    config = load_settings({}, {}, tmp_path).stack
    Manifest(store=LocalDocument(local), env="dev", account_id="123456789012", config=config).save()
    return local


def test_push_moves_a_local_state_to_s3_and_refuses_to_replace_one_and_pull_copies_it_back(
    aws, runtime, cli, bucket, tmp_path, monkeypatch
):
    local = local_manifest(tmp_path, monkeypatch)
    pushed = cli("state", "push", "--to", STATE)
    assert pushed.code == 0, pushed.err
    assert s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == local.read_bytes()
    again = cli("state", "push", "--to", STATE)
    assert again.code == 2 and "already exists" in again.err and "--force" in again.err
    assert cli("state", "push", "--to", STATE, "--force").code == 0
    pulled = cli("state", "pull", "--state", STATE)
    assert pulled.code == 0, pulled.err
    assert json.loads((tmp_path / "dev.pulled.json").read_text()) == json.loads(local.read_text())
    assert cli("state", "pull", "--state", STATE).code == 2  # the copy exists: not overwritten


def test_push_waits_for_no_local_run_it_is_refused_while_one_holds_the_local_lock(
    aws, runtime, cli, bucket, tmp_path, monkeypatch
):
    from taskmgmt_deploy.core.lock import EnvLock

    local_manifest(tmp_path, monkeypatch)
    with EnvLock(tmp_path / ".taskmgmt" / "dev.lock", "dev") as held:
        held.acquire("deploy")
        refused = cli("state", "push", "--to", STATE)
    assert refused.code == 2 and "deploy" in refused.err, refused.err
    assert s3().list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


# -- two machines: two working directories and two processes, one emulator -----------------------
# The emulator is a moto server in this test process; the other machine is a forked process in
# its own directory, stopped at its first CreateCluster (the lock held, the intent recorded).


def other_machine(directory, release_fd: int, ready_fd: int) -> int:
    """Fork a `taskmgmt deploy` in `directory` that stops before its first CreateCluster, says
    so on `ready_fd`, and goes on once a byte arrives on `release_fd`. Returns its pid."""
    import os
    import sys

    from taskmgmt_deploy.usecases import factory
    from tests.deploy.killing import run_cli_and_exit

    pid = os.fork()
    if pid != 0:
        return pid

    def prepare() -> None:
        os.chdir(directory)
        sys.stdout = sys.stderr = open("child.log", "w", buffering=1)  # noqa: SIM115 - until the process ends
        original = factory.RUNTIME.session_factory

        def before_call(event_name: str, **_: object) -> None:
            if event_name.endswith(".CreateCluster"):
                os.write(ready_fd, b"x")
                os.read(release_fd, 1)

        def session(settings):
            made = original(settings)
            made.events.register("before-call", before_call)
            return made

        factory.RUNTIME.session_factory = session

    run_cli_and_exit(["deploy", "--yes", "--max-workers", "1"], prepare)


@pytest.fixture
def machines(endpoint, runtime, cli, tmp_path, monkeypatch):  # noqa: F811
    """Two working directories sharing the state in S3; this process works in the second."""
    assert cli("state", "init", STATE).code == 0
    monkeypatch.setenv("TASKMGMT_STATE", STATE)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


def remote(url: str):
    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t"
    )


def test_a_deploy_is_refused_while_another_machine_runs_and_resumes_its_work_after_its_lease(
    endpoint,  # noqa: F811
    machines,
    cli,
    clock,
):
    import os
    import signal

    from taskmgmt_deploy.aws.s3state import LEASE_SECONDS

    release_read, _ = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = other_machine(machines[0], release_read, ready_write)
    os.read(ready_read, 1)  # the other machine holds the lock and has recorded its intent
    holder = json.loads(remote(endpoint).get_object(Bucket=BUCKET, Key="taskmgmt/dev.lock")["Body"].read())
    refused = cli("deploy", "--yes")
    assert refused.code == 2
    assert f"locked by pid {pid} on {holder['host']} (deploy, started {holder['started_at']}" in refused.err
    assert f"lease until {holder['expires_at']})" in refused.err
    os.kill(pid, signal.SIGKILL)  # it dies holding the lock: it renews no more
    os.waitpid(pid, 0)
    still = cli("deploy", "--yes")
    assert still.code == 2 and "locked by" in still.err
    clock.advance(LEASE_SECONDS + 1)
    resumed = cli("deploy", "--yes")
    assert resumed.code == 0, resumed.err
    assert f"took over the lock, whose lease had passed: resuming after an interrupted run: pid {pid}" in resumed.err
    assert live(endpoint) == expected()  # the cluster it was creating was created once
    state = json.loads(remote(endpoint).get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert {r["state"] for r in state["resources"]} == {"ready"}


def test_a_state_changed_by_another_run_between_read_and_write_stops_the_run_and_is_kept(
    endpoint,  # noqa: F811
    machines,
    cli,
):
    import os

    release_read, release_write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = other_machine(machines[0], release_read, ready_write)
    os.read(ready_read, 1)
    s3 = remote(endpoint)
    theirs = json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    theirs["resources"] = theirs["resources"][:1]  # another run rewrote it meanwhile
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(theirs).encode())
    os.write(release_write, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1
    log = (machines[0] / "child.log").read_text()
    assert f"the state at s3://{BUCKET}/{KEY} was changed by another run since this one read it" in log
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()) == theirs  # nothing lost
    assert "Key" not in str(s3.list_objects_v2(Bucket=BUCKET, Prefix="taskmgmt/dev.lock").get("Contents", ""))
