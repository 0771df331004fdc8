"""Find live resources tagged as a stack's, whatever the manifest says (destroy's sweep).

The tagging API misses EventBridge rules and IAM, and emulators return untagged DSQL
clusters to tag queries, so rules and the role are found by name (from the blueprint) and
DSQL clusters by their own tags; every tagging-API answer is checked against the tags.
"""

from __future__ import annotations

from collections.abc import Mapping

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.core.models import Record, resource_key

_GONE = {"DELETED"}


class TagFinder:
    def __init__(self, aws: AwsClients, regions: tuple[str, ...], tags: Mapping[str, str]):
        self.aws, self.regions, self.tags = aws, regions, dict(tags)

    def find(self) -> list[Record]:
        found: dict[str, Record] = {}
        for region in self.regions:
            for record in self._tagged(region) + self._clusters(region):
                found.setdefault(record.arn, record)
        return list(found.values())

    def _matches(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(k) == v for k, v in self.tags.items())

    def _tagged(self, region: str) -> list[Record]:
        tagging = self.aws.get("resourcegroupstaggingapi", region)
        filters = [{"Key": k, "Values": [v]} for k, v in self.tags.items()]
        records = []
        for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
            for item in page.get("ResourceTagMappingList", []):
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                record = record_for_arn(item["ResourceARN"]) if self._matches(tags) else None
                if record is not None and record.kind != "dsql_cluster":
                    records.append(record)
        return records

    def _clusters(self, region: str) -> list[Record]:
        dsql = self.aws.get("dsql", region)
        records = []
        for page in dsql.get_paginator("list_clusters").paginate():
            for summary in page["clusters"]:
                try:
                    cluster = dsql.get_cluster(identifier=summary["identifier"])
                except dsql.exceptions.ResourceNotFoundException:
                    continue
                if cluster["status"] not in _GONE and self._matches(cluster.get("tags") or {}):
                    records.append(record_for_arn(cluster["arn"]))
        return [r for r in records if r is not None]


def record_for_arn(arn: str) -> Record | None:
    """A record that a step's delete() can act on, from an ARN alone."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, region, resource = parts[2], parts[3], parts[5]
    kind, name, outputs = None, resource, {"arn": arn}
    if service == "lambda" and resource.startswith("function:"):
        kind, name = "lambda_function", resource.split(":")[1]
    elif service == "sqs":
        kind = "sqs_queue"
    elif service == "events" and resource.startswith("event-bus/"):
        kind, name = "event_bus", resource.split("/", 1)[1]
    elif service == "events" and resource.startswith("rule/"):
        bits = resource.split("/")
        kind, name = "event_rule", bits[-1]
        outputs["bus_name"] = bits[1] if len(bits) == 3 else "default"
    elif service == "logs" and resource.startswith("log-group:"):
        kind, name = "log_group", resource.split(":")[1]
    elif service == "cloudwatch" and resource.startswith("alarm:"):
        kind, name = "metric_alarm", resource.split(":", 1)[1]
    elif service == "dsql" and resource.startswith("cluster/"):
        kind, name = "dsql_cluster", resource.split("/", 1)[1]
        outputs["id"] = name
    if kind is None:
        return None
    return Record(
        key=resource_key(kind, f"found:{name}", region),
        kind=kind,
        region=region,
        name=name,
        position=0,
        state="ready",
        outputs=outputs,
    )
