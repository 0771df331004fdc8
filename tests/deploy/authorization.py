"""Which IAM actions, on which resources and with which request context, AWS authorizes for each
API call the tool makes: the test side of `taskmgmt policy`.

Read from the Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html),
pessimistically where it is open: tags sent with a create are authorized as a tagging action
too; a multi-Region DSQL create or update is authorized on the new cluster and on each peer,
and the witness in its own region as well; CloudWatch Logs checks both tagging actions; a part
of an HTTP or WebSocket API (route, integration, authorizer, stage, CORS) is authorized without
its API's tags, as only the REST API documents that children inherit them. A
call this table does not know fails the test: a new call needs a row here, and a grant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskmgmt_deploy.emulator.policy import Request

ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    region: str
    params: Mapping[str, Any]
    answer: Mapping[str, Any]
    tags: Mapping[str, str] = field(default_factory=dict)  # of the DSQL cluster called on, before the call


def arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def function(call: Call) -> str:
    name = call.params.get("FunctionName") or call.params.get("Resource")
    return name if name.startswith("arn:") else arn("lambda", call.region, f"function:{name}")


def cluster(call: Call, identifier: str | None = None) -> str:
    return arn("dsql", call.region, f"cluster/{identifier or call.params['identifier']}")


def requests(call: Call) -> list[Request]:
    """What AWS authorizes for one call."""
    rule = RULES.get(call.service, {}).get(call.operation)
    if rule is None:
        raise LookupError(f"{call.service}:{call.operation} is not in tests/deploy/authorization.py")
    return rule(call)


def _one(action: str, resource: Callable[[Call], str], context: Callable[[Call], dict[str, Any]] | None = None):
    return lambda call: [Request(action, resource(call), context=context(call) if context else {})]


def _star(action: str):
    return _one(action, lambda call: "*")


def _tagged_create(action: str, tag_action: str | tuple[str, ...], resource: Callable[[Call], str], tags_param: str):
    tag_actions = (tag_action,) if isinstance(tag_action, str) else tag_action

    def rule(call: Call) -> list[Request]:
        found = [Request(action, resource(call))]
        if call.params.get(tags_param):
            found += [Request(a, resource(call)) for a in tag_actions]
        return found

    return rule


def _pass_role(action: str):
    def rule(call: Call) -> list[Request]:
        found = [Request(action, function(call))]
        if call.params.get("Role"):
            found.append(
                Request("iam:PassRole", call.params["Role"], context={"iam:PassedToService": "lambda.amazonaws.com"})
            )
        if action == "lambda:CreateFunction" and call.params.get("Tags"):
            found.append(Request("lambda:TagResource", function(call)))
        return found

    return rule


def _resource_tags(call: Call) -> dict[str, Any]:
    return {f"aws:ResourceTag/{k}": v for k, v in call.tags.items()}


def _dsql_change(action: str):
    return _one(action, cluster, _resource_tags)


def _peering(call: Call, own: str) -> list[Request]:
    properties = call.params.get("multiRegionProperties")
    if not properties:
        return []
    found = [Request("dsql:PutMultiRegionProperties", own)]
    witness = properties.get("witnessRegion")
    if witness:
        context = {"dsql:WitnessRegion": witness}
        found += [
            Request("dsql:PutWitnessRegion", r, context=context)
            for r in (own, own.replace(f":{call.region}:", f":{witness}:"))
        ]
    for peer in properties.get("clusters") or []:
        found += [Request("dsql:AddPeerCluster", own), Request("dsql:AddPeerCluster", peer)]
    return found


def _create_cluster(call: Call) -> list[Request]:
    own = call.answer.get("arn") or cluster(call, "new")
    tags = call.params.get("tags") or {}
    context = {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": sorted(tags)}
    found = [Request("dsql:CreateCluster", own, context=context)]
    if tags:
        found.append(Request("dsql:TagResource", own, context=context))
    return found + _peering(call, own)


def _update_cluster(call: Call) -> list[Request]:
    return [Request("dsql:UpdateCluster", cluster(call), context=_resource_tags(call)), *_peering(call, cluster(call))]


def _queue(call: Call) -> str:
    name = call.params.get("QueueName") or call.params["QueueUrl"].rsplit("/", 1)[-1]
    return arn("sqs", call.region, name)


def _log_group(call: Call) -> str:
    return arn("logs", call.region, f"log-group:{call.params['logGroupName']}")


def _bus(call: Call) -> str:
    return arn("events", call.region, f"event-bus/{call.params['Name']}")


def _rule(call: Call) -> str:
    name = call.params.get("Name") or call.params.get("Rule")
    return arn("events", call.region, f"rule/{call.params.get('EventBusName', 'default')}/{name}")


def _put_events(call: Call) -> list[Request]:
    buses = {entry.get("EventBusName", "default") for entry in call.params["Entries"]}
    return [Request("events:PutEvents", arn("events", call.region, f"event-bus/{bus}")) for bus in sorted(buses)]


def _topic(call: Call) -> str:
    return call.params.get("TopicArn") or call.params.get("ResourceArn") or arn("sns", call.region, call.params["Name"])


def _alarms(action: str):
    return lambda call: [
        Request(action, arn("cloudwatch", call.region, f"alarm:{name}")) for name in call.params["AlarmNames"]
    ]


def _dashboards(action: str):
    def rule(call: Call) -> list[Request]:
        names = call.params.get("DashboardNames") or [call.params["DashboardName"]]
        return [Request(action, f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{n}") for n in names]

    return rule


def _key(call: Call) -> str:
    key = (call.answer.get("KeyMetadata") or {}).get("Arn") or call.params["KeyId"]
    return key if key.startswith("arn:") else arn("kms", call.region, f"key/{key}")


_ROLE = lambda action: _one(action, lambda call: role(call.params["RoleName"]))  # noqa: E731


def _object(call: Call) -> str:
    return f"arn:aws:s3:::{call.params['Bucket']}/{call.params['Key']}"


def _read_object(call: Call) -> list[Request]:
    """Pessimistic: an object that may not exist is read with s3:ListBucket too, without which S3
    answers 403 instead of 404 (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)."""
    return [Request("s3:GetObject", _object(call)), Request("s3:ListBucket", f"arn:aws:s3:::{call.params['Bucket']}")]


def _gateway(action: str, path: str, tagged: bool = True):
    """An API Gateway call: an HTTP verb on the path it calls (`path` is formatted with the call's
    parameters). `tagged`: with the tags of the API it names; a part of an API (route,
    integration, authorizer, stage, CORS) is authorized without them, as V2 documents no
    inheritance of its API's tags (the pessimistic reading)."""

    def rule(call: Call) -> list[Request]:
        resource = f"arn:aws:apigateway:{call.region}::" + path.format(**call.params)
        return [Request(action, resource, context=_resource_tags(call) if tagged else {})]

    return rule


def _create_api(call: Call) -> list[Request]:
    tags = call.params.get("Tags") or {}
    context = {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": sorted(tags)}
    found = [Request("apigateway:POST", f"arn:aws:apigateway:{call.region}::/apis", context=context)]
    if tags:  # pessimistic: the tags are authorized as a tagging call too
        found.append(Request("apigateway:POST", f"arn:aws:apigateway:{call.region}::/tags/new", context=context))
    return found


def _tag_api(call: Call) -> list[Request]:
    tags = call.params.get("Tags") or {}
    context = {**_resource_tags(call), **{f"aws:RequestTag/{k}": v for k, v in tags.items()}}
    return [
        Request(
            "apigateway:POST", f"arn:aws:apigateway:{call.region}::/tags/{call.params['ResourceArn']}", context=context
        )
    ]


RULES: dict[str, dict[str, Callable[[Call], list[Request]]]] = {
    "sts": {"GetCallerIdentity": lambda call: []},  # needs no permission, and cannot be denied
    "iam": {
        **{
            op: _ROLE(f"iam:{op}")
            for op in (
                "GetRole",
                "TagRole",
                "UpdateAssumeRolePolicy",
                "DeleteRole",
                "ListRolePolicies",
                "GetRolePolicy",
                "PutRolePolicy",
                "DeleteRolePolicy",
                "ListAttachedRolePolicies",
                "DetachRolePolicy",
                "ListInstanceProfilesForRole",
            )
        },
        "CreateRole": _tagged_create(
            "iam:CreateRole", "iam:TagRole", lambda call: role(call.params["RoleName"]), "Tags"
        ),
        "ListRoles": _star("iam:ListRoles"),
        "ListRoleTags": _ROLE("iam:ListRoleTags"),
        "SimulatePrincipalPolicy": _one("iam:SimulatePrincipalPolicy", lambda call: call.params["PolicySourceArn"]),
    },
    "lambda": {
        **{
            op: _one(f"lambda:{op}", function)
            for op in (
                "GetFunction",
                "GetFunctionConfiguration",
                "UpdateFunctionCode",
                "DeleteFunction",
                "TagResource",
                "ListTags",
                "GetFunctionEventInvokeConfig",
                "PutFunctionEventInvokeConfig",
                "DeleteFunctionEventInvokeConfig",
                "AddPermission",
                "RemovePermission",
                "GetPolicy",
                "GetFunctionConcurrency",
                "PutFunctionConcurrency",
                "DeleteFunctionConcurrency",
            )
        },
        "CreateFunction": _pass_role("lambda:CreateFunction"),
        "UpdateFunctionConfiguration": _pass_role("lambda:UpdateFunctionConfiguration"),
        "Invoke": _one("lambda:InvokeFunction", function),
        "GetAccountSettings": _star("lambda:GetAccountSettings"),
    },
    "events": {
        **{op: _one(f"events:{op}", _bus) for op in ("DescribeEventBus", "DeleteEventBus")},
        "CreateEventBus": _tagged_create("events:CreateEventBus", "events:TagResource", _bus, "Tags"),
        **{
            op: _one(f"events:{op}", _rule)
            for op in ("DescribeRule", "DeleteRule", "ListTargetsByRule", "PutTargets", "RemoveTargets")
        },
        "PutRule": _tagged_create("events:PutRule", "events:TagResource", _rule, "Tags"),
        "PutEvents": _put_events,
        "ListEventBuses": _star("events:ListEventBuses"),
        "ListRules": _star("events:ListRules"),
        "ListTagsForResource": _one("events:ListTagsForResource", lambda call: call.params["ResourceARN"]),
    },
    "sqs": {
        **{
            op: _one(f"sqs:{op}", _queue)
            for op in ("GetQueueUrl", "GetQueueAttributes", "SetQueueAttributes", "DeleteQueue")
        },
        "CreateQueue": _tagged_create("sqs:CreateQueue", "sqs:TagQueue", _queue, "tags"),
    },
    "logs": {
        "DescribeLogGroups": _star("logs:DescribeLogGroups"),
        "CreateLogGroup": _tagged_create(
            "logs:CreateLogGroup", ("logs:TagResource", "logs:TagLogGroup"), _log_group, "tags"
        ),
        **{
            op: _one(f"logs:{op}", _log_group)
            for op in ("PutRetentionPolicy", "DeleteLogGroup", "AssociateKmsKey", "FilterLogEvents")
        },
    },
    "cloudwatch": {
        "DescribeAlarms": _star("cloudwatch:DescribeAlarms"),
        "PutMetricAlarm": _tagged_create(
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:TagResource",
            lambda call: arn("cloudwatch", call.region, f"alarm:{call.params['AlarmName']}"),
            "Tags",
        ),
        "DeleteAlarms": _alarms("cloudwatch:DeleteAlarms"),
        **{op: _dashboards(f"cloudwatch:{op}") for op in ("GetDashboard", "PutDashboard", "DeleteDashboards")},
    },
    "sns": {
        "CreateTopic": _tagged_create("sns:CreateTopic", "sns:TagResource", _topic, "Tags"),
        **{
            op: _one(f"sns:{op}", _topic)
            for op in (
                "GetTopicAttributes",
                "SetTopicAttributes",
                "DeleteTopic",
                "TagResource",
                "ListTagsForResource",
                "Subscribe",
                "ListSubscriptionsByTopic",
            )
        },
        "Unsubscribe": _star("sns:Unsubscribe"),
    },
    "kms": {op: _one(f"kms:{op}", _key) for op in ("DescribeKey", "GetKeyPolicy")},
    "dsql": {
        "ListClusters": _star("dsql:ListClusters"),
        "GetCluster": _one("dsql:GetCluster", cluster),
        "GetClusterPolicy": _one("dsql:GetClusterPolicy", cluster),
        "ListTagsForResource": _one("dsql:ListTagsForResource", lambda call: call.params["resourceArn"]),
        "CreateCluster": _create_cluster,
        "UpdateCluster": _update_cluster,
        **{op: _dsql_change(f"dsql:{op}") for op in ("DeleteCluster", "PutClusterPolicy", "DeleteClusterPolicy")},
    },
    "apigatewayv2": {
        "GetApis": _gateway("apigateway:GET", "/apis", tagged=False),
        "GetApi": _gateway("apigateway:GET", "/apis/{ApiId}", tagged=False),
        "CreateApi": _create_api,
        "UpdateApi": _gateway("apigateway:PATCH", "/apis/{ApiId}"),
        "DeleteApi": _gateway("apigateway:DELETE", "/apis/{ApiId}"),
        "DeleteCorsConfiguration": _gateway("apigateway:DELETE", "/apis/{ApiId}/cors", tagged=False),
        "TagResource": _tag_api,
        **{
            f"Get{kind}s": _gateway("apigateway:GET", f"/apis/{{ApiId}}/{kind.lower()}s", tagged=False)
            for kind in ("Route", "Integration", "Authorizer", "Stage")
        },
        "GetStage": _gateway("apigateway:GET", "/apis/{ApiId}/stages/{StageName}", tagged=False),
        **{
            f"Create{kind}": _gateway("apigateway:POST", f"/apis/{{ApiId}}/{kind.lower()}s", tagged=False)
            for kind in ("Route", "Integration", "Authorizer", "Stage")
        },
        **{
            f"{operation}{kind}": _gateway(
                f"apigateway:{verb}", f"/apis/{{ApiId}}/{kind.lower()}s/{{{kind}Id}}", tagged=False
            )
            for operation, verb in (("Update", "PATCH"), ("Delete", "DELETE"))
            for kind in ("Route", "Integration", "Authorizer")
        },
        "UpdateStage": _gateway("apigateway:PATCH", "/apis/{ApiId}/stages/{StageName}", tagged=False),
        "DeleteStage": _gateway("apigateway:DELETE", "/apis/{ApiId}/stages/{StageName}", tagged=False),
    },
    "resourcegroupstaggingapi": {"GetResources": _star("tag:GetResources")},
    "account": {"GetRegionOptStatus": _star("account:GetRegionOptStatus")},
    "service-quotas": {"ListServiceQuotas": _star("servicequotas:ListServiceQuotas")},
    "s3": {
        "GetObject": _read_object,
        "HeadObject": _read_object,
        "PutObject": _one("s3:PutObject", _object),
        "DeleteObject": _one("s3:DeleteObject", _object),
        "ListObjectVersions": _one(
            "s3:ListBucketVersions",
            lambda call: f"arn:aws:s3:::{call.params['Bucket']}",
            lambda call: {"s3:prefix": call.params.get("Prefix", "")},
        ),
    },
}
