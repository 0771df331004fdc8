import json
import threading

import pytest

from taskmgmt_deploy.core.engine import Engine
from taskmgmt_deploy.core.graph import topo_order
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import Action, Health, Ref
from taskmgmt_deploy.core.state import LocalDocument
from taskmgmt_deploy.errors import DeployFailed, Interrupted
from tests.unit.fake_steps import FakeCloud, FakeStep, thing


@pytest.fixture
def cloud():
    return FakeCloud()


def make_engine(cloud, tmp_path, **kw):
    manifest = Manifest.load(tmp_path / "dev.json") or Manifest(store=LocalDocument(tmp_path / "dev.json"), env="dev")
    return Engine({"thing": FakeStep(cloud, kw.pop("on_apply", None))}, manifest, **kw)


def blueprint():
    a = thing("a")
    b = thing("b", peer=Ref(a.key, "arn"))
    c = thing("c", peer=Ref(b.key, "arn"))
    d = thing("d")
    return [c, b, a, d]


def test_topo_order_puts_dependencies_first_and_keeps_given_order_otherwise():
    order = topo_order(blueprint())
    assert order.index("thing:a@r1") < order.index("thing:b@r1") < order.index("thing:c@r1")
    assert order == ["thing:a@r1", "thing:d@r1", "thing:b@r1", "thing:c@r1"]


def test_topo_order_rejects_cycles_and_unknown_dependencies():
    a = thing("a", peer=Ref("thing:b@r1", "arn"))
    b = thing("b", peer=Ref("thing:a@r1", "arn"))
    with pytest.raises(ValueError, match="cycle"):
        topo_order([a, b])
    with pytest.raises(ValueError, match="unknown"):
        topo_order([a])


def test_deploy_creates_in_dependency_order_and_passes_outputs(cloud, tmp_path):
    changes = make_engine(cloud, tmp_path).deploy(blueprint())
    assert {res.logical: ch.action for res, ch in changes} == {
        "a": Action.CREATE,
        "b": Action.CREATE,
        "c": Action.CREATE,
        "d": Action.CREATE,
    }
    created = [name for verb, name in cloud.mutations()]
    assert created.index("a") < created.index("b") < created.index("c")
    assert cloud.items["c"]["peer"] == "arn:b"
    data = json.loads((tmp_path / "dev.json").read_text())
    assert [r["state"] for r in data["resources"]] == ["ready"] * 4
    assert data["resources"][0]["arn"] == "arn:a"


def test_redeploy_of_unchanged_stack_mutates_nothing(cloud, tmp_path):
    make_engine(cloud, tmp_path).deploy(blueprint())
    cloud.calls.clear()
    changes = make_engine(cloud, tmp_path).deploy(blueprint())
    assert cloud.mutations() == []
    assert {ch.action for _, ch in changes} == {Action.NOOP}
    assert len(cloud.calls) == 4  # one read per resource


def test_plan_reports_changes_and_mutates_nothing(cloud, tmp_path):
    make_engine(cloud, tmp_path).deploy(blueprint())
    cloud.calls.clear()
    resources = blueprint()
    resources[3] = thing("d", size=5)
    changes = {r.logical: c for r, c in make_engine(cloud, tmp_path).plan(resources)}
    assert changes["d"].action is Action.UPDATE
    assert changes["d"].reasons == ("size: 1 -> 5",)
    assert changes["a"].action is Action.NOOP
    assert cloud.mutations() == []


def test_plan_of_fresh_stack_marks_dependent_values_unknown(cloud, tmp_path):
    cloud.items["b"] = {"size": 1, "peer": "arn:old"}
    changes = {r.logical: c for r, c in make_engine(cloud, tmp_path).plan(blueprint())}
    assert changes["a"].action is Action.CREATE
    assert changes["b"].action is Action.UPDATE
    assert "known after apply" in changes["b"].reasons[0]


def test_failure_keeps_what_was_done_and_names_the_resource(cloud, tmp_path):
    cloud.fail_on.add("b")
    with pytest.raises(DeployFailed, match=r"thing:b@r1: boom creating b"):
        make_engine(cloud, tmp_path).deploy(blueprint())
    data = {r["key"]: r for r in json.loads((tmp_path / "dev.json").read_text())["resources"]}
    assert data["thing:a@r1"]["state"] == "ready"
    assert data["thing:b@r1"]["state"] == "creating"  # the intent was recorded first
    assert "thing:c@r1" not in data  # never started: its dependency failed
    cloud.fail_on.clear()
    make_engine(cloud, tmp_path).deploy(blueprint())
    assert set(cloud.items) == {"a", "b", "c", "d"}


def test_manifest_is_saved_after_every_change(cloud, tmp_path):
    seen = []

    def snapshot(res, ctx):
        path = tmp_path / "dev.json"
        if path.exists():
            seen.append({r["key"]: r["state"] for r in json.loads(path.read_text())["resources"]})

    make_engine(cloud, tmp_path, on_apply=snapshot, max_workers=1).deploy(blueprint())
    assert seen[0] == {"thing:a@r1": "creating"}
    assert seen[-1]["thing:c@r1"] == "creating"
    assert seen[-1]["thing:b@r1"] == "ready"


def test_interrupt_finishes_in_flight_work_and_stops(cloud, tmp_path):
    cancel = threading.Event()

    def interrupt_on_a(res, ctx):
        if res.name == "a":
            cancel.set()

    engine = make_engine(cloud, tmp_path, on_apply=interrupt_on_a, cancel=cancel, max_workers=1)
    with pytest.raises(Interrupted):
        engine.deploy(blueprint())
    states = {r["key"]: r["state"] for r in json.loads((tmp_path / "dev.json").read_text())["resources"]}
    assert states == {"thing:a@r1": "ready"}


def test_status_reports_missing_and_drifted(cloud, tmp_path):
    make_engine(cloud, tmp_path).deploy(blueprint())
    del cloud.items["d"]
    cloud.items["a"]["size"] = 9
    statuses = {s.key: s for s in make_engine(cloud, tmp_path).status(blueprint())}
    assert statuses["thing:d@r1"].health is Health.MISSING
    assert statuses["thing:a@r1"].health is Health.DRIFTED
    assert statuses["thing:a@r1"].problems == ("size: 9 -> 1",)
    assert statuses["thing:b@r1"].health is Health.OK


def test_destroy_deletes_dependents_first_and_removes_manifest(cloud, tmp_path):
    make_engine(cloud, tmp_path).deploy(blueprint())
    cloud.calls.clear()
    report = make_engine(cloud, tmp_path).destroy(blueprint())
    deleted = [name for verb, name in cloud.mutations()]
    assert deleted.index("c") < deleted.index("b") < deleted.index("a")
    assert cloud.items == {}
    assert sorted(report.deleted) == ["thing:a@r1", "thing:b@r1", "thing:c@r1", "thing:d@r1"]
    assert not (tmp_path / "dev.json").exists()


def test_destroy_finds_unrecorded_resources_by_name(cloud, tmp_path):
    cloud.items["d"] = {"size": 1}
    make_engine(cloud, tmp_path).destroy(blueprint())
    assert cloud.items == {}
