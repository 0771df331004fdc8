"""deploy / status / destroy / outputs against moto made AWS-like, in two regions."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.deploy.inventory import empty, inventory

REGIONS = ("us-east-1", "us-west-2")
STACK = "task-mgmt-dev"


def test_deploy_status_destroy_leaves_nothing(aws, runtime, cli, tmp_path):
    deployed = cli("deploy", "--yes")
    assert deployed.code == 0, deployed.err
    assert "deployed task-mgmt-dev: created 65, updated 0, unchanged 0 in " in deployed.err

    manifest = json.loads((tmp_path / ".taskmgmt" / "dev.json").read_text())
    assert {r["state"] for r in manifest["resources"]} == {"ready"}
    assert manifest["account_id"] == "123456789012"
    assert len(manifest["resources"]) == 65

    status = cli("status", "--json")
    assert status.code == 0, status.out + status.err
    report = json.loads(status.out)
    assert report["healthy"] is True
    assert {r["health"] for r in report["resources"]} == {"ok"}

    destroyed = cli("destroy", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert "nothing left" in destroyed.err
    assert inventory() == empty()
    assert not (tmp_path / ".taskmgmt" / "dev.json").exists()


def test_dsql_pair_passes_through_pending_setup_and_is_peered(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    primary = boto3.client("dsql", region_name="us-east-1")
    secondary = boto3.client("dsql", region_name="us-west-2")
    first = primary.get_cluster(identifier=primary.list_clusters()["clusters"][0]["identifier"])
    second = secondary.get_cluster(identifier=secondary.list_clusters()["clusters"][0]["identifier"])
    assert first["status"] == second["status"] == "ACTIVE"
    pair = sorted([first["arn"], second["arn"]])  # AWS lists the cluster itself too
    assert (
        first["multiRegionProperties"]
        == second["multiRegionProperties"]
        == {
            "witnessRegion": "us-east-2",
            "clusters": pair,
        }
    )
    assert first["deletionProtectionEnabled"] is False
    assert first["endpoint"] == f"{first['identifier']}.dsql.us-east-1.on.aws"
    tags = primary.list_tags_for_resource(resourceArn=first["arn"])["tags"]  # GetCluster may omit them (row D23)
    assert tags["taskmgmt:env"] == "dev" and tags["managed-by"] == "taskmgmt"
    # Each function connects to its own region's endpoint, read from GetCluster.
    for region, cluster in (("us-east-1", first), ("us-west-2", second)):
        env = boto3.client("lambda", region_name=region).get_function_configuration(
            FunctionName=f"{STACK}-task-processor"
        )["Environment"]["Variables"]
        assert env["DSQL_ENDPOINT"] == cluster["endpoint"]
        assert env["EVENT_BUS_NAME"] == f"{STACK}-task-events"
        assert "AWS_REGION" not in env


def test_redeploy_of_an_up_to_date_stack_makes_no_mutating_call(aws, runtime, cli, calls):
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    again = cli("deploy", "--yes", "--skip-preflight")  # the preflight's reads are counted in test_preflight.py
    assert again.code == 0, again.err
    assert calls.mutating() == []
    assert "created 0, updated 0, unchanged 65" in again.err
    # At most one read per resource, plus three: the deploy benchmark's target. Most resources
    # take one; the alarms and the log groups take one DescribeAlarms / DescribeLogGroups per
    # region, which pays for the resources that take more: the peering's second cluster, the
    # function's ListTags and event-invoke config, the topic's tags and subscriptions, the APIs'
    # routes (two pages each: H4), and each API's integrations and stage. The function's
    # four invoke permissions per region (the two rules', the two APIs') share one GetPolicy.
    assert calls.calls.count(("lambda", "GetPolicy")) == 2
    assert len(calls.reads()) <= 65 + 3


def test_plan_makes_no_mutating_call_and_names_each_change(aws, runtime, cli, calls):
    fresh = cli("deploy", "--plan")
    assert fresh.code == 0, fresh.err
    assert calls.mutating() == []
    assert sum(line.startswith("+ ") for line in fresh.out.splitlines()) == 65
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    changed = cli("deploy", "--plan", "--lambda-memory", "1024")
    assert changed.code == 0
    assert calls.mutating() == []
    updates = [line for line in changed.out.splitlines() if line.startswith("~ ")]
    assert len(updates) == 2 and changed.out.count("      memory: 512 → 1024\n") == 2


def test_config_change_updates_only_what_differs(aws, runtime, cli, calls):
    assert cli("deploy", "--yes").code == 0
    calls.clear()
    result = cli("deploy", "--yes", "--lambda-timeout", "120", "--log-retention-days", "30")
    assert result.code == 0, result.err
    mutated = {op for _, op in calls.mutating()}
    # timeout -> function config, the duration alarm's threshold and the dashboard's line at it;
    # retention -> log groups
    assert mutated == {"UpdateFunctionConfiguration", "PutMetricAlarm", "PutRetentionPolicy", "PutDashboard"}
    cw = boto3.client("cloudwatch", region_name="us-west-2")
    alarm = cw.describe_alarms(AlarmNames=[f"{STACK}-task-processor-duration"])["MetricAlarms"][0]
    assert alarm["Threshold"] == 96000.0


def test_outputs_lists_each_region(aws, runtime, cli):
    assert cli("deploy", "--yes").code == 0
    result = cli("outputs", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert set(data["regions"]) == set(REGIONS)
    for region in REGIONS:
        values = data["regions"][region]
        assert values["cluster_endpoint"].endswith(f".dsql.{region}.on.aws")
        assert values["function_arn"].startswith(f"arn:aws:lambda:{region}:")
        assert values["dlq_url"].endswith(f"{STACK}-task-events-dlq")
        assert values["broadcast_dlq_url"].endswith(f"{STACK}-broadcast-dlq")
        # Each API's URL is what GetApi answers (the sandbox points it at its loopback data plane).
        gateway = boto3.client("apigatewayv2", region_name=region)
        endpoints = {api["Name"]: api["ApiEndpoint"] for api in gateway.get_apis()["Items"]}
        assert values["http_api_url"] == endpoints[f"{STACK}-tasks"]
        assert values["websocket_url"] == endpoints[f"{STACK}-live"] + "/live"
    assert data["dashboard"]["name"] == f"{STACK}-dashboard"
    assert "cloudwatch/home" in data["dashboard"]["url"]


def test_status_before_any_deploy_is_a_user_error(aws, runtime, cli):
    result = cli("status")
    assert result.code == 2
    assert "no deployment of environment 'dev'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("env,protected", [("prod", True), ("staging", True), ("dev", False), ("test", False)])
def test_deletion_protection_follows_the_environment(aws, runtime, cli, env, protected):
    assert cli("deploy", "--yes", "--env", env).code == 0
    dsql = boto3.client("dsql", region_name="us-east-1")
    cluster = dsql.get_cluster(identifier=dsql.list_clusters()["clusters"][0]["identifier"])
    assert cluster["deletionProtectionEnabled"] is protected


def test_no_deletion_protection_flag_overrides_prod(aws, runtime, cli):
    assert cli("deploy", "--yes", "--env", "prod", "--no-deletion-protection").code == 0
    dsql = boto3.client("dsql", region_name="us-west-2")
    cluster = dsql.get_cluster(identifier=dsql.list_clusters()["clusters"][0]["identifier"])
    assert cluster["deletionProtectionEnabled"] is False


def test_deploy_applies_the_schema_and_the_function_role(aws, runtime, cli, database_url):
    import psycopg

    result = cli("deploy", "--yes")
    assert result.code == 0, result.err
    assert "applied 0001_create_tasks" in result.err
    with psycopg.connect(database_url) as conn:
        tables = {
            row[0]
            for row in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        }
        assert {"tasks", "task_updates", "processed_events", "schema_migrations"} <= tables
        assert conn.execute("SELECT has_table_privilege('taskmgmt_app', 'public.tasks', 'UPDATE')").fetchone()[0]
    status = json.loads(cli("status", "--json").out)
    schema = next(r for r in status["resources"] if r["kind"] == "db_schema")
    assert (schema["health"], schema["state"]) == ("ok", "at 0005")
