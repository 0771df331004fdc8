"""What a deployed stack offers its users, read from the manifest."""

from __future__ import annotations

from typing import Any

from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.core.models import resource_key


def stack_outputs(manifest: Manifest) -> dict[str, Any]:
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
            "failed_invocations_queue_url": out("sqs_queue", "failed-invocations", "url"),
        }
    dashboard = next((r for r in manifest if r.kind == "dashboard"), None)
    return {
        "env": manifest.env,
        "account_id": manifest.account_id,
        "witness_region": config.witness_region if config else None,
        "regions": per_region,
        "dashboard": (
            {"name": dashboard.outputs.get("name"), "url": dashboard.outputs.get("url")} if dashboard else None
        ),
    }
