"""Find live resources tagged as a stack's, whatever the manifest says (destroy's sweep).

The tagging API may miss EventBridge rules and IAM roles, and emulators return untagged DSQL
clusters to tag queries: rules and roles are listed by the stack's name prefix and DSQL
clusters one by one, and each is kept only if its own tags are the stack's. Every
tagging-API answer is checked against the tags too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.core.models import Record, resource_key

_GONE = {"DELETED"}


class TagFinder:
    def __init__(self, aws: AwsClients, regions: tuple[str, ...], tags: Mapping[str, str], name_prefix: str):
        self.aws, self.regions, self.tags, self.name_prefix = aws, regions, dict(tags), name_prefix

    def find(self) -> list[Record]:
        found: dict[str, Record] = {}
        records = self._roles()
        for region in self.regions:
            records += self._tagged(region) + self._clusters(region) + self._rules(region) + self._apis(region)
        for record in records:
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
                if cluster["status"] not in _GONE and self._matches(cluster_tags(dsql, cluster)):
                    records.append(record_for_arn(cluster["arn"]))
        return [r for r in records if r is not None]

    def _rules(self, region: str) -> list[Record]:
        """Rules named like the stack's, on the default bus and on buses named like the stack's."""
        events = self.aws.get("events", region)
        records = []
        for bus in ["default", *_bus_names(events, self.name_prefix)]:
            pages = events.get_paginator("list_rules").paginate(EventBusName=bus, NamePrefix=self.name_prefix)
            for rule in (rule for page in pages for rule in page.get("Rules", [])):
                tags = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])
                if self._matches({t["Key"]: t["Value"] for t in tags}):
                    records.append(record_for_arn(rule["Arn"]))
        return [r for r in records if r is not None]

    def _apis(self, region: str) -> list[Record]:
        """API Gateway's APIs are not in the tagging API: listed by the stack's name prefix, kept
        by their tags (GetApis answers them)."""
        gateway = self.aws.get("apigatewayv2", region)
        records = []
        for page in gateway.get_paginator("get_apis").paginate():
            for api in page.get("Items", []):
                if api["Name"].startswith(self.name_prefix) and self._matches(api.get("Tags") or {}):
                    kind = "http_api" if api.get("ProtocolType") == "HTTP" else "websocket_api"
                    partition = self.aws.arn("execute-api", region, "-").split(":")[1]
                    arn = f"arn:{partition}:apigateway:{region}::/apis/{api['ApiId']}"
                    records.append(
                        Record(
                            key=resource_key(kind, f"found:{api['ApiId']}", region),
                            kind=kind,
                            region=region,
                            name=api["Name"],
                            position=0,
                            state="ready",
                            outputs={"id": api["ApiId"], "arn": arn},
                        )
                    )
        return records

    def _roles(self) -> list[Record]:
        iam = self.aws.get("iam")
        records = []
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if not role["RoleName"].startswith(self.name_prefix):
                    continue
                tags = iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])
                if self._matches({t["Key"]: t["Value"] for t in tags}):
                    records.append(record_for_arn(role["Arn"]))
        return [r for r in records if r is not None]


def _bus_names(events: Any, prefix: str) -> Iterator[str]:
    """ListEventBuses has no paginator in botocore: follow NextToken by hand."""
    token = None
    while True:
        page = events.list_event_buses(NamePrefix=prefix, **({"NextToken": token} if token else {}))
        yield from (bus["Name"] for bus in page.get("EventBuses", []))
        token = page.get("NextToken")
        if not token:
            return


def record_for_arn(arn: str) -> Record | None:
    """A record that a step's delete() can act on, from an ARN alone."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, region, resource = parts[2], parts[3], parts[5]
    kind, name, outputs, depends_on = None, resource, {"arn": arn}, ()
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
        depends_on = (resource_key("event_bus", f"found:{outputs['bus_name']}", region),)  # the rule goes first
    elif service == "iam" and resource.startswith("role/"):
        kind, name = "iam_role", resource.rsplit("/", 1)[1]
    elif service == "logs" and resource.startswith("log-group:"):
        kind, name = "log_group", resource.split(":")[1]
    elif service == "sns" and ":" not in resource:  # a topic (a subscription's ARN has the topic's, then :id)
        kind = "sns_topic"
    elif service == "cloudwatch" and resource.startswith("alarm:"):
        kind, name = "metric_alarm", resource.split(":", 1)[1]
    elif service == "dsql" and resource.startswith("cluster/"):
        kind, name = "dsql_cluster", resource.split("/", 1)[1]
        outputs["id"] = name
    if kind is None:
        return None
    return Record(
        key=resource_key(kind, f"found:{name}", region or None),
        kind=kind,
        region=region or None,
        name=name,
        position=0,
        state="ready",
        outputs=outputs,
        depends_on=depends_on,
    )


def cluster_tags(dsql: Any, cluster: Mapping[str, Any]) -> dict[str, str]:
    """GetCluster's `tags` is optional in its output; when it is absent, ask ListTagsForResource."""
    if "tags" in cluster:
        return dict(cluster["tags"] or {})
    try:
        return dict(dsql.list_tags_for_resource(resourceArn=cluster["arn"]).get("tags") or {})
    except dsql.exceptions.ResourceNotFoundException:  # deleted between the two calls
        return {}
