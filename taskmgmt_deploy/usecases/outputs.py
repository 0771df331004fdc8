"""What a deployed stack offers its users, read from the manifest."""

from __future__ import annotations

from typing import Any

from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import Record, resource_key
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import StackConfig


def stack_outputs(manifest: Manifest, endpoint_url: str | None = None) -> dict[str, Any]:
    """endpoint_url: the emulator the stack lives in (the sandbox's), where no console link leads."""
    config = manifest.config
    regions = config.regions if config else ()
    per_region: dict[str, dict[str, Any]] = {}
    for region in regions:
        side = "primary" if region == regions[0] else "secondary"

        def out(kind: str, logical: str, field: str, region: str | None = region) -> Any:
            record = manifest.get(resource_key(kind, logical, region))
            return record.outputs.get(field) if record else None

        per_region[region] = {
            "cluster_id": out("dsql_cluster", side, "id"),
            "cluster_arn": out("dsql_cluster", side, "arn"),
            "cluster_endpoint": out("dsql_cluster", side, "endpoint"),
            "event_bus_name": out("event_bus", "task-events", "name"),
            "event_bus_arn": out("event_bus", "task-events", "arn"),
            "function_name": out("lambda_function", "task-processor", "name"),
            "function_arn": out("lambda_function", "task-processor", "arn"),
            "dlq_url": out("sqs_queue", "events-dlq", "url"),
            "dlq_arn": out("sqs_queue", "events-dlq", "arn"),
            "failed_invocations_queue_url": out("sqs_queue", "failed-invocations", "url"),
            "failed_invocations_queue_arn": out("sqs_queue", "failed-invocations", "arn"),
            "http_api_url": out("http_api", "tasks", "url"),
            "websocket_url": out("websocket_api", "live", "url"),
            "broadcast_dlq_url": out("sqs_queue", "broadcast-dlq", "url"),
        }
    dashboard = next((r for r in manifest if r.kind == "dashboard"), None)
    return {
        "env": manifest.env,
        "account_id": manifest.account_id,
        "witness_region": config.witness_region if config else None,
        "regions": per_region,
        "dashboard": _dashboard(dashboard, config, endpoint_url) if dashboard else None,
    }


def _dashboard(record: Record, config: StackConfig | None, endpoint_url: str | None) -> dict[str, Any]:
    name = record.outputs.get("name")
    if endpoint_url is None:
        return {"name": name, "url": record.outputs.get("url")}
    return {
        "name": name,
        "emulated": f"kept by the emulator at {endpoint_url}; no AWS console shows it",
        "widgets": _widget_titles(config) if config else [],
        "fetch": f"aws cloudwatch get-dashboard --dashboard-name {name} --region {record.region} "
        f"--endpoint-url {endpoint_url}",
    }


def _widget_titles(config: StackConfig) -> list[str]:
    body = next(res.spec["body"] for res in blueprint.build(config) if res.kind == "dashboard")
    return [widget["properties"]["title"] for widget in body["widgets"] if "title" in widget.get("properties", {})]
