"""taskmgmt outputs: each region names its own resources; no console link where none leads."""

from __future__ import annotations

from pathlib import Path

from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import record_of
from taskmgmt_deploy.core.state import LocalDocument
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import load_settings
from taskmgmt_deploy.usecases.outputs import stack_outputs

ACCOUNT = "123456789012"


def deployed(tmp_path: Path) -> Manifest:
    """A manifest as a deploy leaves it: every queue and the dashboard recorded."""
    config = load_settings({}, {}, tmp_path).stack
    manifest = Manifest(store=LocalDocument(tmp_path / "dev.json"), env=config.env, account_id=ACCOUNT, config=config)
    for position, res in enumerate(blueprint.build(config), start=1):
        if res.kind == "sqs_queue":
            url = f"https://sqs.{res.region}.amazonaws.com/{ACCOUNT}/{res.name}"
            arn = f"arn:aws:sqs:{res.region}:{ACCOUNT}:{res.name}"
            manifest.put(record_of(res, position, "ready", {"id": url, "url": url, "arn": arn, "name": res.name}))
        elif res.kind == "dashboard":
            outputs = {"id": res.name, "name": res.name, "url": f"https://console.example/{res.name}"}
            manifest.put(record_of(res, position, "ready", outputs))
    return manifest


def test_each_region_names_its_own_queues(tmp_path):
    regions = stack_outputs(deployed(tmp_path))["regions"]
    for region, out in regions.items():
        for field in ("dlq_url", "dlq_arn", "failed_invocations_queue_url", "failed_invocations_queue_arn"):
            assert region in out[field], (region, field, out[field])
    east, west = regions.values()
    assert east["dlq_url"] != west["dlq_url"] and east["dlq_arn"] != west["dlq_arn"]


def test_the_dashboard_links_to_the_console_on_aws(tmp_path):
    dashboard = stack_outputs(deployed(tmp_path))["dashboard"]
    assert dashboard == {"name": "task-mgmt-dev-dashboard", "url": "https://console.example/task-mgmt-dev-dashboard"}


def test_in_an_emulator_the_dashboard_says_so_and_how_to_fetch_it(tmp_path):
    dashboard = stack_outputs(deployed(tmp_path), endpoint_url="http://127.0.0.1:4566")["dashboard"]
    assert "url" not in dashboard
    assert "emulator at http://127.0.0.1:4566" in dashboard["emulated"]
    assert dashboard["fetch"] == (
        "aws cloudwatch get-dashboard --dashboard-name task-mgmt-dev-dashboard --region us-east-1 "
        "--endpoint-url http://127.0.0.1:4566"
    )
    assert len(dashboard["widgets"]) > 4 and all(isinstance(title, str) and title for title in dashboard["widgets"])
    assert any("us-west-2" in title for title in dashboard["widgets"])
