"""Everything of an environment that lives in AWS, asked of every service (not only the tagging API),
as comparable data."""

from __future__ import annotations

import json
from typing import Any

import boto3

from taskmgmt_deploy.aws.finder import cluster_tags

REGIONS = ("us-east-1", "us-west-2")


def inventory(stack: str = "task-mgmt-dev", **client_kwargs: Any) -> dict[str, list[Any]]:
    """Names and counts only (no generated ids), so two deployments compare equal."""

    def client(service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, region_name=region, **client_kwargs)

    found: dict[str, list[Any]] = {
        key: []
        for key in (
            "roles",
            "inline_policies",
            "attached_policies",
            "clusters",
            "functions",
            "permissions",
            "invoke_configs",
            "buses",
            "rules",
            "targets",
            "queues",
            "queue_policies",
            "log_groups",
            "alarms",
            "dashboards",
            "topics",
            "subscriptions",
            "cluster_policies",
            "reserved_concurrency",
            "apis",
        )
    }
    iam = client("iam")
    for role in iam.list_roles()["Roles"]:
        if role["RoleName"].startswith(stack):
            found["roles"].append(role["RoleName"])
            found["inline_policies"] += iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
            found["attached_policies"] += [
                p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
            ]
    found["dashboards"] = [
        d["DashboardName"]
        for d in client("cloudwatch").list_dashboards()["DashboardEntries"]
        if d["DashboardName"].startswith(stack)
    ]
    for region in REGIONS:
        dsql = client("dsql", region)
        _clusters(dsql, region, stack.rsplit("-", 1)[-1], found)
        lam = client("lambda", region)
        for fn in lam.list_functions()["Functions"]:
            found["functions"].append((region, fn["FunctionName"]))
            try:
                statements = json.loads(lam.get_policy(FunctionName=fn["FunctionName"])["Policy"])["Statement"]
            except lam.exceptions.ResourceNotFoundException:
                statements = []
            found["permissions"] += [(region, fn["FunctionName"], s["Sid"]) for s in statements]
            configs = lam.list_function_event_invoke_configs(FunctionName=fn["FunctionName"])
            found["invoke_configs"] += [(region, fn["FunctionName"]) for _ in configs["FunctionEventInvokeConfigs"]]
            reserved = lam.get_function_concurrency(FunctionName=fn["FunctionName"]).get("ReservedConcurrentExecutions")
            if reserved is not None:
                found["reserved_concurrency"].append((region, fn["FunctionName"], reserved))
        sns = client("sns", region)
        for topic in sns.list_topics()["Topics"]:
            found["topics"].append((region, topic["TopicArn"].rsplit(":", 1)[-1]))
        for sub in sns.list_subscriptions()["Subscriptions"]:
            found["subscriptions"].append(
                (region, sub["TopicArn"].rsplit(":", 1)[-1], sub["Protocol"], sub["Endpoint"])
            )
        events = client("events", region)
        for bus in events.list_event_buses()["EventBuses"]:  # the default bus's rules too: none expected
            if bus["Name"] != "default":
                found["buses"].append((region, bus["Name"]))
            for rule in events.list_rules(EventBusName=bus["Name"])["Rules"]:
                found["rules"].append((region, bus["Name"], rule["Name"]))
                found["targets"] += [
                    (region, rule["Name"], t["Id"])
                    for t in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])["Targets"]
                ]
        sqs = client("sqs", region)
        for url in sqs.list_queues().get("QueueUrls", []):
            name = url.rsplit("/", 1)[-1]
            found["queues"].append((region, name))
            policy = (
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
            )
            if policy:
                found["queue_policies"].append((region, name))
        gateway = client("apigatewayv2", region)
        for api in (api for page in gateway.get_paginator("get_apis").paginate() for api in page["Items"]):
            stages = sorted(s["StageName"] for s in gateway.get_stages(ApiId=api["ApiId"])["Items"])
            found["apis"].append((region, api["Name"], api["ProtocolType"], *stages))
        found["log_groups"] += [
            (region, g["logGroupName"]) for g in client("logs", region).describe_log_groups()["logGroups"]
        ]
        found["alarms"] += [
            (region, a["AlarmName"]) for a in client("cloudwatch", region).describe_alarms()["MetricAlarms"]
        ]
    return {key: sorted(values) for key, values in found.items()}


def expected(
    stack: str = "task-mgmt-dev", email: str | None = None, cluster_policy: bool = False, reserved: int | None = None
) -> dict[str, list[Any]]:
    """What one deployment of the stack consists of, with the options given (ALARM_EMAIL,
    DSQL_CLUSTER_POLICY, LAMBDA_RESERVED_CONCURRENCY; KMS_KEY adds no resource)."""
    fn, bus, rule = f"{stack}-task-processor", f"{stack}-task-events", f"{stack}-task-processing"
    broadcast = f"{stack}-broadcast"
    queues = (f"{stack}-task-events-dlq", f"{stack}-task-processor-failures", f"{broadcast}-dlq")
    alarms = (
        f"{fn}-errors",
        f"{fn}-throttles",
        f"{fn}-duration",
        f"{queues[0]}-messages",
        f"{queues[1]}-messages",
        f"{rule}-failed-invocations",
        f"{queues[2]}-messages",
    )
    cluster_alarms = [
        (region, f"{stack}-{side}-{metric}")
        for region, side in zip(REGIONS, ("primary", "secondary"), strict=True)
        for metric in ("occ-conflicts", "commit-latency", "query-timeouts")
    ]
    data: dict[str, list[Any]] = {
        "roles": [f"{stack}-task-processor-role"],
        "inline_policies": [f"{stack}-task-processor-policy", f"{stack}-manage-connections"],
        "attached_policies": [],
        "dashboards": [f"{stack}-dashboard"],
        "clusters": [
            ("us-east-1", "dsql_cluster:primary@us-east-1", "ACTIVE"),
            ("us-west-2", "dsql_cluster:secondary@us-west-2", "ACTIVE"),
        ],
        "functions": [(r, fn) for r in REGIONS],
        "permissions": [
            (r, fn, f"{stack}-{sid}-invoke")
            for r in REGIONS
            for sid in ("task-processing", "broadcast", "tasks", "live")
        ],
        "invoke_configs": [(r, fn) for r in REGIONS],
        "buses": [(r, bus) for r in REGIONS],
        "rules": [(r, bus, name) for r in REGIONS for name in (rule, broadcast)],
        "targets": [(r, name, "task-processor") for r in REGIONS for name in (rule, broadcast)],
        "queues": [(r, q) for r in REGIONS for q in queues],
        "queue_policies": [(r, q) for r in REGIONS for q in (queues[0], queues[2])],
        "log_groups": [(r, f"/aws/lambda/{fn}") for r in REGIONS],
        "alarms": [(r, a) for r in REGIONS for a in alarms] + cluster_alarms,
        "topics": [(r, f"{stack}-alarms") for r in REGIONS],
        "subscriptions": [(r, f"{stack}-alarms", "email", email) for r in REGIONS if email],
        "cluster_policies": [
            (r, f"dsql_cluster:{side}@{r}") for r, side in zip(REGIONS, ("primary", "secondary"), strict=True)
        ]
        if cluster_policy
        else [],
        "reserved_concurrency": [(r, fn, reserved) for r in REGIONS if reserved],
        "apis": [(r, name, protocol, stage) for r in REGIONS for name, protocol, stage in _apis(stack)],
    }
    return {key: sorted(values) for key, values in data.items()}


def _apis(stack: str) -> list[tuple[str, str, str]]:
    return [(f"{stack}-tasks", "HTTP", "$default"), (f"{stack}-live", "WEBSOCKET", "live")]


def empty() -> dict[str, list[Any]]:
    return {key: [] for key in expected()}


def _clusters(dsql: Any, region: str, env: str, found: dict[str, list[Any]]) -> None:
    for summary in dsql.list_clusters()["clusters"]:
        try:
            cluster = dsql.get_cluster(identifier=summary["identifier"])
        except dsql.exceptions.ResourceNotFoundException:
            continue
        tags = cluster_tags(dsql, cluster)
        if tags.get("taskmgmt:env") == env:
            key = tags.get("taskmgmt:key")
            found["clusters"].append((region, key, cluster["status"]))
            try:
                dsql.get_cluster_policy(identifier=cluster["identifier"])
                found["cluster_policies"].append((region, key))
            except dsql.exceptions.ResourceNotFoundException:
                pass
